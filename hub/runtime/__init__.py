"""One hub process assembled: the context every edge uses, its wiring, timed jobs, upstream links."""
