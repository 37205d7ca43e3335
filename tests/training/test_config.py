import re

import pytest
import yaml
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from conftest import compose_config
from degradation.errors import UserError, one_line
from degradation.training.config import check_config, config_differences


def test_defaults_are_the_papers_protocol():
    cfg = compose_config()
    assert (cfg.model.arch, cfg.model.depth, cfg.model.residual, cfg.model.shortcut) == ("resnet", 20, True, "A")
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.1, 0.9, 1e-4)
    assert list(cfg.optim.milestones) == [32_000, 48_000] and cfg.optim.gamma == 0.1
    assert (cfg.optim.warmup, cfg.optim.warmup_steps, cfg.optim.warmup_lr) == ("auto", 400, 0.01)
    assert cfg.data.batch_size == 128 and cfg.trainer.max_steps == 64_000
    assert (cfg.data.pad, cfg.data.flip) == (4, True)
    assert cfg.trainer.precision == "32-true" and not any(cfg.speed.values())  # the fp32 path, no speed switch
    check_config(cfg)


def test_the_fast_preset_sets_every_speed_switch_that_helps_and_bf16_where_the_device_has_bf16_units():
    default, fast = compose_config(), compose_config("speed=fast")
    assert set(fast.speed) == set(default.speed)
    assert {key for key, on in fast.speed.items() if not on} == {"sync_every_step"}
    assert fast.trainer.precision == "auto"  # bf16-mixed where the device has bf16 units (test_precision.py)
    check_config(fast)


def test_plain_is_the_resnet_config_without_shortcuts():
    plain, resnet = compose_config("model=plain"), compose_config("model=resnet")
    assert (plain.model.arch, plain.model.residual) == ("plain", False)
    assert {k: v for k, v in plain.model.items() if k not in ("arch", "residual")} == {
        k: v for k, v in resnet.model.items() if k not in ("arch", "residual")
    }


def refusal(*overrides: str) -> str:
    """What `python -m degradation.train` prints after `error: ` for these overrides (types are checked by
    Hydra while composing, rules by check_config)."""
    try:
        check_config(compose_config(*overrides))
    except (UserError, HydraException, OmegaConfBaseException) as error:
        return one_line(error)
    raise AssertionError(f"{overrides} were accepted")


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.depth=21", r"model.depth must be 6n\+2"),
        ("optim.lr=-0.1", "optim.lr must be a number > 0"),
        ("optim.lr=0", "optim.lr must be a number > 0"),
        ("data.batch_size=0", "data.batch_size must be an integer > 0"),
        ("data.batch_size=1.5", "data.batch_size=1.5 Value '1.5' of type 'float' could not be converted to Integer"),
        ("data.num_classes=0", "data.num_classes must be an integer > 0"),
        ("data.flip=sometimes", "data.flip=sometimes Value 'sometimes' is not a valid bool"),
        ("seed=abc", "seed must be an integer >= 0"),
        ("seed=1.5", "seed must be an integer >= 0"),
        ("seed=-1", "seed must be an integer >= 0"),  # Lightning would silently pick a random seed
        ("model.shortcut=C", "model.shortcut must be one of A, B"),
        ("model.init_mode=bogus", "model.init_mode must be one of fan_in, fan_out, delta_orthogonal, got 'bogus'"),
        ("model.residual=maybe", "model.residual=maybe Value 'maybe' is not a valid bool"),
        ("optim.warmup=maybe", "optim.warmup must be one of auto, true, false"),
        ("optim.warmup_shape=cosine", "optim.warmup_shape must be one of constant, linear, got 'cosine'"),
        ("data.test_size=0", "data.test_size must be null .all test images. or an integer > 0, got 0"),
        ("trainer.precision=bf32", "trainer.precision must be one of 32-true, .*, auto, got 'bf32'"),
        ("optim.nesterov=maybe", "optim.nesterov=maybe Value 'maybe' is not a valid bool"),
        ("optim.momentum=false", "optim.momentum=false Value 'False' of type 'bool' could not be converted to Float"),
        ("optim.momentum=1", r"optim.momentum must be in \[0, 1\)"),
        ("optim.milestones=[5,2]", "optim.milestones must be increasing positive iterations, got \\[5, 2\\]"),
        ("trainer.eval_every=0", "trainer.eval_every must be null"),
        ("trainer.precision=fp8", "trainer.precision must be one of 32-true"),
        ("trainer.progress_bar=sometimes", "trainer.progress_bar must be one of auto, true, false"),
        ("speed.compile=maybe", "speed.compile=maybe Value 'maybe' is not a valid bool"),
        ("logger.wandb.mode=loud", "logger.wandb.mode must be one of auto, online, offline, disabled"),
        ("trainer.deterministic=true speed.cudnn_benchmark=true", "speed.cudnn_benchmark must be false when"),
        ("speed.cuda_graphs=true trainer.precision=16-mixed", "speed.cuda_graphs needs trainer.precision other than"),
        ("launcher=joblib mps=maybe", "mps must be true or false, got 'maybe'"),
    ],
)
def test_bad_values_are_refused_with_one_line_that_names_the_key(override, message):
    line = refusal(*override.split())
    assert re.search(message, line) and "\n" not in line, line


@pytest.mark.parametrize("devices, shown", [("2", "2"), ("[0,1]", "[0, 1]"), ("auto", "'auto'"), ("-1", "-1")])
def test_more_than_one_device_is_refused_with_one_line_that_points_to_a_joblib_sweep(devices, shown):
    """Lightning would start DDP, which the harness does not do (one loader for every rank, DDP hooks inside a
    captured graph, every rank writing the run directory); one run per GPU is a joblib sweep."""
    line = refusal(f"trainer.devices={devices}")
    assert (
        line.startswith("trainer.devices must be 1, or [k] for the k-th GPU (one device per run") and "\n" not in line
    )
    assert "launcher=joblib" in line and line.endswith(f"got {shown}"), line
    assert refusal("trainer.devices=[1]", "model.depth=21").startswith("model.depth")  # one GPU picked: accepted


def test_config_differences_ignore_where_a_run_executes_but_not_what_it_computes():
    old = {"optim": {"lr": 0.1}, "data": {"root": "a", "batch_size": 128}}
    new = {"optim": {"lr": 0.05}, "data": {"root": "b", "batch_size": 128}}
    assert config_differences(old, new) == ["optim.lr: 0.1 -> 0.05"]


# What docs/run-directory.md says may differ when a run is resumed: where and how it executes, not what it computes.
RESUME_MAY_CHANGE = [
    "data.root=/elsewhere",
    "data.download=false",
    "data.eval_batch_size=500",
    "trainer.accelerator=cpu",
    "trainer.devices=[1]",
    "trainer.progress_bar=true",
    "logger=wandb",
    "launcher=joblib jobs=4 mps=false",
    "launcher=submitit_local",
]


@pytest.mark.parametrize("override", RESUME_MAY_CHANGE)
def test_every_key_the_readme_lets_differ_on_resume_is_ignored(override):
    as_dict = lambda cfg: OmegaConf.to_container(cfg, resolve=True)  # noqa: E731
    assert config_differences(as_dict(compose_config()), as_dict(compose_config(*override.split()))) == []
    assert config_differences(as_dict(compose_config(*override.split())), as_dict(compose_config())) == []


@pytest.mark.parametrize("override", ["speed.tf32=true", "trainer.deterministic=true", "data.batch_size=64", "seed=1"])
def test_a_key_that_changes_what_is_computed_is_a_difference(override):
    as_dict = lambda cfg: OmegaConf.to_container(cfg, resolve=True)  # noqa: E731
    assert len(config_differences(as_dict(compose_config()), as_dict(compose_config(override)))) == 1


@pytest.mark.parametrize(
    "model, depth, params", [("resnet18", 18, 11_173_962), ("resnet34", 34, 21_282_122), ("resnet50", 50, 23_520_842)]
)
def test_imagenet_style_models_compose_and_residual_false_names_the_plain_twin(model, depth, params):
    residual, plain = compose_config(f"model={model}"), compose_config(f"model={model}", "model.residual=false")
    assert (residual.model.family, residual.model.depth, residual.model.arch) == ("imagenet", depth, "resnet")
    assert (plain.model.arch, plain.model.residual) == ("plain", False)  # runs land in imagenet-plain-<depth>/
    assert (residual.model.stride_in, residual.model.residual_scale) == ("3x3", 1.0)
    check_config(residual)
    check_config(plain)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=resnet18", "model.depth=20"], "model.depth must be one of 18, 34, 50, 101, 152 for family imagenet"),
        (["model=resnet50", "model.shortcut=A"], "unknown config key 'model.shortcut'"),  # always projections
        (["model=resnet50", "model.stride_in=2x2"], "model.stride_in must be one of 3x3, 1x1"),
        (["model.residual_scale=-1"], "model.residual_scale must be a number >= 0"),
        (["model.family=vit"], "model.family must be cifar in this model config"),
        (["model.family=imagenet"], "model.family must be cifar in this model config .other families: model=imagenet"),
    ],
)
def test_bad_model_choices_are_refused_with_the_key_named(overrides, message):
    assert re.search(message, refusal(*overrides)), refusal(*overrides)


def test_runs_recorded_before_a_key_existed_still_match_the_same_command():
    new = {
        "model": {"depth": 20, "family": "cifar", "residual_scale": 1.0, "stride_in": "3x3"},
        "speed": {"compile": False, "channels_last": False},
    }
    old = {"model": {"depth": 20}}
    assert config_differences(old, new) == []
    faster = {**new, "speed": {"compile": True, "channels_last": False}}
    assert config_differences(old, faster) == ["speed.compile: False -> True"]  # every switch was added off
    assert config_differences({"model": {"depth": 20, "family": "imagenet"}}, new) == [
        "model.family: 'imagenet' -> 'cifar'"
    ]


def test_runs_recorded_with_another_familys_keys_still_match_the_same_command():
    """Before each family had its own keys, a CIFAR run recorded stride_in and an ImageNet-style run shortcut=B."""
    as_dict = lambda cfg: OmegaConf.to_container(cfg, resolve=True)  # noqa: E731
    cifar, imagenet = as_dict(compose_config()), as_dict(compose_config("model=resnet18"))
    old_cifar = {**cifar, "model": {**cifar["model"], "stride_in": "3x3"}}
    old_imagenet = {**imagenet, "model": {**imagenet["model"], "shortcut": "B"}}
    assert config_differences(old_cifar, cifar) == [] and config_differences(old_imagenet, imagenet) == []
    assert config_differences({**cifar, "model": {**cifar["model"], "stride_in": "1x1"}}, cifar) == [
        "model.stride_in: '1x1' -> None"
    ]


def test_a_users_own_config_folder_adds_experiments_on_top_of_the_shipped_ones(tmp_path):
    """docs/protocol.md's way to add an experiment without touching the checkout or an installed package: a folder of
    the user's on Hydra's search path (`hydra.searchpath=[file://my_conf]`), composed with the shipped conf/."""
    from conftest import run_train

    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "my_ablation.yaml").write_text("# @package _global_\nname: my_ablation\noptim:\n  lr: 0.05\n")
    result = run_train("--cfg", "job", "hydra.searchpath=[file://my_conf]", "experiment=my_ablation", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    composed = yaml.safe_load(result.stdout)
    assert composed["name"] == "my_ablation" and composed["optim"]["lr"] == 0.05
    assert composed["optim"]["momentum"] == 0.9 and composed["model"]["depth"] == 20  # the rest: the shipped defaults


def test_a_fixup_run_recorded_before_its_scalar_lr_is_another_run_other_nets_are_the_same():
    """optim.fixup_scalar_lr came after runs were recorded: it changes nothing for a BN net, which resumes; a
    Fixup run recorded without it trained its scalars at the lr itself and is not resumed at a tenth of it."""
    as_dict = lambda cfg: OmegaConf.to_container(cfg, resolve=True)  # noqa: E731
    before = lambda cfg: {**cfg, "optim": {k: v for k, v in cfg["optim"].items() if k != "fixup_scalar_lr"}}  # noqa: E731
    paper, fixup = as_dict(compose_config()), as_dict(compose_config("model.branch_init=fixup", "model.norm=none"))
    assert config_differences(before(paper), paper) == [] and config_differences(fixup, fixup) == []
    assert config_differences(before(fixup), fixup) == ["optim.fixup_scalar_lr: 1.0 -> 0.1"]
