"""What a run prints while it trains (without a terminal): where it is, how far, how long still."""

import logging
import re
from types import SimpleNamespace

from conftest import TINY_RUN, run_train
from degradation.training.progress import Progress, evaluations_left


def fake_run(step: int, max_steps: int = 100, every: int = 50, latest_errors=None):
    trainer = SimpleNamespace(global_step=step, max_steps=max_steps, val_check_batch=every)
    return trainer, SimpleNamespace(latest_errors=latest_errors or {})


def test_a_run_prints_its_directory_first_then_progress_with_the_rows_errors_and_no_lightning_banners(
    tmp_path, fake_cifar_root
):
    result = run_train(*TINY_RUN, f"data.root={fake_cifar_root}", cwd=tmp_path)  # progress_bar=false, log_every=4
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert "run directory " + str(tmp_path / "runs/default/resnet-8/seed=0") in lines[0], lines[:3]
    for banner in ("GPU available", "TPU available", "litlogger", "LeafSpec", "`Trainer.fit` stopped"):
        assert banner not in output
    shown = {int(step): float(err) for step, err in re.findall(r"step (\d+)/12 .*? train_err ([\d.]+)%", output)}
    rows = {row["step"]: row["train_err"] for row in RunDirRows(tmp_path)}
    assert shown == {step: round(rows[step], 2) for step in (4, 8, 12)}  # this step's row, not the one before
    assert re.search(r"step 6: evaluating", output) and "step 12: measuring Figure 7's layer responses" in output
    log = (tmp_path / "runs/default/resnet-8/seed=0/train.log").read_text()
    assert "run directory" in log and "step 12/12" in log and "completed" in log  # train.log is the full record


def RunDirRows(cwd):
    from degradation.runs.rundir import RunDir

    return [row for row in RunDir(cwd / "runs/default/resnet-8/seed=0").read_metrics() if row["train_err"] is not None]


def test_slow_steps_still_give_a_line_every_few_seconds(caplog, monkeypatch):
    """log_every=100 on a slow machine: a line whenever every_s has passed, whatever the step."""
    clock = iter(range(0, 1000, 20))  # each call: 20 s later
    monkeypatch.setattr("degradation.training.progress.time.perf_counter", lambda: next(clock))
    progress = Progress(every=100, batch_size=1, bar=False, every_s=30)
    trainer, module = fake_run(0)
    progress.on_train_start(trainer, module)
    with caplog.at_level(logging.INFO, logger="degradation.training.progress"):
        for step in range(1, 5):
            trainer.global_step = step
            progress.on_train_batch_end(trainer, module, None, None, step)
    assert [int(m) for m in re.findall(r"step (\d+)/100", caplog.text)] == [2, 4]  # at 40 s and 80 s


def test_the_eta_counts_the_evaluations_still_to_come():
    progress = Progress(every=10, batch_size=1, bar=False)
    progress.started, progress.eval_time_s, progress.evaluations = 0.0, 10.0, 1  # one evaluation took 10 s
    trainer, _ = fake_run(50)
    # 50 steps left at 1 step/s, then the evaluations at 50 and 100 and the responses' test pass: 3 x 10 s
    assert progress.eta(trainer, 50, steps_per_s=1.0) == "1m20s"
    assert (
        evaluations_left(50, 100, 50) == 2 and evaluations_left(51, 100, 50) == 1 and evaluations_left(1, 64, 20) == 4
    )
    assert (
        Progress(every=10, batch_size=1, bar=False).eta(trainer, 50, 1.0) == "0m50s + evaluations"
    )  # none measured yet
