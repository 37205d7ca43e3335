"""Promise 3: each bad input ends with one readable line naming the problem, a non-zero exit code, no traceback,
and nothing written to the runs tree."""

import shutil
import sys

import numpy as np
import pytest

from conftest import TINY_RUN, one_error_line, run_train
from degradation import cli
from degradation.data.cifar10 import CIFAR_DIRNAME
from fake_cifar import write_batch


def broken_cifar(root, fake_cifar_root, damage):
    shutil.copytree(fake_cifar_root / CIFAR_DIRNAME, root / CIFAR_DIRNAME)
    damage(root / CIFAR_DIRNAME / "data_batch_2")
    return root


def truncate(path):
    path.write_bytes(path.read_bytes()[:700])


def garble(path):
    path.write_bytes(b"\x80\x04 this is not a pickle" * 10)


def wrong_shapes(path):
    write_batch(path, np.zeros((4, 3, 16, 16), dtype=np.uint8), np.zeros(4, dtype=int))


def wrong_labels(path):
    write_batch(path, np.zeros((4, 3, 32, 32), dtype=np.uint8), np.array([0, 1, 2, 10]))


# (what is wrong, overrides, the words the one line must contain); {data} is a healthy CIFAR folder's root.
BAD_INPUTS = [
    ("unknown config key", ["trainer.max_step=5"], "unknown config key 'trainer.max_step'"),
    ("depth not 6n+2", ["model.depth=21"], "model.depth must be 6n+2"),
    ("unknown model", ["model=vgg"], "available: imagenet, plain, resnet, resnet18, resnet34, resnet50"),
    ("negative lr", ["optim.lr=-0.1"], "optim.lr must be a number > 0, got -0.1"),
    ("zero lr", ["optim.lr=0"], "optim.lr must be a number > 0, got 0"),
    ("batch size 0", ["data.batch_size=0"], "data.batch_size must be an integer > 0, got 0"),
    ("non-integer seed", ["seed=one"], "seed must be an integer >= 0, got 'one'"),
    ("fractional seed", ["seed=1.5"], "seed must be an integer >= 0, got 1.5"),
    (
        "unknown init mode",
        ["model.init_mode=bogus"],
        "model.init_mode must be one of fan_in, fan_out, delta_orthogonal, got 'bogus'",
    ),
    ("unknown block", ["model.block=pre"], "model.block must be one of original, preact, preact_bottleneck, got 'pre'"),
    (
        "bottleneck depth not 9n+2",
        ["model.block=preact_bottleneck", "model.depth=32"],
        "model.depth must be 9n+2 with n >= 1 for block preact_bottleneck (e.g. 11, 20, 29, 164, 1001), got 32",
    ),
    (
        "delta-orthogonal on pre-activation bottlenecks",
        ["model.block=preact_bottleneck", "model.depth=164", "model.init_mode=delta_orthogonal"],
        "a bottleneck's first 1x1 conv reduces its channels to a quarter",
    ),
    ("unknown activation", ["model=plain", "model.activation=tanh"], "model.activation must be one of relu, crelu"),
    ("unknown conv", ["model.conv=dilated"], "model.conv must be one of standard, dirac, got 'dilated'"),
    ("crelu on a residual net", ["model.activation=crelu"], "model.activation=crelu needs model.residual=false"),
    (
        "crelu with delta-orthogonal",
        ["model=plain", "model.activation=crelu", "model.init_mode=delta_orthogonal"],
        "model.init_mode=delta_orthogonal is not defined",
    ),
    (
        "dirac with fixup",
        ["model.conv=dirac", "model.norm=none", "model.branch_init=fixup"],
        "model.conv=dirac does not combine with model.branch_init=fixup",
    ),
    ("unknown norm", ["model.norm=layer"], "model.norm must be one of bn, none, got 'layer'"),
    (
        "unknown branch init",
        ["model.branch_init=zero"],
        "model.branch_init must be one of none, rezero, skipinit, fixup",
    ),
    ("skipinit with bn", ["model.branch_init=skipinit"], "model.branch_init=skipinit needs model.norm=none"),
    ("a gate without a shortcut", ["model=plain", "model.branch_init=rezero"], "needs model.residual=true"),
    ("fixup with bn", ["model.branch_init=fixup"], "model.branch_init=fixup needs model.norm=none"),
    ("drop_path of 1", ["model.drop_path=1"], "model.drop_path must be in [0, 1), got 1.0"),
    (
        "delta-orthogonal on bottlenecks",
        ["model=resnet50", "model.depth=50", "model.init_mode=delta_orthogonal"],
        "model.init_mode=delta_orthogonal needs convs with at least as many output as input channels",
    ),
    ("drop_path on a plain net", ["model=plain", "model.drop_path=0.2"], "model.drop_path needs model.residual=true"),
    (
        "fixup on a pre-activation net",
        ["model.branch_init=fixup", "model.norm=none", "model.block=preact"],
        "model.branch_init=fixup needs model.block=original",
    ),
    (
        "a key of another family",
        ["model=resnet18", "model.block=preact"],
        "model.block is not a key of this model's family: only family cifar has it",
    ),
    ("nesterov not a bool", ["optim.nesterov=maybe"], "optim.nesterov=maybe Value 'maybe' is not a valid bool"),
    ("flip not a bool", ["data.flip=sometimes"], "data.flip=sometimes Value 'sometimes' is not a valid bool"),
    ("no classes", ["data.num_classes=0"], "data.num_classes must be an integer > 0, got 0"),
    (
        "momentum a bool",
        ["optim.momentum=false"],
        "optim.momentum=false Value 'False' of type 'bool' could not be converted",
    ),
    ("missing data root", ["data.root=nowhere"], "CIFAR-10 not found in nowhere/cifar-10-batches-py/"),
    ("unknown launcher", ["launcher=warp"], "available: joblib, local, slurm, submitit_local"),
]
BROKEN_DATA = [
    ("truncated batch", truncate, "data_batch_2 is not a readable CIFAR-10 batch (truncated or corrupted?)"),
    ("corrupted batch", garble, "data_batch_2 is not a readable CIFAR-10 batch"),
    ("wrong shapes", wrong_shapes, "data_batch_2: expected uint8 data of shape [N, 3072]"),
    ("wrong labels", wrong_labels, "data_batch_2: expected 4 labels in 0..9"),
]


def assert_one_line_error(code: int, stderr: str, words: str) -> None:
    line = one_error_line(code, stderr)
    assert words in line, line


def main_in_process(args: list[str], cwd, monkeypatch, capsys) -> tuple[int, str]:
    """`python -m degradation.train args` without a new interpreter (its imports cost ~7 s per case).

    One case per kind also runs as a real subprocess below, so nothing is only checked in-process.
    """
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["train", *args])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # main() sets it; restored after the test
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("problem, overrides, words", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_a_bad_config_value_ends_with_one_line_and_writes_nothing(
    problem, overrides, words, tmp_path, fake_cifar_root, monkeypatch, capsys
):
    code, stderr = main_in_process(
        [*TINY_RUN, f"data.root={fake_cifar_root}", *overrides], tmp_path, monkeypatch, capsys
    )
    assert_one_line_error(code, stderr, words)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("problem, damage, words", BROKEN_DATA, ids=[case[0] for case in BROKEN_DATA])
def test_broken_cifar_files_end_with_one_line_and_write_nothing(
    problem, damage, words, tmp_path, fake_cifar_root, monkeypatch, capsys
):
    root = broken_cifar(tmp_path / "data", fake_cifar_root, damage)
    code, stderr = main_in_process([*TINY_RUN, f"data.root={root}"], tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, stderr, words)
    assert not (tmp_path / "runs").exists()


def test_a_runs_directory_that_cannot_be_written_ends_with_one_line(tmp_path, fake_cifar_root, monkeypatch, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the runs folder should go")
    args = [*TINY_RUN, f"data.root={fake_cifar_root}", f"runs_root={blocker}/runs"]
    code, stderr = main_in_process(args, tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, stderr, f"cannot write {blocker}")
    assert blocker.read_text() == "a file where the runs folder should go"


def test_the_real_process_prints_the_same_one_line(tmp_path, fake_cifar_root):
    result = run_train(*TINY_RUN, f"data.root={fake_cifar_root}", "trainer.max_step=5", cwd=tmp_path)
    assert_one_line_error(result.returncode, result.stderr, "unknown config key 'trainer.max_step'")
    assert not (tmp_path / "runs").exists()


def test_a_truncated_batch_in_the_real_process(tmp_path, fake_cifar_root):
    root = broken_cifar(tmp_path / "data", fake_cifar_root, truncate)
    result = run_train(*TINY_RUN, f"data.root={root}", cwd=tmp_path)
    assert_one_line_error(result.returncode, result.stderr, "is not a readable CIFAR-10 batch")
    assert not (tmp_path / "runs").exists()
