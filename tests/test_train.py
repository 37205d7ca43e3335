"""The real entry point, `python -m degradation.train`, on a tiny CIFAR folder in the official format."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import REPEATABLE, TINY_RUN, run_train
from degradation.runs.rundir import METRIC_COLUMNS, VAL_COLUMNS, RunDir
from degradation.training.precision import cpu_bf16_units

# Every key docs/run-directory.md's table documents for a completed run without a validation split.
SUMMARY_FIELDS = {
    "arch",
    "family",
    "depth",
    "variant",
    "shortcut",
    "seed",
    "params",
    "residual_twin_params",
    "steps",
    "max_steps",
    "status",
    "final_test_err",
    "final_test_loss",
    "final_train_err",
    "final_train_loss",
    "wall_time_s",
    "train_images_per_s",
    "warmup_s",
    "capture_s",
    "device",
    "math",
    "versions",
    "environment",
    "git",
    "command",
    "started_at",
    "finished_at",
    "resumed",
    "config",
    "wandb",
    "slurm",
}
PLAIN_8_PARAMS = 75_290  # CifarNet(8): 3x3 convs 16/32/64 + BN + linear; option A adds no parameters


def train_tiny(tmp_path, fake_cifar_root, *overrides):
    result = run_train(*TINY_RUN, f"data.root={fake_cifar_root}", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, fake_cifar_root):
    cwd = tmp_path_factory.mktemp("run")
    train_tiny(cwd, fake_cifar_root, "model=plain", "seed=1")
    return cwd, RunDir(cwd / "runs/default/plain-8/seed=1")


def test_a_few_steps_write_the_documented_run_directory(tiny_run):
    _, run = tiny_run
    header = run.metrics_path.read_text().splitlines()[0]
    assert tuple(header.split(",")) == METRIC_COLUMNS
    rows = run.read_metrics()
    assert [row["step"] for row in rows] == [4, 6, 8, 12]  # log_every=4, eval_every=6, the last step
    assert [row["test_err"] is not None for row in rows] == [False, True, False, True]
    assert all(0 <= row["train_err"] <= 100 for row in rows if row["train_err"] is not None)
    assert rows[1]["train_err"] is None and rows[1]["epoch"] == 0 and rows[-1]["epoch"] == 1  # 10 steps/epoch
    summary = run.read_summary()
    assert SUMMARY_FIELDS <= set(summary)
    assert (summary["arch"], summary["depth"], summary["shortcut"], summary["seed"]) == ("plain", 8, "none", 1)
    assert (summary["status"], summary["steps"]) == ("completed", 12)
    assert set(summary) == SUMMARY_FIELDS
    assert summary["params"] == summary["residual_twin_params"] == PLAIN_8_PARAMS
    assert (summary["family"], summary["max_steps"], summary["resumed"]) == ("cifar", 12, False)
    assert summary["config"] == yaml.safe_load(run.path.joinpath("config.yaml").read_text())
    assert summary["command"].startswith("python -m degradation.train ") and "seed=1" in summary["command"]
    # lr of every training row: 0.1, the paper's rate (no warm-up below depth 110, milestones at 32k/48k)
    assert [row["lr"] for row in rows if row["train_err"] is not None] == [0.1, 0.1, 0.1]
    assert summary["final_test_err"] == rows[-1]["test_err"] and summary["final_train_err"] == rows[-1]["train_err"]
    assert summary["train_images_per_s"] > 0 and summary["versions"]["torch"]
    # the paper's arithmetic, recorded: IEEE fp32 convolutions and matmuls (no TF32)
    assert summary["math"] == {
        "precision": "32-true",
        "precision_asked": "32-true",
        "cpu_bf16_units": cpu_bf16_units(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "tf32_conv": False,
        "tf32_matmul": False,
        "float32_matmul_precision": "highest",
        "cudnn_benchmark": False,
        "deterministic": bool(REPEATABLE),
    }
    assert run.last_checkpoint.is_file() and (run.path / "config.yaml").is_file()


def test_the_same_seed_gives_identical_metrics_and_another_seed_does_not(tiny_run, fake_cifar_root):
    cwd, run = tiny_run
    train_tiny(cwd, fake_cifar_root, "model=plain", "seed=1", "name=again")
    train_tiny(cwd, fake_cifar_root, "model=plain", "seed=2", "name=again")
    again = cwd / "runs/again/plain-8"
    assert (again / "seed=1/metrics.csv").read_text() == run.metrics_path.read_text()
    assert (again / "seed=2/metrics.csv").read_text() != run.metrics_path.read_text()


def test_rerunning_a_completed_run_trains_nothing_and_another_config_is_refused(tiny_run, fake_cifar_root):
    cwd, run = tiny_run
    before = run.summary_path.read_text()
    train_tiny(cwd, fake_cifar_root, "model=plain", "seed=1")
    assert run.summary_path.read_text() == before
    refused = run_train(*TINY_RUN, f"data.root={fake_cifar_root}", "model=plain", "seed=1", "optim.lr=0.05", cwd=cwd)
    assert refused.returncode == 2 and "different config (optim.lr: 0.1 -> 0.05)" in refused.stderr
    assert run.summary_path.read_text() == before


def test_a_validation_split_adds_val_columns(tmp_path, fake_cifar_root):
    train_tiny(tmp_path, fake_cifar_root, "data.val_size=32")
    run = RunDir(tmp_path / "runs/default/resnet-8/seed=0")
    assert tuple(run.metrics_path.read_text().splitlines()[0].split(",")) == METRIC_COLUMNS + VAL_COLUMNS
    assert json.loads(run.summary_path.read_text())["final_val_err"] is not None


def test_responses_from_the_checkpoint_equal_those_written_at_the_end_of_training(tiny_run):
    _, run = tiny_run
    written = run.read_responses()
    assert len(written) == 7  # depth 8: one 3x3 conv in the stem, two in each of 3 blocks
    run.responses_path.unlink()
    result = subprocess.run(
        [sys.executable, "-m", "degradation.analysis.responses", str(run.last_checkpoint)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert run.read_responses() == pytest.approx(written, rel=1e-6)


@pytest.mark.parametrize("model, residual", [("resnet18", "true"), ("resnet34", "false"), ("resnet50", "true")])
def test_imagenet_style_resnets_train_through_the_same_entry_point(tmp_path, fake_cifar_root, model, residual):
    arch, depth = ("resnet" if residual == "true" else "plain"), int(model.removeprefix("resnet"))
    tiny_but_deep = [arg for arg in TINY_RUN if not arg.startswith(("model.depth=", "data.batch_size="))]
    result = run_train(
        *tiny_but_deep,
        f"data.root={fake_cifar_root}",
        f"model={model}",
        f"model.residual={residual}",
        "data.batch_size=4",
        "trainer.max_steps=3",
        "trainer.eval_every=3",
        "model.stride_in=1x1",
        "model.residual_scale=0.5",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir(tmp_path / f"runs/default/imagenet-{arch}-{depth}/seed=0")  # never a CIFAR net's folder
    summary = run.read_summary()
    assert (summary["status"], summary["steps"], summary["family"], summary["depth"]) == (
        "completed",
        3,
        "imagenet",
        depth,
    )
    if residual == "true":
        assert summary["params"] == summary["residual_twin_params"]
    else:  # the plain twin's summary states what the projections would have added
        assert summary["params"] < summary["residual_twin_params"]
    # Figure 7's layers: the stem, two 3x3 convs per basic block, one per bottleneck.
    assert len(run.read_responses()) == {18: 1 + 2 * 8, 34: 1 + 2 * 16, 50: 1 + 16}[depth]


def run_and_sweep_dirs(*overrides: str) -> tuple[str, str]:
    """Where Hydra puts this run, alone and as a job of a sweep named default."""
    from degradation.conf import CONFIG_DIR
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    OmegaConf.resolve(cfg)
    return cfg.hydra.run.dir, f"{cfg.hydra.sweep.dir}/{cfg.hydra.sweep.subdir}"


def test_the_cifar_and_the_imagenet_style_resnet_50_never_share_a_run_directory():
    """Both are resnet-50: the paper's 6n+2 net (n=8) and the bottleneck ResNet-50. The family tells them apart;
    the paper's nets keep the names their run directories always had."""
    cifar = run_and_sweep_dirs("model=resnet", "model.depth=50")
    imagenet = run_and_sweep_dirs("model=resnet50")
    assert cifar == ("runs/default/resnet-50/seed=0",) * 2
    assert imagenet == ("runs/default/imagenet-resnet-50/seed=0",) * 2
    assert run_and_sweep_dirs("model=imagenet", "model.depth=152", "model.residual=false", "seed=3")[0] == (
        "runs/default/imagenet-plain-152/seed=3"
    )


def test_a_pre_activation_net_is_named_by_its_block_and_the_papers_keep_their_names():
    """model.block=preact is another network than the paper's: its own run directory, never the original's."""
    assert run_and_sweep_dirs("model.block=preact")[0] == "runs/default/resnet-20-preact/seed=0"
    assert run_and_sweep_dirs("model=plain", "model.block=preact", "model.depth=56")[1] == (
        "runs/default/plain-56-preact/seed=0"
    )
    assert run_and_sweep_dirs("model.block=original")[0] == "runs/default/resnet-20/seed=0"
    assert run_and_sweep_dirs("model.norm=none", "model.branch_init=skipinit")[0] == (
        "runs/default/resnet-20-norm-none-skipinit/seed=0"
    )
    assert run_and_sweep_dirs("model.block=preact", "model.branch_init=rezero")[0] == (
        "runs/default/resnet-20-preact-rezero/seed=0"
    )
    assert (
        run_and_sweep_dirs("model.drop_path=0.5", "model.depth=110")[0] == "runs/default/resnet-110-droppath0.5/seed=0"
    )
    assert run_and_sweep_dirs("model=plain", "model.init_mode=delta_orthogonal")[0] == (
        "runs/default/plain-20-delta_orthogonal/seed=0"
    )
    assert run_and_sweep_dirs("model=plain", "model.activation=crelu", "model.norm=none")[0] == (
        "runs/default/plain-20-norm-none-crelu/seed=0"
    )
    assert run_and_sweep_dirs("model.conv=dirac")[0] == "runs/default/resnet-20-dirac/seed=0"
    assert run_and_sweep_dirs("model.block=preact_bottleneck", "model.depth=164")[0] == (
        "runs/default/resnet-164-preact_bottleneck/seed=0"
    )


def test_a_run_frees_its_network_when_it_returns(tmp_path, fake_cifar_root, monkeypatch):
    """A local sweep trains its runs one after another in one process: nothing of a finished run may
    stay alive (on a GPU, its weights and optimizer state would hold device memory) until a later
    garbage collection happens to run."""
    import gc
    import weakref

    from conftest import compose_config
    from degradation.training import build, lifecycle

    built = []
    build_module = build.build_module

    def remembered(*args, **kwargs):
        module = build_module(*args, **kwargs)
        built.append(weakref.ref(module))
        return module

    monkeypatch.setattr(build, "build_module", remembered)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    gc.collect()
    gc.disable()  # only what train() itself frees counts
    try:
        lifecycle.train(compose_config(*TINY_RUN, f"data.root={fake_cifar_root}"), run)
        assert len(built) == 1 and built[0]() is None
    finally:
        gc.enable()


def test_each_net_of_the_interventions_study_lands_in_the_folder_its_file_is_named_after():
    """conf/intervention/<name>.yaml is the net whose run directory is <name>: the study's files and folders agree."""
    from degradation.conf import CONFIG_DIR

    names = sorted(path.stem for path in (CONFIG_DIR / "intervention").glob("*.yaml"))
    assert len(names) == 12
    for name in names:
        assert run_and_sweep_dirs(f"intervention={name}")[0] == f"runs/default/{name}/seed=0"
