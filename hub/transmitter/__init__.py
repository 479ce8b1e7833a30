"""The SSF transmitter use cases: issuing SETs (route, sign, queue) and managing streams."""
