"""The command line over a (tiny) sweep: data into the run directories, figures into the sweep's folder, results
reused, and one error line for every bad input."""

import json

import pytest

from conftest import TINY_RUN, main_refuses, run_train
from degradation.analyze import main
from degradation.runs.rundir import ANALYSIS_FILES, RunDir

SMALL = ["--points", "3", "--images", "30", "--ks", "1,2", "--draws", "2", "--pairs", "1"]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, fake_cifar_root):
    cwd = tmp_path_factory.mktemp("analyze")
    for arch in ("plain", "resnet"):
        result = run_train(*TINY_RUN, f"model={arch}", f"data.root={fake_cifar_root}", "name=tiny", cwd=cwd)
        assert result.returncode == 0, result.stderr[-2000:]
    return cwd


def test_all_four_analyses_write_their_data_into_each_run_and_their_figures_beside_the_sweeps(
    tiny_sweep, monkeypatch, capsys
):
    monkeypatch.chdir(tiny_sweep)
    main(["all", "--sweep", "runs/tiny", *SMALL])
    written = capsys.readouterr().out.split()
    for arch in ("plain", "resnet"):
        run = RunDir(tiny_sweep / f"runs/tiny/{arch}-8/seed=0")
        records = {name: run.read_analysis(name) for name in ANALYSIS_FILES}
        assert all(record is not None for record in records.values())
        assert records["landscape"]["complete"] and len(records["landscape"]["loss"]) == 3
        assert records["landscape"]["step"] == records["lesion"]["step"] == records["shattering"]["step"] == 12
        assert set(records["shattering"]) >= {"init", "trained"}
        assert len(records["gradients"]["init"]) == 8  # one row per conv/linear layer at step 0
    for name in (
        "gradients_by_layer",
        "gradients_ratio",
        "gradients_at_init",
        "shattering",
        "shattering_depth",
        "lesion",
        "landscape",
        "landscape_1d",
    ):
        assert f"figures/tiny/{name}.png" in written and f"figures/tiny/{name}.pdf" in written
        assert (tiny_sweep / f"figures/tiny/{name}.png").stat().st_size > 10_000


def test_results_already_computed_are_reused_and_other_settings_recompute(tiny_sweep, monkeypatch, capsys):
    monkeypatch.chdir(tiny_sweep)
    main(["lesion", "--sweep", "runs/tiny", *SMALL])
    run = RunDir(tiny_sweep / "runs/tiny/plain-8/seed=0")
    first = run.analysis_path("lesion").stat().st_mtime_ns
    capsys.readouterr()
    main(["lesion", "--sweep", "runs/tiny", *SMALL])
    assert "reusing" in capsys.readouterr().err and run.analysis_path("lesion").stat().st_mtime_ns == first
    main(["lesion", "--sweep", "runs/tiny", *SMALL[:-4], "--draws", "3", "--pairs", "1"])
    assert json.loads(run.analysis_path("lesion").read_text())["draws"] == 3


def test_trained_analyses_look_at_the_runs_final_weights(tiny_sweep, tmp_path, monkeypatch):
    """Known answer: with nothing deleted, the lesion study's error on the run's own test images is the run's final
    test error (the same weights, images and eval-mode BN)."""
    import shutil

    run = RunDir(shutil.copytree(tiny_sweep / "runs/tiny/resnet-8", tmp_path / "runs/one/resnet-8") / "seed=0")
    monkeypatch.chdir(tmp_path)
    main(["lesion", "--sweep", "runs/one", "--ks", "1", "--draws", "1"])
    final = run.read_metrics()[-1]
    assert final["step"] == run.read_analysis("lesion")["step"] == 12
    assert run.read_analysis("lesion")["intact"] == pytest.approx(final["test_err"], abs=1e-6)


def test_a_run_that_ended_after_its_last_checkpoint_reuses_its_results_too(tiny_sweep, tmp_path, monkeypatch, capsys):
    """A diverged run's summary says a later step than its last checkpoint's (a running one's, an earlier one):
    the record of the checkpoint's weights is what decides, so hours of lesion study are not redone."""
    import shutil

    run = RunDir(shutil.copytree(tiny_sweep / "runs/tiny/plain-8", tmp_path / "runs/diverged/plain-8") / "seed=0")
    summary = json.loads(run.summary_path.read_text())
    run.summary_path.write_text(json.dumps({**summary, "steps": summary["steps"] + 5, "status": "diverged"}))
    monkeypatch.chdir(tmp_path)
    main(["lesion", "--sweep", "runs/diverged", *SMALL])
    first = run.analysis_path("lesion").stat().st_mtime_ns
    capsys.readouterr()
    main(["lesion", "--sweep", "runs/diverged", *SMALL])
    assert "reusing" in capsys.readouterr().err and run.analysis_path("lesion").stat().st_mtime_ns == first


def test_nets_without_a_run_are_analysed_at_init(tmp_path, fake_cifar_root, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "shattering",
            "--nets",
            "plain-8,resnet-14",
            "--data-root",
            str(fake_cifar_root),
            "--pairs",
            "1",
            "--out",
            "init",
        ]
    )
    record = json.loads((tmp_path / "init/shattering-init.json").read_text())
    assert set(record["nets"]) == {"plain-8", "resnet-14"}
    assert set(record["nets"]["plain-8"]) == {"init"} and set(record["nets"]["plain-8"]["init"]) == {"train", "eval"}
    assert (tmp_path / "init/shattering-toy.json").is_file() and (
        tmp_path / "init/shattering_depth_at_init.png"
    ).is_file()


@pytest.mark.parametrize(
    "args, says",
    [
        (["landscape", "--nets", "plain-8"], "needs trained nets"),
        (["shattering", "--nets", "plain-9"], "6n+2"),
        (["shattering", "--nets", "vgg-16"], "plain or resnet"),
        (["landscape", "--points", "0"], "--points"),
        (["lesion", "--ks", "1,-2"], "--ks"),
        (["lesion", "--sweep", "no/such/sweep"], "no folder"),
        (["everything"], "invalid choice"),
        (["lesion", "--sweep", "runs/tiny", "--nets", "plain-8"], "not allowed with"),
    ],
)
def test_bad_input_is_one_error_line(args, says, tiny_sweep, monkeypatch, capsys):
    monkeypatch.chdir(tiny_sweep)
    assert says in main_refuses(main, args, capsys)


def test_a_sweep_without_runs_and_missing_data_are_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs/empty").mkdir(parents=True)
    assert "no runs in" in main_refuses(main, ["lesion", "--sweep", "runs/empty"], capsys)
    assert "no CIFAR-10 under" in main_refuses(
        main, ["gradients", "--nets", "plain-8", "--data-root", "nowhere"], capsys
    )
