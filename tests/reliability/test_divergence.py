"""Promise 4: a NaN/inf loss stops the run as `diverged`, keeps the last good checkpoint and the metrics up to
that point, and a sweep carries on with its other runs."""

import math

from tiny_runs import run_dir, run_ok

from conftest import statuses, tiny
from degradation.runs.checkpoints import checkpoint_step


def test_a_run_that_diverges_keeps_its_last_good_checkpoint_and_metrics(tmp_path, fake_cifar_root):
    # lr x 1e30 from the 7th update on (0-based iteration 6): fine until the step-6 checkpoint, NaN by the step-8 row.
    run_ok(*tiny(fake_cifar_root, "optim.milestones=[6]", "optim.gamma=1.0e+30", "name=late"), cwd=tmp_path)
    run = run_dir(tmp_path, "late")
    summary = run.read_summary()
    assert summary["status"] == "diverged" and "not finite" in summary["error"]
    assert checkpoint_step(run.last_checkpoint) == 6 and not list(run.checkpoint_dir.glob("previous.ckpt"))
    rows = run.read_metrics()
    assert [row["step"] for row in rows] == [4, 6, 8]
    assert all(math.isfinite(row["train_loss"]) for row in rows[:1]) and rows[1]["test_err"] is not None
    assert not math.isfinite(rows[2]["train_loss"])  # the value where it diverged


def test_a_diverged_run_is_recorded_and_the_others_in_its_sweep_complete(tmp_path, fake_cifar_root):
    presets = tmp_path / "presets/experiment"
    presets.mkdir(parents=True)
    (presets / "fine.yaml").write_text("# @package _global_\nseed: 0\n")
    (presets / "explodes.yaml").write_text("# @package _global_\nseed: 1\noptim:\n  lr: 1.0e+30\n")
    args = tiny(
        fake_cifar_root, "experiment=fine,explodes", "name=nan", f"hydra.searchpath=[file://{tmp_path / 'presets'}]"
    )
    run_ok("-m", *args, cwd=tmp_path)
    assert statuses(tmp_path / "runs/nan") == {"resnet-8/seed=0": "completed", "resnet-8/seed=1": "diverged"}
    diverged = run_dir(tmp_path, "nan", seed=1)
    assert not diverged.last_checkpoint.exists()  # diverged before its first checkpoint: none of bad weights
    again = run_ok("-m", *args, cwd=tmp_path)
    assert "already diverged" in again.stdout + again.stderr  # a result, not retried
