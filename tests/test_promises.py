"""README promises that no other test checked (issue 12's list), each at the smallest level that can break."""

import os
import subprocess
import time

import pytest
import torch

from conftest import TINY_RUN, compose_config
from degradation.runs import results, tracking
from degradation.runs.rundir import RunDir
from degradation.sweeps import table as sweep
from degradation.training.checkpoint_io import AtomicCheckpointIO
from synthetic_sweep import write_sweep


def test_checkpoints_load_weights_only_and_refuse_pickled_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"global_step": 1, "payload": os.getcwd}, path)  # a function: pickled code, not a tensor
    with pytest.raises(Exception, match="[Ww]eights only"):
        AtomicCheckpointIO().load_checkpoint(path)
    torch.save({"global_step": 1, "state_dict": {"w": torch.zeros(2)}}, path)
    assert AtomicCheckpointIO().load_checkpoint(path)["global_step"] == 1


def test_a_dry_run_says_what_it_would_do_and_writes_nothing(tmp_path, fake_cifar_root):
    from degradation.training import lifecycle

    run = RunDir(tmp_path / "runs/default/resnet-8/seed=0")
    run.path.mkdir(parents=True)  # as Hydra makes it before the job runs
    cfg = compose_config(*TINY_RUN, f"data.root={fake_cifar_root}", "dry_run=true", f"runs_root={tmp_path / 'runs'}")
    assert lifecycle.train(cfg, run) == {"status": "would train"}
    assert not (tmp_path / "runs").exists()  # the empty folders Hydra made are removed too


def test_eval_every_null_evaluates_once_per_epoch(tmp_path, fake_cifar_root):
    from degradation.training import lifecycle

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    cfg = compose_config(*TINY_RUN, f"data.root={fake_cifar_root}", "trainer.eval_every=null", "trainer.max_steps=20")
    lifecycle.train(cfg, run)
    assert [row["step"] for row in run.read_metrics() if row["test_err"] is not None] == [10, 20]  # 10 steps per epoch


@pytest.mark.parametrize(
    "requested, environment, credentials, expected",
    [
        ("auto", None, True, "online"),
        ("auto", None, False, "offline"),
        ("online", None, False, "offline"),  # never a prompt: no credentials means offline
        ("online", "disabled", True, "disabled"),  # WANDB_MODE in the environment wins
        ("offline", "online", True, "online"),
    ],
)
def test_wandb_mode_auto_and_the_environment_override(monkeypatch, requested, environment, credentials, expected):
    monkeypatch.setattr(tracking, "has_credentials", lambda: credentials)
    if environment is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", environment)
    assert tracking.resolve_mode(requested) == expected


def test_figures_take_the_sweep_with_the_newest_result_by_default(tmp_path):
    older, newer = write_sweep(tmp_path / "a"), write_sweep(tmp_path / "b")
    past = time.time() - 3600
    for summary in newer.glob("*/seed=*/summary.json"):
        os.utime(summary, (past, past))
    assert results.latest_sweep(tmp_path) == older


@pytest.mark.parametrize(
    "experiment, grid",
    [
        ("sweep_cifar", {"model": "plain,resnet", "model.depth": "20,32,44,56,110", "seed": "0"}),
        ("sweep_quick", {"model": "plain,resnet", "model.depth": "20,56", "seed": "0"}),
        (
            "sweep_imagenet_resnets",
            {"model": "resnet18,resnet34,resnet50", "model.residual": "true,false", "seed": "0"},
        ),
        ("fidelity_8k", {"model": "plain,resnet", "model.depth": "20,56", "seed": "0,1"}),
        ("sweep_cpu", {"seed": "0,1", "model": "plain,resnet", "model.depth": "20,56"}),
    ],
)
def test_the_sweep_configs_compose_to_their_grids(experiment, grid):
    from degradation.conf import CONFIG_DIR
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert {key: str(value) for key, value in cfg.hydra.sweeper.params.items()} == grid


def test_the_cpu_sweep_keeps_the_papers_lr_and_milestone_fractions_with_a_linear_warmup_on_the_fast_path():
    cfg = compose_config("experiment=sweep_cpu")
    steps = cfg.trainer.max_steps
    assert cfg.optim.lr == 0.1 and list(cfg.optim.milestones) == [steps // 2, steps * 3 // 4]
    assert (cfg.optim.warmup, cfg.optim.warmup_shape, cfg.optim.warmup_lr) == (True, "linear", 0.01)
    assert cfg.trainer.precision == "auto" and cfg.speed.compile and cfg.speed.channels_last
    assert cfg.data.test_size == 2000 and steps % cfg.trainer.eval_every == 0


def test_make_maps_its_sweep_variables_to_overrides():
    result = subprocess.run(
        [
            "make",
            "-n",
            "sweep-cifar",
            "SEEDS=0,1",
            "DEPTHS=20,56",
            "ARCHS=plain",
            "LAUNCHER=joblib",
            "JOBS=4",
            "NAME=lr",
            "DRY=1",
            "EXTRA=optim.lr=0.05",
        ],
        cwd=os.path.dirname(os.path.dirname(__file__)),
        capture_output=True,
        text=True,
    )
    [command] = [line for line in result.stdout.splitlines() if "degradation.train" in line]
    assert command.split("degradation.train ", 1)[1].split() == [
        "experiment=sweep_cifar",
        "model=plain",
        "model.depth=20,56",
        "seed=0,1",
        "launcher=joblib",
        "jobs=4",
        "name=lr",
        "dry_run=true",
        "optim.lr=0.05",
    ]


def test_a_sweep_with_a_failed_run_exits_1_and_its_rerun_retries_only_that_run(tmp_path, fake_cifar_root):
    import json
    import sys
    from pathlib import Path

    from conftest import run_train, subprocess_env

    args = ["-m", *TINY_RUN, f"data.root={fake_cifar_root}", "model=plain,resnet", "name=failing"]
    faults = Path(__file__).parent / "reliability" / "faults.py"
    first = subprocess.run(
        [sys.executable, str(faults), *args],
        cwd=tmp_path,
        env=subprocess_env(FAULT="enospc-metrics:3"),
        capture_output=True,
        text=True,
        timeout=300,
    )  # the third metrics row: in the first job
    status = lambda arch: json.loads((tmp_path / f"runs/failing/{arch}-8/seed=0/summary.json").read_text())["status"]  # noqa: E731
    assert first.returncode == 1, first.stderr[-2000:]
    assert (status("plain"), status("resnet")) == ("failed", "completed")
    assert "1 run(s) failed" in first.stdout

    again = run_train(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (status("plain"), status("resnet")) == ("completed", "completed")
    assert "already completed" in again.stdout + again.stderr  # the completed run was not trained again


def test_the_lock_heartbeat_is_refreshed_while_training(monkeypatch):
    from types import SimpleNamespace

    from degradation.training import callbacks

    now, beats = [0.0], []
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: now[0])
    heartbeat = callbacks.LockHeartbeat(SimpleNamespace(heartbeat=lambda: beats.append(now[0])), every_s=60)
    for now[0] in (1000.0, 1030.0, 1061.0, 1100.0, 1125.0):  # one training step ends at each of these times
        heartbeat.on_train_batch_end(None, None, None, None, 0)
    assert beats == [1000.0, 1061.0, 1125.0]  # at least once a minute while steps go on


def test_a_run_another_live_process_trains_shows_as_elsewhere_not_failed(tmp_path):
    from degradation.runs.lock import RunLock
    from synthetic_sweep import write_run

    run = write_run(tmp_path / "sweep", "resnet", 20, 0, status="running")
    lock = RunLock(run.path)
    lock.acquire()  # a live holder: this process
    try:
        table, failed = sweep.sweep_table(tmp_path / "sweep")
    finally:
        lock.release()
    assert "elsewhere" in table and failed == []
    table, failed = sweep.sweep_table(tmp_path / "sweep")  # nobody holds it any more: a run that stopped
    assert "elsewhere" not in table and failed == ["resnet-20/seed=0"]


def test_wandb_failing_offline_too_leaves_the_run_with_metrics_csv_only(tmp_path, monkeypatch, caplog):
    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(tracking, "make_logger", unreachable)
    monkeypatch.setattr(tracking, "has_credentials", lambda: True)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = compose_config("logger=wandb", "logger.wandb.mode=online")
    with caplog.at_level("WARNING"):
        wandb_run = tracking.open_run(cfg, tmp_path, None, {})
    assert wandb_run.logger is None and wandb_run.record is None
    assert "W&B offline failed too" in caplog.text and "metrics.csv only" in caplog.text


def test_without_a_terminal_progress_is_a_line_every_log_every_steps(tmp_path, fake_cifar_root):
    import re

    from conftest import run_train

    result = run_train(*TINY_RUN, f"data.root={fake_cifar_root}", cwd=tmp_path)  # progress_bar=false, log_every=4
    lines = re.findall(r"step (\d+)/12 \((\d+)%\) \| \d+ img/s \| .* \| eta \S+", result.stdout + result.stderr)
    assert lines == [("4", "33"), ("8", "67"), ("12", "100")]


def test_parallel_runs_on_a_cpu_share_its_cores_instead_of_each_taking_all_of_them(tmp_path, fake_cifar_root):
    """launcher=joblib jobs=2: joblib gives each job cores / 2 threads, and summary.json records what the run had."""
    import json

    from conftest import run_train

    result = run_train(
        "-m",
        *TINY_RUN,
        f"data.root={fake_cifar_root}",
        "model=plain,resnet",
        "name=threads",
        "launcher=joblib",
        "jobs=2",
        "trainer.accelerator=cpu",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    threads = [
        json.loads(path.read_text())["math"]["threads"]
        for path in sorted(tmp_path.glob("runs/threads/*/seed=0/summary.json"))
    ]
    assert threads == [max(1, len(os.sched_getaffinity(0)) // 2)] * 2
