"""How fast the harness trains, against a common reproduction loop and the bare graphed step (measure, loops)."""
