"""The interventions study's figures and table (`make sweep-interventions`, experiments/interventions/): nets of
several variants side by side, which Figure 6 and Table 6 refuse to mix. A Figure-6-style figure per arch (the
plain nets: plain-56 and what lets it train without shortcuts; the ResNets: ResNet-56's other blocks and inits),
each net in a colour of its own, and a table of final errors with each net's gap to plain-20 and to ResNet-56.

    python -m degradation.study --sweep runs/interventions --out experiments/interventions/figures
"""

import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from degradation.errors import OneLineParser, UserError, exit_with
from degradation.report.figures import TEST_STYLE, TRAIN_STYLE, existing_folder, save, seed_band
from degradation.runs.results import Run, read_run
from degradation.runs.rundir import DIVERGED, FINISHED, find_runs, run_name

REFERENCES = ("plain-20", "resnet-56")  # every net's gap is taken to these two
TITLES = {"plain": "plain nets: what lets plain-56 train", "resnet": "ResNets: other blocks and inits"}


def nets_of(sweep_dir: Path) -> dict[str, list[Run]]:
    """Each net's finished runs (its seeds), by its run directory's name: by arch and depth, the paper's net first."""
    nets: dict[str, list[Run]] = {}
    order = lambda r: (r.arch, r.depth, r.variant != "", r.variant, r.seed)  # noqa: E731
    for run in sorted((read_run(run_dir) for run_dir in find_runs(sweep_dir)), key=order):
        if run.status in FINISHED:
            nets.setdefault(run_name(run.family, run.arch, run.depth, run.variant), []).append(run)
    if not nets:
        raise UserError(f"{sweep_dir} has no finished runs")
    return nets


def final(runs: list[Run], curve: str) -> list[float]:
    return [float(getattr(r, curve).values[-1]) for r in runs if len(getattr(r, curve).values)]


def rows(nets: dict[str, list[Run]]) -> list[dict]:
    """Per net: seeds, how many of them diverged (their last rows are a diverging net's, not a trained one's: left
    out of the means), final training and test error of the others (mean and half the range over seeds), gaps to
    the references' mean final errors (None where a reference is missing or every seed diverged)."""
    trained = {name: [r for r in runs if r.status != DIVERGED] for name, runs in nets.items()}
    means = {name: mean(final(runs, "train_err")) for name, runs in trained.items()}
    tests = {name: mean(final(runs, "test_err")) for name, runs in trained.items()}
    table = []
    for name, runs in nets.items():
        train, test = final(trained[name], "train_err"), final(trained[name], "test_err")
        table.append(
            {
                "net": name,
                "seeds": len(runs),
                "diverged": len(runs) - len(trained[name]),
                "train_err": mean(train),
                "train_spread": float(np.ptp(train) / 2) if train else None,
                "test_err": mean(test),
                "test_spread": float(np.ptp(test) / 2) if test else None,
                **{f"train_gap_to_{ref}": gap(means, name, ref) for ref in REFERENCES},
                **{f"test_gap_to_{ref}": gap(tests, name, ref) for ref in REFERENCES},
            }
        )
    return table


def mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def gap(means: dict, name: str, reference: str) -> float | None:
    if means.get(name) is None or means.get(reference) is None:
        return None
    return float(means[name] - means[reference])


def test_subset(nets: dict[str, list[Run]]) -> str:
    """What figures and the table say when test errors come from a subset of the test set (data.test_size)."""
    sizes = sorted({r.test_size for runs in nets.values() for r in runs if r.test_size is not None})
    return f"on the first {' or '.join(map(str, sizes))} of the 10,000 test images" if sizes else ""


def markdown(table: list[dict], sweep: str, subset: str = "") -> str:
    signed = lambda value: "–" if value is None else f"{value:+.2f}"  # noqa: E731
    spread = lambda value, half: "–" if value is None else f"{value:.2f} ± {half:.2f}"  # noqa: E731
    lines = [
        f"# The interventions study — sweep `{sweep}`",
        "",
        "Final errors in %, mean ± half the range over seeds; gaps in points to the mean final error of plain-20 and",
        f"of ResNet-56 of the same sweep (positive: worse). Test errors {subset or 'on the 10,000 test images'}.",
        "A diverged seed is counted beside the seeds and left out of the means: its last rows are a diverging net's.",
        "",
        "| net | seeds | train err | test err | train gap to plain-20 | train gap to ResNet-56 "
        "| test gap to ResNet-56 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in table:
        seeds = f"{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        lines.append(
            f"| {row['net']} | {seeds} | {spread(row['train_err'], row['train_spread'])} | "
            f"{spread(row['test_err'], row['test_spread'])} | {signed(row['train_gap_to_plain-20'])} | "
            f"{signed(row['train_gap_to_resnet-56'])} | {signed(row['test_gap_to_resnet-56'])} |"
        )
    return "\n".join(lines) + "\n"


def figure(nets: dict[str, list[Run]], arch: str):
    """One arch's nets: training error dashed and thin, test error bold, each net a colour, the mean over seeds."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    mine = [name for name, runs in nets.items() if runs[0].arch == arch]
    palette = plt.cm.tab10(np.arange(len(mine)) % 10)
    for name, colour in zip(mine, palette):
        for curve, style in (("train_err", TRAIN_STYLE), ("test_err", TEST_STYLE)):
            steps, mean, _, _ = seed_band(nets[name], curve)
            seeds = len(nets[name])
            label = f"{name} ({seeds} seed{'s' if seeds > 1 else ''})" if curve == "test_err" else None
            ax.plot(steps, mean, color=colour, label=label, gid=f"{name}:{curve}", **style)
    ax.set_xlabel("iter.")
    ax.set_ylabel("error (%)")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(
        f"{TITLES[arch]}\ndashed: training error; bold: test error {test_subset(nets) or 'on the test set'}",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def write(sweep_dir: Path, out: Path) -> list[Path]:
    nets = nets_of(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for arch in ("plain", "resnet"):
        if any(runs[0].arch == arch for runs in nets.values()):
            written += save(figure(nets, arch), out, f"study_{arch}")
    table = rows(nets)
    (out / "study.md").write_text(markdown(table, sweep_dir.name, test_subset(nets)))
    with open(out / "study.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return [*written, out / "study.md", out / "study.csv"]


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m degradation.study", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=existing_folder, required=True, help="the study's sweep folder")
    parser.add_argument("--out", type=Path, help="figures folder (default: figures/<sweep name>)")
    args = parser.parse_args(argv)
    plt.switch_backend("Agg")
    try:
        written = write(args.sweep, args.out or Path("figures") / args.sweep.name)
    except UserError as error:
        exit_with(error)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
