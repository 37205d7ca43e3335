import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from filelock import FileLock

from degradation.training.config import compose_config as compose_real_config
from fake_cifar import write_fake_cifar

# Tests compare runs byte for byte. A CPU run is repeatable as it is; on a GPU that takes
# deterministic kernels (the resume promise on a GPU, docs/speed-and-gpu.md), so the suite asks for them there.
REPEATABLE = ["trainer.deterministic=true"] if torch.cuda.is_available() else []
# Small enough for a few seconds on 2 CPU cores: depth 8, batch 16, 10 steps per epoch.
TINY_RUN = [
    "model.depth=8",
    "data.batch_size=16",
    "data.eval_batch_size=20",
    "trainer.max_steps=12",
    "trainer.log_every=4",
    "trainer.eval_every=6",
    "trainer.progress_bar=false",
    "data.download=false",
    *REPEATABLE,
]


def tiny(fake_cifar_root, *overrides: str) -> list[str]:
    """The overrides of a TINY_RUN on the fake CIFAR-10, and more."""
    return [*TINY_RUN, f"data.root={fake_cifar_root}", *overrides]


def statuses(sweep_dir: Path) -> dict[str, str]:
    """Each run of a sweep folder (`<arch>-<depth>/seed=<seed>`) and the status its summary.json records."""
    return {
        str(path.parent.relative_to(sweep_dir)): json.loads(path.read_text())["status"]
        for path in sweep_dir.glob("*/seed=*/summary.json")
    }


GPU_SKIP_REASON = "needs a CUDA device: run `make test-gpu` on a GPU machine"


# The longest files, longest first (measured: `make test PYTEST_ARGS=--durations=0`): each `make test` worker
# (pytest-xdist) takes whole files, and starting the long ones first leaves only short ones for the end.
LONGEST_FILES_FIRST = (
    "tests/slurm/",  # minutes of scheduler round trips
    "tests/reliability/test_preemption.py",
    "tests/reliability/test_interruption.py",
    "tests/training/test_speed.py",
    "tests/sweeps/test_sweep.py",
    "tests/test_train.py",
)


def longest_first(nodeid: str) -> int:
    return next(
        (rank for rank, start in enumerate(LONGEST_FILES_FIRST) if nodeid.startswith(start)), len(LONGEST_FILES_FIRST)
    )


# Every test id this session collected, those its markers deselect included (tests/test_mutants.py reads it).
COLLECTED: set[str] = set()


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    """The longest files first; tests marked gpu skipped, with one line saying why, where no CUDA device is visible."""
    COLLECTED.update(item.nodeid for item in items)
    items.sort(key=lambda item: longest_first(item.nodeid))
    if torch.cuda.is_available() or os.environ.get("DEGRADATION_GPU_TESTS_ON_CPU") == "1":
        return
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=GPU_SKIP_REASON))


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder `name` that build(folder) fills once per test session, also when pytest-xdist runs the session in
    several worker processes (they share the parent of their temporary folders): the first builds, the others wait
    for it and reuse its folder. Tests read such folders, never change them."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, built = shared / name, shared / f"{name}.built"
    with FileLock(shared / f"{name}.lock"):
        if not built.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            built.touch()
    return folder


@pytest.fixture(scope="session")
def fake_cifar_root(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, "cifar", write_fake_cifar)


@pytest.fixture(scope="session")
def gpu_cifar_root(tmp_path_factory) -> Path:
    """For tests/gpu: 1,250 training and 500 test images, 10 steps of 128 per epoch (the last one of 98)."""
    return write_fake_cifar(tmp_path_factory.mktemp("gpu-cifar"), per_batch=250, test_size=500)


def one_error_line(code: int, stderr: str) -> str:
    """The promise of every command line for bad input: exit 2 and one `error:` line, no traceback; the line."""
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, stderr[-2000:])
    assert "Traceback" not in stderr
    return lines[0]


def main_refuses(main, args: list[str], capsys) -> str:
    """Runs a command line's main(args) in this process; the one `error:` line it refused them with."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return one_error_line(exit_info.value.code, capsys.readouterr().err)


def compose_config(*overrides: str):
    """The real conf/ tree composed with overrides, as `python -m degradation.train` would."""
    return compose_real_config(list(overrides))


def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "degradation.train", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    for name in ("HYDRA_FULL_ERROR", "WANDB_MODE", "WANDB_API_KEY"):
        if name not in extra:
            env.pop(name, None)
    return env


def run_train(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """The real entry point in a subprocess."""
    return subprocess.run(
        train_command(*args), cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory, fake_cifar_root):
    """An uninterrupted TINY_RUN (resnet-8, seed 0): what an interrupted or failed run must end up equal to."""
    from degradation.runs.rundir import RunDir

    def train(cwd: Path) -> None:
        result = run_train(*TINY_RUN, f"data.root={fake_cifar_root}", "name=straight", cwd=cwd)
        assert result.returncode == 0, result.stderr[-3000:]

    cwd = built_once(tmp_path_factory, "straight", train)
    return RunDir(cwd / "runs/straight/resnet-8/seed=0")


class CrashAt(pl.Callback):
    """Raises at the end of a given training step, like a crash in the middle of a run."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


class CompiledGraphsAfterStep(pl.Callback):
    """How many graphs dynamo has compiled, after each training step and after each evaluation."""

    def __init__(self):
        self.after = {}

    def on_train_batch_end(self, trainer, *args) -> None:
        self.after[f"step {trainer.global_step}"] = compiled_graphs()

    def on_validation_end(self, trainer, *args) -> None:
        self.after[f"eval {trainer.global_step}"] = compiled_graphs()


def compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def add_callback(monkeypatch, callback: pl.Callback) -> None:
    """Every Trainer that degradation.train builds from now on gets `callback` (monkeypatch.undo() ends it)."""
    from degradation.training import build

    build_trainer = build.build_trainer

    def with_callback(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.append(callback)
        return trainer

    monkeypatch.setattr(build, "build_trainer", with_callback)
