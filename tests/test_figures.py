import csv

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from degradation import figures
from degradation.responses import DEFINITION
from degradation.results import load_sweep
from degradation.rundir import RunDir
from synthetic_sweep import known_error, write_run, write_sweep


@pytest.fixture
def sweep(tmp_path):
    return load_sweep(write_sweep(tmp_path / "grid"))


def lines_by_gid(ax) -> dict:
    return {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}


def test_figure6_has_plain_left_resnet_right_with_dashed_train_and_bold_test_curves(sweep):
    fig = figures.figure6(sweep, ylim=(0, 20))
    left, right = fig.axes
    assert (left.get_title(), right.get_title()) == ("plain nets", "ResNets")
    assert left.get_ylim() == (0, 20) and left.get_xlabel() == "iter. (1e4)" and left.get_ylabel() == "error (%)"
    for ax, arch in ((left, "plain"), (right, "resnet")):
        lines = lines_by_gid(ax)
        assert set(lines) == {f"{arch}-{d}:{c}" for d in (20, 56) for c in ("train_err", "test_err")}
        train, test = lines[f"{arch}-56:train_err"], lines[f"{arch}-56:test_err"]
        assert train.get_linestyle() == "--" and test.get_linestyle() == "-"
        assert test.get_linewidth() > train.get_linewidth()
        assert train.get_color() != lines[f"{arch}-20:train_err"].get_color()  # one colour per depth
        expected = np.mean([[known_error(arch, 56, s, step, False) for step in (1000, 2000, 3000, 4000)] for s in (0, 1)], 0)
        assert np.allclose(test.get_ydata(), expected)  # the mean over seeds
        assert np.allclose(test.get_xdata(), [0.1, 0.2, 0.3, 0.4])  # iterations in units of 1e4
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"{figures.TITLES[arch]}-20", f"{figures.TITLES[arch]}-56"]
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 4  # a min-max band per curve


def test_a_net_above_the_axis_is_noted_not_dropped(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", depths=(20,), seeds=(0,))
    write_run(sweep_dir, "plain", 110, 0)  # errors around 17-21 % train, test 2 points higher
    fig = figures.figure6(load_sweep(sweep_dir), ylim=(0, 5))
    note = [t for t in fig.axes[0].texts if t.get_gid() == "off-axis"]
    assert note and "plain-110" in note[0].get_text() and "plain-20" in note[0].get_text()


def test_a_diverged_run_is_drawn_up_to_its_divergence_and_marked(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", depths=(20,), seeds=(0,))
    write_run(sweep_dir, "plain", 110, 0, status="diverged", steps=(1000, 2000))
    ax = figures.figure6(load_sweep(sweep_dir), ylim=None).axes[0]
    assert lines_by_gid(ax)["plain-110:test_err"].get_xdata().max() == pytest.approx(0.2)
    assert any(line.get_gid() == "diverged" and line.get_xdata()[0] == pytest.approx(0.2) for line in ax.get_lines())


def test_figure1_compares_plain_20_and_56_in_training_and_test_error(sweep):
    fig = figures.figure1(sweep)
    assert [ax.get_title() for ax in fig.axes] == ["training error", "test error"]
    assert set(lines_by_gid(fig.axes[1])) == {"plain-20:test_err", "plain-56:test_err"}


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


def test_write_all_writes_every_file_for_a_partial_sweep(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", archs=("plain",), depths=(20,), seeds=(0,))
    (sweep_dir / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      model: plain,resnet\n      model.depth: 20,56\n      seed: '0'\n"
        "  overrides:\n    task: []\n"
    )
    sweep = load_sweep(sweep_dir)
    assert sweep.missing == ["plain-56/seed=0", "resnet-20/seed=0", "resnet-56/seed=0"]
    written = figures.write_all(sweep, tmp_path / "out")
    assert {p.name for p in written} == {"fig6.png", "fig6.pdf", "fig1.png", "fig7.png", "fig7.pdf", "table6.md", "table6.csv"}
    assert all(p.stat().st_size > 0 for p in written)
    assert "Missing or unfinished runs: plain-56/seed=0" in (tmp_path / "out/table6.md").read_text()
    with open(tmp_path / "out/table6.csv") as file:
        assert [row["depth"] for row in csv.DictReader(file)] == ["20"]


@pytest.mark.parametrize("args, words", [
    (["--sweep", "{tmp}/nope"], "error: argument --sweep: no folder {tmp}/nope"),
    (["--runs", "{tmp}/nowhere"], "error: argument --runs: no folder {tmp}/nowhere"),
    (["--ylim", "5"], "error: argument --ylim: expected 'low,high' (e.g. 0,20) or 'auto', got '5'"),
    (["--ylim", "garbage"], "error: argument --ylim: expected 'low,high'"),
    (["--ylim", "20,0"], "error: argument --ylim: low must be below high, got '20,0'"),  # an upside-down axis
    (["--colour", "red"], "error: unrecognized arguments: --colour red"),
    (["--source", "wandb"], "error: --source wandb needs --group"),
])
def test_the_command_line_refuses_bad_flags_with_one_line_naming_the_flag(tmp_path, capsys, args, words):
    with pytest.raises(SystemExit) as exit_info:
        figures.main([arg.format(tmp=tmp_path) for arg in args])
    stderr = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(words.format(tmp=tmp_path)), stderr


def test_figure7_plots_response_stds_in_order_and_sorted(tmp_path):
    sweep_dir = write_sweep(tmp_path / "grid", depths=(20,), seeds=(0, 1))
    for seed, scale in ((0, 1.0), (1, 3.0)):
        RunDir(sweep_dir / f"plain-20/seed={seed}").write_responses(DEFINITION, [scale * v for v in (1.0, 3.0, 2.0)], step=4000)
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
    from degradation.rundir import METRIC_COLUMNS, VAL_COLUMNS

    run = RunDir(tmp_path / "sweep/resnet-20/seed=0")
    run.path.mkdir(parents=True)
    writer = run.metrics_writer(METRIC_COLUMNS + VAL_COLUMNS)
    for step, val_err, test_err in [(1000, 12.0, 11.0), (2000, 9.0, 10.0), (3000, 10.0, 8.5)]:
        writer.write(step, {"train_err": 5.0, "val_err": val_err, "test_err": test_err, "epoch": 0})
    run.write_summary({"arch": "resnet", "depth": 20, "seed": 0, "status": "completed", "params": 1, "steps": 3000,
                       "final_train_err": 5.0, "final_test_err": 8.5})
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
    figures.main(["--sweep", str(sweep_dir), "--out", str(tmp_path / "paper")])
    assert axes_when_saved["fig6.png"] == axes_when_saved["fig6.pdf"] == [(0.0, 20.0), (0.0, 20.0)]
    figures.main(["--sweep", str(sweep_dir), "--out", str(tmp_path / "auto"), "--ylim", "auto"])
    lowest, highest = known_error("resnet", 56, 0, 4000, True), known_error("plain", 56, 1, 1000, False)
    for low, high in axes_when_saved["fig6.png"]:  # the synthetic errors lie in [4.2, 16.6]: fitted, not 0-20
        assert 0 < low <= lowest and highest <= high < 20
