"""The command line over a (tiny) sweep: data into the run directories, figures into the sweep's folder, results
reused, and one error line for every bad input."""

import contextlib
import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from conftest import TINY_RUN, main_refuses, run_train
from degradation.analysis.registry import ANALYSES, Analysis, Option, markdown_table, options_by_flag
from degradation.analysis.shattering import TOY_DEFINITION
from degradation.analysis.subjects import init_net
from degradation.analyze import main
from degradation.report.analysis_figures import Drawing
from degradation.runs.rundir import RunDir

SMALL = ["--points", "3", "--images", "30", "--ks", "1,2", "--draws", "2", "--pairs", "1"]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, fake_cifar_root):
    cwd = tmp_path_factory.mktemp("analyze")
    for arch in ("plain", "resnet"):
        result = run_train(*TINY_RUN, f"model={arch}", f"data.root={fake_cifar_root}", "name=tiny", cwd=cwd)
        assert result.returncode == 0, result.stderr[-2000:]
    return cwd


@pytest.fixture(scope="module")
def written_by_all(tiny_sweep) -> list[str]:
    """`analyze all` over the tiny sweep, once: what it printed (the figures it wrote)."""
    output, cwd = io.StringIO(), os.getcwd()
    os.chdir(tiny_sweep)
    try:
        with contextlib.redirect_stdout(output):
            main(["all", "--sweep", "runs/tiny", *SMALL])
    finally:
        os.chdir(cwd)
    return output.getvalue().split()


def test_all_four_analyses_write_their_data_into_each_run_and_their_figures_beside_the_sweeps(
    tiny_sweep, written_by_all
):
    written = written_by_all
    for arch in ("plain", "resnet"):
        run = RunDir(tiny_sweep / f"runs/tiny/{arch}-8/seed=0")
        records = {name: run.read_analysis(name) for name in ANALYSES}
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
    run = RunDir(shutil.copytree(tiny_sweep / "runs/tiny/resnet-8", tmp_path / "runs/one/resnet-8") / "seed=0")
    monkeypatch.chdir(tmp_path)
    main(["lesion", "--sweep", "runs/one", "--ks", "1", "--draws", "1"])
    final = run.read_metrics()[-1]
    assert final["step"] == run.read_analysis("lesion")["step"] == 12
    assert run.read_analysis("lesion")["intact"] == pytest.approx(final["test_err"], abs=1e-6)


def test_a_run_that_ended_after_its_last_checkpoint_reuses_its_results_too(tiny_sweep, tmp_path, monkeypatch, capsys):
    """A diverged run's summary says a later step than its last checkpoint's (a running one's, an earlier one):
    the record of the checkpoint's weights is what decides, so hours of lesion study are not redone."""
    run = RunDir(shutil.copytree(tiny_sweep / "runs/tiny/plain-8", tmp_path / "runs/diverged/plain-8") / "seed=0")
    summary = json.loads(run.summary_path.read_text())
    run.summary_path.write_text(json.dumps({**summary, "steps": summary["steps"] + 5, "status": "diverged"}))
    monkeypatch.chdir(tmp_path)
    main(["lesion", "--sweep", "runs/diverged", *SMALL])
    first = run.analysis_path("lesion").stat().st_mtime_ns
    capsys.readouterr()
    main(["lesion", "--sweep", "runs/diverged", *SMALL])
    assert "reusing" in capsys.readouterr().err and run.analysis_path("lesion").stat().st_mtime_ns == first


def test_records_of_another_definition_are_computed_again_and_the_toy_follows_its_code(
    tmp_path, fake_cifar_root, monkeypatch
):
    """A record whose definition has changed since (the measure changed) is not reused; the at-init record's
    extras (shattering's 1-D toy) are computed again on every call, so an old toy is never drawn."""
    monkeypatch.chdir(tmp_path)
    args = ["shattering", "--nets", "plain-8", "--data-root", str(fake_cifar_root), "--pairs", "1", "--out", "init"]
    main(args)
    path = tmp_path / "init/shattering-init.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "extras": {"toy": {"definition": "an older toy"}}}))
    main(args)
    assert json.loads(path.read_text())["extras"]["toy"]["definition"] == TOY_DEFINITION

    record["nets"]["plain-8"] = {"init": "from an older definition"}
    path.write_text(json.dumps({**record, "definition": "an older shattering"}))
    main(args)
    again = json.loads(path.read_text())
    assert again["definition"] == ANALYSES["shattering"].definition
    assert set(again["nets"]["plain-8"]["init"]) == {"train", "eval"}


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
    assert set(record["extras"]["toy"]["nets"]) == {"feedforward-1", "feedforward-24", "resnet-50"}
    assert (tmp_path / "init/shattering_depth_at_init.png").is_file()


@pytest.mark.parametrize(
    "args, says",
    [
        pytest.param(["landscape", "--nets", "plain-8"], "needs trained nets", id="trained-only-at-init"),
        pytest.param(["shattering", "--nets", "plain-9"], "6n+2", id="depth"),
        pytest.param(["shattering", "--nets", "vgg-16"], "plain or resnet", id="net-name"),
        pytest.param(["landscape", "--points", "0"], "--points", id="points"),
        pytest.param(["lesion", "--ks", "1,-2"], "--ks", id="ks"),
        pytest.param(["lesion", "--sweep", "no/such/sweep"], "no folder", id="sweep"),
        pytest.param(
            ["everything"], f"no analysis 'everything': the analyses are {', '.join(ANALYSES)} (or all)", id="name"
        ),
        pytest.param(["lesion", "--sweep", "runs/tiny", "--nets", "plain-8"], "not allowed with", id="sweep-and-nets"),
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


def test_a_sweep_of_several_kinds_is_refused_before_anything_is_computed_and_only_picks_nets(
    tiny_sweep, tmp_path, monkeypatch, capsys
):
    """The interventions study's sweep holds variants: an analysis drawing one kind at a time refuses it at once
    (not after hours of computing), and --only picks the nets to analyse, the lesion study's figure drawing
    ResNet-8 and its variant side by side."""
    mixed = tmp_path / "runs/mixed"
    shutil.copytree(tiny_sweep / "runs/tiny", mixed)
    shutil.copytree(mixed / "resnet-8", mixed / "resnet-8-preact")
    variant = RunDir(mixed / "resnet-8-preact/seed=0")
    variant.summary_path.write_text(json.dumps({**variant.read_summary(), "variant": "preact"}))
    runs = [RunDir(path) for path in sorted(mixed.glob("*/seed=0"))]
    for run in runs:
        for name in ANALYSES:
            run.analysis_path(name).unlink(missing_ok=True)
    monkeypatch.chdir(tmp_path)
    said = main_refuses(main, ["all", "--sweep", "runs/mixed", *SMALL], capsys)
    assert "gradients, shattering, landscape: the figures draw one kind of net at a time" in said
    assert "the paper's, preact" in said and "--only" in said
    assert not any(run.analysis_path(name).exists() for run in runs for name in ANALYSES)
    main(["lesion", "--sweep", "runs/mixed", "--only", "resnet-8,resnet-8-preact", *SMALL])
    assert [run.analysis_path("lesion").is_file() for run in runs] == [False, True, True]  # plain-8 left out
    capsys.readouterr()
    assert "no runs in runs/mixed of nets resnet-14" in main_refuses(
        main, ["lesion", "--sweep", "runs/mixed", "--only", "resnet-14"], capsys
    )


# --- one record per analysis: a new analysis is its record, its compute function and its figure -----------


def count_parameters(subject, job) -> dict:
    return {"parameters": job.settings["scale"] * sum(p.numel() for p in init_net(subject).parameters())}


def parameter_bars(drawing: Drawing) -> dict:
    figure, ax = plt.subplots()
    ax.bar([f"{e.arch}-{e.depth}" for e in drawing.entries], [e.record["parameters"] for e in drawing.entries])
    return {"parameters": figure}


PARAMETERS = Analysis(
    "parameters",
    "how many weights each net has (a test's analysis)",
    "the number of the net's parameters times --scale",
    count_parameters,
    lambda options: {"scale": options.scale},
    parameter_bars,
    ("parameters",),
    options=(Option("--scale", "multiply the count by", default=1),),
)


@pytest.fixture
def with_parameters(monkeypatch):
    monkeypatch.setitem(ANALYSES, PARAMETERS.name, PARAMETERS)


def test_an_analysis_registered_by_its_record_alone_runs_through_the_command_line(
    with_parameters, tiny_sweep, fake_cifar_root, monkeypatch, capsys
):
    """Known answer: the count is the `params` training recorded in summary.json, times --scale; the record's
    name gives the run directory's file, the --help line, the option and the figure."""
    monkeypatch.chdir(tiny_sweep)
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "parameters  how many weights each net has" in help_text and "--scale" in help_text

    main(["parameters", "--sweep", "runs/tiny", "--scale", "3"])
    written = capsys.readouterr().out.split()
    for arch in ("plain", "resnet"):
        run = RunDir(tiny_sweep / f"runs/tiny/{arch}-8/seed=0")
        record = json.loads((run.path / "parameters.json").read_text())
        assert record == {
            "definition": PARAMETERS.definition,
            "settings": {"scale": 3},
            "parameters": 3 * run.read_summary()["params"],
        }
    assert "figures/tiny/parameters.png" in written and (tiny_sweep / "figures/tiny/parameters.pdf").is_file()

    main(["parameters", "--nets", "plain-8", "--data-root", str(fake_cifar_root), "--out", "init"])
    assert json.loads((tiny_sweep / "init/parameters-init.json").read_text())["nets"]["plain-8"]["parameters"] > 0


def test_a_figure_its_record_does_not_name_is_refused(tiny_sweep, monkeypatch):
    unnamed = dataclasses.replace(PARAMETERS, figures=("bars",))
    monkeypatch.setitem(ANALYSES, unnamed.name, unnamed)
    monkeypatch.chdir(tiny_sweep)
    with pytest.raises(ValueError, match="drew \\['parameters'\\], which its record does not name"):
        main(["parameters", "--sweep", "runs/tiny"])


def test_analyses_that_share_an_option_must_agree_on_its_default(monkeypatch):
    other = dataclasses.replace(PARAMETERS, name="other", options=(Option("--pairs", "pairs", default=7),))
    monkeypatch.setitem(ANALYSES, other.name, other)
    with pytest.raises(ValueError, match="--pairs: analyses that share an option share its type and default"):
        options_by_flag()


def test_docs_list_the_analyses_as_their_records_say():
    docs = (Path(__file__).resolve().parents[2] / "docs/analyses.md").read_text()
    assert markdown_table() in docs, f"docs/analyses.md's table of the analyses should read:\n{markdown_table()}"


def test_redraw_draws_the_recorded_data_without_checkpoints(tiny_sweep, written_by_all, tmp_path, monkeypatch, capsys):
    """What experiments/ commit: the records without checkpoints; --redraw draws them and computes nothing (the
    records were computed with --pairs 1; without --redraw the default 4 would compute them again)."""
    sweep = shutil.copytree(tiny_sweep / "runs/tiny", tmp_path / "runs/copied")
    monkeypatch.chdir(tmp_path)
    for checkpoint in sweep.glob("*/seed=*/checkpoints/*.ckpt"):
        checkpoint.unlink()
    records = {path: path.read_text() for path in sweep.glob("*/seed=*/shattering.json")}
    capsys.readouterr()
    main(["shattering", "--sweep", "runs/copied", "--redraw"])
    assert "figures/copied/shattering_depth.png" in capsys.readouterr().out.split()
    assert len(records) == 2 and all(path.read_text() == text for path, text in records.items())
