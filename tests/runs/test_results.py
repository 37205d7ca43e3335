import time

import numpy as np

from degradation.report import figures
from degradation.runs.results import STEP_KEY, load_sweep, load_wandb_sweep
from synthetic_sweep import STEPS, known_error, known_summary, write_run, write_sweep


class FakeRun:
    """Stands in for wandb.apis.public.Run: summary, and history rows with the step key."""

    def __init__(self, arch, depth, seed, status="completed"):
        self.summary = known_summary(arch, depth, seed, status, STEPS[-1])
        # one history row per logged call, as the WandbLogger writes them: train and test rows apart
        self.history = [{STEP_KEY: s, "train_err": known_error(arch, depth, seed, s, True)} for s in STEPS]
        self.history += [{STEP_KEY: s, "test_err": known_error(arch, depth, seed, s, False)} for s in STEPS]

    def scan_history(self, keys):
        return [row for row in self.history if all(key in row for key in keys)]


class FakeApi:
    def __init__(self, runs):
        self.runs_by_group, self.calls = runs, []

    def runs(self, path, filters):
        self.calls.append((path, filters))
        return self.runs_by_group.get(filters["group"], [])


def test_wandb_source_gives_the_same_sweep_as_the_run_directories(tmp_path):
    from_disk = load_sweep(write_sweep(tmp_path / "grid"))
    api = FakeApi(
        {
            "grid": [FakeRun(a, d, s) for a in ("resnet", "plain") for d in (56, 20) for s in (1, 0)]
            + [FakeRun("plain", 110, 0, status="running")]
        }
    )
    from_wandb = load_wandb_sweep(api, "degradation", "grid", entity="me")
    assert api.calls == [("me/degradation", {"group": "grid"})]
    assert [r.key for r in from_wandb.runs] == [r.key for r in from_disk.runs]
    assert from_wandb.missing == ["plain-110/seed=0"]
    for remote, local in zip(from_wandb.runs, from_disk.runs):
        assert np.array_equal(remote.test_err.steps, local.test_err.steps)
        assert np.allclose(remote.train_err.values, local.train_err.values)
    assert figures.table6(from_wandb) == figures.table6(from_disk)


def test_a_sweep_of_50_runs_is_read_in_seconds(tmp_path):
    steps = tuple(range(100, 64_001, 100))  # a full paper run: 640 rows
    for depth in (20, 32, 44, 56, 110):
        for arch in ("plain", "resnet"):
            for seed in range(5):
                write_run(tmp_path / "big", arch, depth, seed, steps=steps)
    started = time.perf_counter()
    sweep = load_sweep(tmp_path / "big")
    elapsed = time.perf_counter() - started
    assert len(sweep.runs) == 50 and len(sweep.runs[0].train_err.steps) == 640
    print(f"read 50 runs x 640 rows in {elapsed:.2f} s")  # recorded by the note, not asserted as a timing


def test_failed_and_running_runs_are_listed_as_missing(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", archs=("plain",), depths=(20,), seeds=(0,))
    write_run(sweep_dir, "plain", 56, 0, status="failed")
    sweep = load_sweep(sweep_dir)
    assert [r.key for r in sweep.runs] == ["plain-20/seed=0"] and sweep.missing == ["plain-56/seed=0"]
