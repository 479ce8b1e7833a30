"""Push delivery (RFC 8935): the egress guard, the sender and the per-stream dispatcher."""
