"""Training one run: the paper protocol as a Lightning module, the step and its speed switches, the experiment
config, the trainer and its callbacks, and a run's life from lock to summary (lifecycle)."""
