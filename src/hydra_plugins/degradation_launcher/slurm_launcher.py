"""The class behind `launcher=slurm` (conf/launcher/slurm.yaml): hydra-submitit-launcher's SLURM launcher with the
sweep following its jobs. Hydra accepts a launcher only from this namespace; what it does is in
degradation.sweeps.slurm (imported when used, so Hydra's scan of its plugins stays light)."""

from hydra_plugins.hydra_submitit_launcher import submitit_launcher


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def __call__(self, *args, **kwargs):
        """One job of the sweep, on the cluster."""
        from degradation.sweeps.slurm import run_in_job

        return run_in_job(lambda: super(SlurmLauncher, self).__call__(*args, **kwargs))

    def launch(self, job_overrides, initial_job_idx: int):
        """Submits the jobs and follows them to their end."""
        from degradation.sweeps.slurm import launch

        return launch(self, job_overrides, initial_job_idx)
