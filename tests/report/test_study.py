"""The interventions study's figures and table (report/study.py), on run directories with known curves: nets of
several variants side by side, each gap computed from the final errors."""

import csv
import re
import shutil
from pathlib import Path

import pytest

from conftest import main_refuses
from degradation.report import study
from degradation.runs.rundir import RunDir
from synthetic_sweep import known_error, write_run, write_sweep


def write_variant(sweep_dir, arch: str, seed: int, variant: str) -> None:
    """A 56-layer run of `variant`, with the curves of the paper's net of that arch and depth."""
    run = write_run(sweep_dir / "scratch", arch, 56, seed)
    target = sweep_dir / f"{arch}-56-{variant}/seed={seed}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(run.path, target)
    moved = RunDir(target)
    moved.write_summary({**moved.read_summary(), "variant": variant})


@pytest.fixture
def study_sweep(tmp_path):
    sweep_dir = write_sweep(tmp_path / "interventions", depths=(20, 56))
    for seed in (0, 1):
        write_variant(sweep_dir, "plain", seed, "dirac")
        write_variant(sweep_dir, "resnet", seed, "preact")
    shutil.rmtree(sweep_dir / "scratch")
    return sweep_dir


def test_the_table_gives_every_nets_final_errors_and_its_gaps_to_plain_20_and_resnet_56(study_sweep):
    table = {row["net"]: row for row in study.rows(study.nets_of(study_sweep))}
    assert sorted(table) == ["plain-20", "plain-56", "plain-56-dirac", "resnet-20", "resnet-56", "resnet-56-preact"]
    last = 4000
    train = {
        (arch, depth): [known_error(arch, depth, seed, last, True) for seed in (0, 1)]
        for arch in ("plain", "resnet")
        for depth in (20, 56)
    }
    mean = {key: sum(values) / 2 for key, values in train.items()}
    row = table["plain-56-dirac"]
    assert row["seeds"] == 2 and row["train_err"] == pytest.approx(mean["plain", 56])
    assert row["train_spread"] == pytest.approx(0.5)  # the seeds' curves differ by 1 point
    assert row["train_gap_to_plain-20"] == pytest.approx(mean["plain", 56] - mean["plain", 20])
    assert row["train_gap_to_resnet-56"] == pytest.approx(mean["plain", 56] - mean["resnet", 56])
    assert table["resnet-20"]["test_gap_to_resnet-56"] == pytest.approx(
        known_error("resnet", 20, 0, last, False) - known_error("resnet", 56, 0, last, False)
    )


def test_each_archs_figure_draws_every_net_in_a_colour_of_its_own(study_sweep, tmp_path):
    written = study.write(study_sweep, tmp_path / "out")
    assert {path.name for path in written} >= {"study_plain.png", "study_resnet.pdf", "study.md", "study.csv"}
    fig = study.figure(study.nets_of(study_sweep), "plain")
    lines = {line.get_gid(): line for line in fig.axes[0].get_lines()}
    assert set(lines) == {
        f"{net}:{curve}" for net in ("plain-20", "plain-56", "plain-56-dirac") for curve in ("train_err", "test_err")
    }
    colours = {tuple(lines[f"{net}:test_err"].get_color()) for net in ("plain-20", "plain-56", "plain-56-dirac")}
    assert len(colours) == 3
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "plain-20 (2 seeds)",
        "plain-56 (2 seeds)",
        "plain-56-dirac (2 seeds)",
    ]
    rows = list(csv.DictReader(open(tmp_path / "out/study.csv")))
    assert [row["net"] for row in rows][:3] == ["plain-20", "plain-56", "plain-56-dirac"]


def test_a_folder_without_finished_runs_is_one_error_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "has no finished runs" in main_refuses(study.main, ["--sweep", str(tmp_path / "empty")], capsys)


def test_a_diverged_seed_is_counted_and_left_out_of_the_means(study_sweep):
    run = RunDir(study_sweep / "plain-56-dirac/seed=1")
    run.write_summary({**run.read_summary(), "status": "diverged"})
    table = {row["net"]: row for row in study.rows(study.nets_of(study_sweep))}
    row = table["plain-56-dirac"]
    assert (row["seeds"], row["diverged"]) == (2, 1)
    assert row["train_err"] == pytest.approx(known_error("plain", 56, 0, 4000, True)) and row["train_spread"] == 0
    assert "| plain-56-dirac | 2 (1 diverged) |" in study.markdown(list(table.values()), "interventions")


def test_the_committed_study_is_what_its_committed_runs_give_and_the_readme_quotes_it():
    """Every number of experiments/interventions/README.md's table traces to a committed file: figures/study.md is
    what the committed runs give now, and each 'mean ± spread' the README quotes is one of its cells."""
    committed = Path(__file__).resolve().parents[2] / "experiments/interventions"
    nets = study.nets_of(committed / "runs/interventions")
    table = study.markdown(study.rows(nets), "interventions", study.test_subset(nets))
    assert (committed / "figures/study.md").read_text() == table
    quoted = re.findall(r"\d+\.\d\d ± \d+\.\d\d", (committed / "README.md").read_text())
    assert len(quoted) == 24 and all(f" {cell} |" in table for cell in quoted)
