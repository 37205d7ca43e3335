import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from degradation.errors import UserError
from degradation.report import figures
from degradation.runs.results import STEP_KEY, expected_runs, load_sweep, load_wandb_sweep
from degradation.runs.rundir import RunDir, find_runs
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


def test_a_grid_over_blocks_expects_each_variant_in_its_own_folder(tmp_path):
    sweep_dir = tmp_path / "blocks"
    sweep_dir.mkdir()
    multirun = {"hydra": {"sweeper": {"params": {"model.block": "original,preact", "seed": "0"}}, "overrides": {}}}
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    assert sorted(expected_runs(sweep_dir)) == ["resnet-20-preact/seed=0", "resnet-20/seed=0"]


def test_a_model_override_on_the_interventions_grid_renames_every_net_it_expects(tmp_path):
    """`make sweep-interventions EXTRA="model.drop_path=0.2"` trains each net with that key on top of its own file's
    (it names each run): the runs it expects are those, not the study's own names, and a grid over it multiplies."""
    grid = {"intervention": "plain-56,resnet-56-preact", "seed": "0", "model.activation": "relu,crelu"}
    multirun = {"hydra": {"sweeper": {"params": grid}, "overrides": {"task": ["model.drop_path=0.2"]}}}
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    assert sorted(expected_runs(tmp_path)) == [
        "plain-56-droppath0.2-crelu/seed=0",
        "plain-56-droppath0.2/seed=0",
        "resnet-56-preact-droppath0.2-crelu/seed=0",
        "resnet-56-preact-droppath0.2/seed=0",
    ]


def test_a_sweep_of_several_variants_is_refused_by_the_figures_not_averaged(tmp_path):
    """A ResNet-20 and a pre-activation ResNet-20 would otherwise be drawn as two seeds of one net."""
    sweep_dir = write_sweep(tmp_path / "mixed", archs=("resnet",), depths=(20,), seeds=(0,))
    run = write_run(sweep_dir / "preact", "resnet", 20, 0)
    shutil.move(run.path.parent, sweep_dir / "resnet-20-preact")
    preact = RunDir(sweep_dir / "resnet-20-preact/seed=0")
    preact.write_summary({**preact.read_summary(), "variant": "preact"})
    with pytest.raises(UserError, match="holds nets of several variants \\(the paper's, preact\\)"):
        load_sweep(sweep_dir)
    shutil.rmtree(sweep_dir / "resnet-20")
    alone = load_sweep(sweep_dir)
    assert alone.variant == "preact" and [r.key for r in alone.runs] == ["resnet-20-preact/seed=0"]


def test_a_sweep_of_two_families_is_refused_by_the_figures_not_averaged(tmp_path):
    """The paper's 6n+2 ResNet-50 and the ImageNet-style ResNet-50 are both resnet-50: the family tells them apart."""
    sweep_dir = write_sweep(tmp_path / "families", archs=("resnet",), depths=(50,), seeds=(0,))
    shutil.copytree(sweep_dir / "resnet-50", sweep_dir / "imagenet-resnet-50")
    other = RunDir(sweep_dir / "imagenet-resnet-50/seed=0")
    other.write_summary({**other.read_summary(), "family": "imagenet"})
    with pytest.raises(UserError, match="holds nets of several variants \\(the paper's, imagenet\\)"):
        load_sweep(sweep_dir)
    shutil.rmtree(sweep_dir / "resnet-50")
    assert load_sweep(sweep_dir).variant == "imagenet"


def test_the_interventions_study_expects_every_intervention_for_every_seed(tmp_path):
    """make sweep-interventions: its grid is the intervention files by name, times the seeds."""
    from degradation.conf import CONFIG_DIR
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="train", overrides=["experiment=sweep_interventions"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"sweeper": {"params": params}, "overrides": {}}}))
    names = params["intervention"].split(",")
    assert len(names) == 12 and "plain-56-crelu" in names and "resnet-56-norm-none-fixup" in names
    assert sorted(expected_runs(tmp_path)) == sorted(f"{name}/seed={seed}" for seed in (0, 1) for name in names)
    committed = Path(__file__).resolve().parents[2] / "experiments/interventions/runs/interventions"
    assert expected_runs(committed) == expected_runs(tmp_path)  # the committed study is this sweep's grid
    held = sorted(f"{run.path.parent.name}/{run.path.name}" for run in find_runs(committed))
    assert held == expected_runs(tmp_path)  # every run it plans is committed, and no other
