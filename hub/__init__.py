"""ssf-hub: a Shared Signals (SSF 1.0 / CAEP / RISC) hub for continuous access evaluation."""

__version__ = "0.1.0"
