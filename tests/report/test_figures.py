import csv

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from conftest import main_refuses
from degradation.analysis.responses import DEFINITION
from degradation.report import figures
from degradation.runs.results import load_sweep
from degradation.runs.rundir import RunDir
from synthetic_sweep import known_error, write_run, write_sweep


@pytest.fixture
def sweep(tmp_path):
    return load_sweep(write_sweep(tmp_path / "grid"))


def lines_by_gid(ax) -> dict:
    return {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}


def test_figure6_has_plain_left_resnet_right_with_dashed_train_and_bold_test_curves(sweep):
    fig = figures.figure6(sweep)  # every net ends inside 0-20 %: the paper's axis
    left, right = fig.axes
    assert (left.get_title(), right.get_title()) == ("plain nets", "ResNets")
    assert left.get_ylim() == (0, 20) and left.get_xlabel() == "iter." and left.get_ylabel() == "error (%)"
    assert left.get_xlim() == right.get_xlim() and left.get_xlim()[0] == 0  # shared, from 0
    for ax, arch in ((left, "plain"), (right, "resnet")):
        lines = lines_by_gid(ax)
        assert set(lines) == {f"{arch}-{d}:{c}" for d in (20, 56) for c in ("train_err", "test_err")}
        train, test = lines[f"{arch}-56:train_err"], lines[f"{arch}-56:test_err"]
        assert train.get_linestyle() == "--" and test.get_linestyle() == "-"
        assert test.get_linewidth() > train.get_linewidth()
        assert train.get_color() != lines[f"{arch}-20:train_err"].get_color()  # one colour per depth
        expected = np.mean(
            [[known_error(arch, 56, s, step, False) for step in (1000, 2000, 3000, 4000)] for s in (0, 1)], 0
        )
        assert np.allclose(test.get_ydata(), expected)  # the mean over seeds
        assert np.allclose(test.get_xdata(), [1000, 2000, 3000, 4000])  # iterations (runs shorter than 1e4)
        assert test.get_marker() == "o" and train.get_marker() in ("None", None, "")  # 4 test points: marked
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            f"{figures.TITLES[arch]}-20",
            f"{figures.TITLES[arch]}-56",
            "training error",
            "test error",
        ]  # the style key
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 4  # a min-max band per curve


def test_a_net_above_a_given_axis_is_noted_under_the_panel_not_over_the_curves(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", depths=(20,), seeds=(0,))
    write_run(sweep_dir, "plain", 110, 0)  # errors around 17-21 % train, test 2 points higher
    ax = figures.figure6(load_sweep(sweep_dir), ylim=(0, 5)).axes[0]
    [note] = [t for t in ax.texts if t.get_gid() == "off-axis"]
    assert "plain-110" in note.get_text() and "plain-20" in note.get_text()
    assert note.get_position()[1] < 0 and note.get_transform() == ax.transAxes  # below the axes
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["plain-20", "plain-110"]  # by their dashed lines


def test_the_paper_axis_gives_way_to_one_that_shows_every_net_and_says_so(tmp_path):
    """A short sweep, or one trained on the offline copy, ends above 20 %: every net is drawn on a fitted axis."""
    sweep_dir = write_sweep(tmp_path / "grid", depths=(20,), seeds=(0,))
    write_run(sweep_dir, "plain", 300, 0)  # ends at 34 % train, 36 % test
    left, right = figures.figure6(load_sweep(sweep_dir)).axes
    assert left.get_ylim() == right.get_ylim() == (0, 40)  # above the highest point (39 %), in steps of 5
    assert [t.get_text() for t in left.texts if t.get_gid() == "axis-note"] == [
        "axis fitted to the data: some nets end above the paper's 0-20 %"
    ]
    assert {"plain-20", "plain-300"} <= {t.get_text() for t in left.get_legend().get_texts()}


def test_long_runs_are_drawn_in_the_papers_units_of_1e4_iterations(tmp_path):
    sweep_dir = tmp_path / "grid"
    write_run(sweep_dir, "plain", 20, 0, steps=(16000, 32000, 48000, 64000))
    ax = figures.figure6(load_sweep(sweep_dir), ylim="auto").axes[0]
    assert ax.get_xlabel() == "iter. (1e4)" and np.allclose(
        lines_by_gid(ax)["plain-20:test_err"].get_xdata(), [1.6, 3.2, 4.8, 6.4]
    )
    assert ax.get_xlim()[0] == 0 and 6.4 <= ax.get_xlim()[1] < 7


def test_a_diverged_run_is_drawn_up_to_its_divergence_and_marked(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", depths=(20,), seeds=(0,))
    write_run(sweep_dir, "plain", 110, 0, status="diverged", steps=(1000, 2000))
    ax = figures.figure6(load_sweep(sweep_dir), ylim="auto").axes[0]
    assert lines_by_gid(ax)["plain-110:test_err"].get_xdata().max() == 2000
    assert any(line.get_gid() == "diverged" and line.get_xdata()[0] == 2000 for line in ax.get_lines())


def test_figure1_compares_plain_20_and_56_in_training_and_test_error(sweep):
    fig = figures.figure1(sweep)
    assert [ax.get_title() for ax in fig.axes] == ["training error", "test error"]
    assert set(lines_by_gid(fig.axes[1])) == {"plain-20:test_err", "plain-56:test_err"}


def test_test_errors_on_a_test_subset_say_so_in_every_figure_legend_title_and_table(tmp_path):
    for arch in ("plain", "resnet"):
        for depth in (20, 56):
            write_run(tmp_path / "cpu", arch, depth, 0, test_size=2000)
    sweep = load_sweep(tmp_path / "cpu")
    said = "on the first 2000 of the 10,000 test images"
    for ax in figures.figure6(sweep).axes:
        assert ax.get_legend().get_texts()[-1].get_text() == f"test error\n({said})"
    assert figures.figure1(sweep).axes[1].get_title() == f"test error\n({said})"
    assert f"Test errors {said}." in figures.table6_markdown(figures.table6(sweep), sweep)


def test_table6_means_stds_and_gap_equal_hand_computed_values(sweep):
    rows = {(r["arch"], r["depth"]): r for r in figures.table6(sweep)}
    finals = [known_error("plain", 56, s, 4000, False) for s in (0, 1)]
    row = rows[("plain", 56)]
    assert row["test_err_mean"] == pytest.approx(sum(finals) / 2)
    assert row["test_err_std"] == pytest.approx(abs(finals[0] - finals[1]) / np.sqrt(2))  # sample std of two
    assert row["test_err_best"] == pytest.approx(min(finals)) and row["seeds"] == 2 and row["params"] == 56_000
    assert rows[("resnet", 56)]["paper_test_err"] == 6.97 and rows[("plain", 56)]["paper_test_err"] is None
    gap = figures.degradation_gap(list(rows.values()))
    assert gap["plain"] == pytest.approx(3.6) and gap["resnet"] == pytest.approx(-1.8)
    train_gap = figures.degradation_gap(list(rows.values()), error="train")  # the degradation problem itself
    assert train_gap["plain"] == pytest.approx(3.6) and train_gap["resnet"] == pytest.approx(-1.8)
    text = figures.table6_markdown(list(rows.values()), sweep)
    assert "training error: plain 3.60, ResNet -1.80; test error: plain 3.60, ResNet -1.80." in text


def test_write_all_writes_every_file_for_a_partial_sweep(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", archs=("plain",), depths=(20,), seeds=(0,))
    (sweep_dir / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      model: plain,resnet\n      model.depth: 20,56\n      seed: '0'\n"
        "  overrides:\n    task: []\n"
    )
    sweep = load_sweep(sweep_dir)
    assert sweep.missing == ["plain-56/seed=0", "resnet-20/seed=0", "resnet-56/seed=0"]
    written, warnings = figures.write_all(sweep, tmp_path / "out")
    # No run has responses.json: no empty Figure 7, and a warning that says how to get its data.
    assert {p.name for p in written} == {"fig6.png", "fig6.pdf", "fig1.png", "fig1.pdf", "table6.md", "table6.csv"}
    assert (
        warnings == [f"Figure 7 not drawn: {figures.NO_RESPONSES}"] and "python -m degradation.responses" in warnings[0]
    )
    assert not (tmp_path / "out/fig7.png").exists()
    assert all(p.stat().st_size > 0 for p in written)
    assert "Missing or unfinished runs: plain-56/seed=0" in (tmp_path / "out/table6.md").read_text()
    with open(tmp_path / "out/table6.csv") as file:
        assert [row["depth"] for row in csv.DictReader(file)] == ["20"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--sweep", "{tmp}/nope"], "error: argument --sweep: no folder {tmp}/nope"),
        (["--runs", "{tmp}/nowhere"], "error: argument --runs: no folder {tmp}/nowhere"),
        (["--ylim", "5"], "error: argument --ylim: expected 'paper', 'auto' or 'low,high' (e.g. 0,20), got '5'"),
        (["--ylim", "garbage"], "error: argument --ylim: expected 'paper', 'auto' or 'low,high'"),
        (["--ylim", "20,0"], "error: argument --ylim: low must be below high, got '20,0'"),  # an upside-down axis
        (["--colour", "red"], "error: unrecognized arguments: --colour red"),
        (["--source", "wandb"], "error: --source wandb needs --group"),
    ],
)
def test_the_command_line_refuses_bad_flags_with_one_line_naming_the_flag(tmp_path, capsys, args, words):
    line = main_refuses(figures.main, [arg.format(tmp=tmp_path) for arg in args], capsys)
    assert line.startswith(words.format(tmp=tmp_path)), line


def test_figure7_plots_response_stds_in_order_and_sorted(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", depths=(20,), seeds=(0, 1))
    for seed, scale in ((0, 1.0), (1, 3.0)):
        RunDir(sweep_dir / f"plain-20/seed={seed}").write_responses(
            DEFINITION, [scale * v for v in (1.0, 3.0, 2.0)], step=4000
        )
    fig = figures.figure7(load_sweep(sweep_dir))
    top, bottom = fig.axes
    assert top.get_xlabel() == "layer index (original)" and bottom.get_xlabel() == "layer index (sorted by magnitude)"
    (in_order,), (by_size,) = top.get_lines(), bottom.get_lines()
    assert in_order.get_gid() == "plain-20" and in_order.get_linestyle() == "--"
    assert list(in_order.get_ydata()) == [2.0, 6.0, 4.0]  # mean over the two seeds
    assert list(by_size.get_ydata()) == [6.0, 4.0, 2.0]


def test_table6_reports_the_test_error_where_validation_was_best_not_the_final_one(tmp_path):
    """With a validation split (data.val_size > 0), Table 6 never selects on the test set: it reports the test
    error at the step of the lowest validation error."""
    from degradation.runs.rundir import METRIC_COLUMNS, VAL_COLUMNS

    run = RunDir(tmp_path / "sweep/resnet-20/seed=0")
    run.path.mkdir(parents=True)
    writer = run.metrics_writer(METRIC_COLUMNS + VAL_COLUMNS)
    for step, val_err, test_err in [(1000, 12.0, 11.0), (2000, 9.0, 10.0), (3000, 10.0, 8.5)]:
        writer.write(step, {"train_err": 5.0, "val_err": val_err, "test_err": test_err, "epoch": 0})
    run.write_summary(
        {
            "arch": "resnet",
            "depth": 20,
            "seed": 0,
            "status": "completed",
            "params": 1,
            "steps": 3000,
            "final_train_err": 5.0,
            "final_test_err": 8.5,
        }
    )
    [row] = figures.table6(load_sweep(tmp_path / "sweep"))
    assert row["test_err_mean"] == 10.0  # at step 2000, where validation was best; the final value is 8.5


def test_table6_gives_the_training_error_and_counts_diverged_runs(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", depths=(56,), seeds=(0, 1))
    write_run(sweep_dir, "plain", 110, 0, status="diverged", steps=(1000, 2000))
    rows = {(r["arch"], r["depth"]): r for r in figures.table6(load_sweep(sweep_dir))}
    trains = [known_error("plain", 56, seed, 4000, True) for seed in (0, 1)]
    assert rows[("plain", 56)]["train_err_mean"] == pytest.approx(sum(trains) / 2)
    assert (rows[("plain", 56)]["diverged"], rows[("plain", 110)]["diverged"]) == (0, 1)


def test_the_written_fig6_is_on_the_papers_axis_or_fitted_to_the_data_with_ylim_auto(tmp_path, monkeypatch):
    from pathlib import Path

    from matplotlib.figure import Figure

    sweep_dir = write_sweep(tmp_path / "grid")
    axes_when_saved, savefig = {}, Figure.savefig

    def recording_savefig(fig, path, *args, **kwargs):
        axes_when_saved[Path(path).name] = [ax.get_ylim() for ax in fig.axes]
        return savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording_savefig)
    starts_high = RunDir(sweep_dir / "resnet-110/seed=0")  # 60 % at first, like every real run; ends at 5 %
    starts_high.path.mkdir(parents=True)
    for step, error in [(100, 60.0), (4000, 5.0)]:
        starts_high.metrics_writer().write(step, {"train_err": error, "test_err": error + 1})
    starts_high.write_summary({"arch": "resnet", "depth": 110, "seed": 0, "status": "completed", "steps": 4000})
    figures.main(["--sweep", str(sweep_dir), "--out", str(tmp_path / "paper")])
    assert axes_when_saved["fig6.png"] == axes_when_saved["fig6.pdf"] == [(0.0, 20.0), (0.0, 20.0)]  # ends fit
    figures.main(["--sweep", str(sweep_dir), "--out", str(tmp_path / "auto"), "--ylim", "auto"])
    assert axes_when_saved["fig6.png"] == [(0.0, 65.0), (0.0, 65.0)]  # every point shows
    write_run(sweep_dir, "plain", 300, 0)  # ends at 34 % train, 36 % test: the paper axis gives way
    figures.main(["--sweep", str(sweep_dir), "--out", str(tmp_path / "fitted")])
    assert axes_when_saved["fig6.png"] == [(0.0, 65.0), (0.0, 65.0)]  # fitted: every point shows
    figures.main(["--sweep", str(sweep_dir), "--out", str(tmp_path / "given"), "--ylim", "0,20"])
    assert axes_when_saved["fig6.png"] == [(0.0, 20.0), (0.0, 20.0)]  # as asked: plain-300 is named under the panel


def test_a_sweep_without_plain_20_or_56_writes_no_figure_1_and_says_why(tmp_path):
    written, warnings = figures.write_all(
        load_sweep(write_sweep(tmp_path / "grid", archs=("resnet",))), tmp_path / "out"
    )
    assert "fig1.png" not in {p.name for p in written} and warnings[0].startswith("Figure 1 not drawn")


def test_figures_of_another_sweep_are_never_overwritten(tmp_path, capsys, monkeypatch):
    """Two sweeps named quick (runs/quick and experiments/x/quick) both default to figures/quick/."""
    monkeypatch.chdir(tmp_path)
    first, second = write_sweep(tmp_path / "runs/quick"), write_sweep(tmp_path / "experiments/x/quick")
    figures.main(["--sweep", str(first)])
    figures.main(["--sweep", str(first)])  # the same sweep again: fine
    before = (tmp_path / "figures/quick/fig6.png").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        figures.main(["--sweep", str(second)])
    [stderr] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert exit_info.value.code == 2 and stderr.startswith(f"error: figures/quick/ holds the figures of {first}")
    assert "pass --out" in stderr and (tmp_path / "figures/quick/fig6.png").read_bytes() == before


def test_figure7_of_a_sweep_without_the_papers_depths_draws_the_sweeps_own_nets(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", depths=(8,), seeds=(0,))
    RunDir(sweep_dir / "plain-8/seed=0").write_responses(DEFINITION, [1.0, 2.0], step=4000)
    fig = figures.figure7(load_sweep(sweep_dir))
    assert [line.get_gid() for line in fig.axes[0].get_lines()] == ["plain-8"]


def test_table6_says_when_its_runs_come_from_differing_environments(tmp_path):
    """summary.json's `environment`: one lock and `locked` everywhere says nothing; anything else is said, with the
    runs that differ named."""
    sweep_dir = write_sweep(tmp_path / "mixed", depths=(20,), seeds=(0, 1))
    locked = {"lock": "70c527928946ea12", "state": "locked"}
    for run in RunDir(sweep_dir).path.glob("*/seed=*"):
        RunDir(run).write_summary({**RunDir(run).read_summary(), "environment": locked})
    assert "Environments:" not in figures.table6_markdown(figures.table6(load_sweep(sweep_dir)), load_sweep(sweep_dir))

    odd = RunDir(sweep_dir / "plain-20/seed=1")
    odd.write_summary({**odd.read_summary(), "environment": {**locked, "state": "torch 2.15.0 (lock 2.14.1)"}})
    sweep = load_sweep(sweep_dir)
    text = figures.table6_markdown(figures.table6(sweep), sweep)
    assert (
        "Environments: These runs come from 2 environments: 3 runs locked (uv.lock 70c527928946ea12); 1 run "
        "torch 2.15.0 (lock 2.14.1) (uv.lock 70c527928946ea12): plain-20/seed=1."
    ) in text


def test_a_variants_legends_titles_and_table_rows_say_the_variant(tmp_path):
    """A pre-activation sweep: every legend entry, panel title and Table 6 row says `preact`, so a figure cut out of
    its page is never taken for the paper's nets."""
    sweep_dir = write_sweep(tmp_path / "grid", depths=(20,), seeds=(0,))
    for arch in ("plain", "resnet"):
        run = RunDir(sweep_dir / f"{arch}-20/seed=0")
        run.write_summary({**run.read_summary(), "variant": "preact"})
    sweep = load_sweep(sweep_dir)
    for ax, arch in zip(figures.figure6(sweep).axes, ("plain", "resnet")):
        assert ax.get_title().endswith("(preact)")
        assert [t.get_text() for t in ax.get_legend().get_texts()][0] == f"{figures.TITLES[arch]}-20 (preact)"
    rows = [line for line in figures.table6_markdown(figures.table6(sweep), sweep).splitlines() if "-20" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| plain-20 (preact)", "| ResNet-20 (preact)"]
