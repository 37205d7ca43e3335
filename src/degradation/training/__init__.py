"""Training one run: the paper's protocol as a Lightning module, its step, config, trainer, and life (lifecycle)."""
