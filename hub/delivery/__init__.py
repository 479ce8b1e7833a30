"""Getting queued SETs out: long polls (RFC 8936), push (RFC 8935), and the wake-ups behind both."""
