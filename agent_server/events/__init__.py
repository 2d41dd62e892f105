"""Events: names, the per-session log (seq, ring buffer, stored log) and the bus."""
