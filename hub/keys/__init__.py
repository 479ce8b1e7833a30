"""The hub's own keys: the signing ring and token key, where they persist, rotation, signing."""
