"""How fast the harness trains: its path against a common reproduction loop and the bare graphed step (measure),
and those two loops (loops)."""
