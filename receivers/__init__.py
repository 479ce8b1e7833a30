"""ssf-hub receivers: subscribe to an SSF transmitter, verify SETs and act on them.

The library arrives with issue #5; it never imports :mod:`hub`.
"""

__all__: list[str] = []
