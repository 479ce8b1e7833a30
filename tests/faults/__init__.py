"""The fault matrix: real hubs through crashes, outages and a full disk (``python -m tests.faults``)."""
