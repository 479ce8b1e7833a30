"""The protocol rules of the hub: pure functions and dataclasses, no I/O.

Nothing under ``hub.core`` may import starlette, httpx, sqlite3, redis or touch the
clock or the network; time and randomness come in as arguments.
"""
