"""The table a sweep ends with: every planned run, why each failure failed and where its job logged."""

import json

from degradation.sweeps.table import sweep_table


def write_summary(run, **summary) -> None:
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(summary))


def test_every_planned_run_is_in_the_table_and_one_that_never_started_counts_as_failed(tmp_path):
    done, failed, never = (tmp_path / f"resnet-8/seed={seed}" for seed in (0, 1, 2))
    write_summary(done, status="completed", steps=12, final_train_err=10.0, final_test_err=20.0, wall_time_s=3)
    write_summary(
        failed,
        status="failed",
        steps=0,
        error="CIFAR-10 not found in /nowhere",
        slurm={"job_id": "7_1", "log": "runs/s/.submitit/7_1/7_1_0_log.err"},
    )
    table, failures = sweep_table(tmp_path, planned=[done, failed, never])
    rows = {line.split()[0]: line.split()[1] for line in table.splitlines()[1:4]}
    assert rows == {"resnet-8/seed=0": "completed", "resnet-8/seed=1": "failed", "resnet-8/seed=2": "not"}
    assert failures == ["resnet-8/seed=1", "resnet-8/seed=2"]
    assert (
        "  resnet-8/seed=1: CIFAR-10 not found in /nowhere; its train.log has the details; SLURM job 7_1, "
        "log runs/s/.submitit/7_1/7_1_0_log.err"
    ) in table
    assert "  resnet-8/seed=2: never started" in table
