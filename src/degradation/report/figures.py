"""The paper's Figure 6, the Figure 1 variant, Figure 7 and Table 6 from a sweep's run directories.

    python -m degradation.figures                       # the latest sweep under runs/
    python -m degradation.figures --sweep runs/quick    # a given (possibly partial) sweep
    python -m degradation.figures --source wandb --project degradation --group cifar   # runs on W&B
Output: figures/<sweep name>/{fig6.png, fig6.pdf, fig1.png, fig1.pdf, fig7.png, fig7.pdf, table6.md, table6.csv,
source.txt}
(a figure without data is left out with a warning; a folder holding another sweep's figures is refused)
"""

import argparse
import csv
import logging
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from degradation.errors import OneLineParser, UserError, exit_with
from degradation.runs.results import Curve, Run, Sweep, latest_sweep, load_sweep, load_wandb_sweep, number

log = logging.getLogger(__name__)

PAPER_YLIM = (0.0, 20.0)
# He et al. 2015, Table 6: CIFAR-10 test error (%) of the ResNets (110: best of 5 runs; mean 6.61 +- 0.16).
PAPER_RESNET_TEST_ERR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
DEPTH_COLORS = {
    20: "#0072b2",
    32: "#56b4e9",
    44: "#009e73",
    56: "#d62728",
    110: "#000000",
    1202: "#cc79a7",
    18: "#0072b2",
    34: "#009e73",
    50: "#d62728",
    101: "#000000",
    152: "#cc79a7",
}  # ImageNet-style ResNets
TRAIN_STYLE = dict(linestyle="--", linewidth=0.8)  # the paper: dashed thin = training error
TEST_STYLE = dict(linestyle="-", linewidth=2.0)  # bold = test error
TITLES = {"plain": "plain", "resnet": "ResNet"}


def net_name(arch: str, depth: int, sweep: Sweep) -> str:
    """A net in legends and Table 6: `ResNet-20`, or with the sweep's family and variant `ResNet-20 (preact)`."""
    return f"{TITLES[arch]}-{depth}" + (f" ({sweep.variant})" if sweep.variant else "")


FEW_POINTS = 12  # test curves with at most this many points are drawn with markers
NO_RESPONSES = (
    "no run of this sweep has responses.json (Figure 7's data): runs write it when training ends; "
    "for older runs: python -m degradation.responses <run dir>/checkpoints/last.ckpt"
)


def color(depth: int) -> str:
    return DEPTH_COLORS.get(depth, plt.cm.viridis((depth % 97) / 97))


def seed_band(runs: list[Run], curve: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max) over seeds at each step that some seed measured."""
    curves: list[Curve] = [getattr(r, curve) for r in runs if len(getattr(r, curve).steps)]
    if not curves:
        return (np.zeros(0),) * 4
    steps = np.unique(np.concatenate([c.steps for c in curves]))
    table = np.full((len(curves), len(steps)), np.nan)
    for row, c in enumerate(curves):
        table[row, np.searchsorted(steps, c.steps)] = c.values
    with np.errstate(all="ignore"):
        return steps, np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)


def iteration_axis(sweep: Sweep) -> tuple[float, str, float]:
    """(unit, label, last iteration): the paper's 1e4 iterations for long runs, plain iterations for short ones."""
    last = max((int(c.steps.max()) for r in sweep.runs for c in (r.train_err, r.test_err) if len(c.steps)), default=1)
    return (1e4, "iter. (1e4)", last) if last >= 1e4 else (1.0, "iter.", last)


def curve_means(sweep: Sweep, archs=("plain", "resnet")) -> list[np.ndarray]:
    """The mean (over seeds) of every net's training and test curve that has points."""
    means = [
        seed_band(sweep.select(arch, depth), curve)[1]
        for arch in archs
        for depth in sweep.depths(arch)
        for curve in ("train_err", "test_err")
    ]
    return [mean for mean in means if len(mean)]


def final_means(sweep: Sweep, archs=("plain", "resnet")) -> list[float]:
    """The last mean (over seeds) of every net's training and test curve."""
    return [float(mean[-1]) for mean in curve_means(sweep, archs) if np.isfinite(mean[-1])]


def fitted_ylim(sweep: Sweep, archs=("plain", "resnet")) -> tuple[float, float]:
    """0 to just above the highest curve, in steps of 5 points: every net shows."""
    highest = [float(np.nanmax(mean)) for mean in curve_means(sweep, archs)]
    finite = [h for h in highest if np.isfinite(h)]
    return 0.0, min(100.0, 5 * np.ceil(max(finite, default=20.0) * 1.02 / 5))


def choose_ylim(sweep: Sweep, requested) -> tuple[tuple[float, float], str | None]:
    """(axis, note): 'paper' keeps the paper's 0-20 % when every net ends inside it, else fits the data and says
    so; 'auto' fits the data; (low, high) is used as given."""
    if requested == "paper":
        if all(value <= PAPER_YLIM[1] for value in final_means(sweep)):
            return PAPER_YLIM, None
        return fitted_ylim(sweep), "axis fitted to the data: some nets end above the paper's 0-20 %"
    if requested in ("auto", None):
        return fitted_ylim(sweep), None
    return requested, None


def draw_curve(ax, runs: list[Run], curve: str, style: dict, label: str | None, ylim, unit: float) -> None:
    steps, mean, low, high = seed_band(runs, curve)
    if not len(steps):
        return
    c = color(runs[0].depth)
    few = curve != "train_err" and len(steps) <= FEW_POINTS
    ax.plot(
        steps / unit,
        mean,
        color=c,
        label=label,
        gid=f"{runs[0].arch}-{runs[0].depth}:{curve}",
        **({"marker": "o", "markersize": 3.5} if few else {}),
        **style,
    )
    if len(runs) > 1:
        ax.fill_between(steps / unit, low, high, color=c, alpha=0.15, linewidth=0)
    for run in runs:
        if run.diverged_at is not None:  # drawn up to where it diverged, and marked there
            y = np.nanmin([mean[-1], ylim[1]]) if ylim else mean[-1]
            ax.plot(run.diverged_at / unit, y, marker="x", color=c, markersize=8, gid="diverged")


def above_axis(runs: list[Run], ylim) -> float | None:
    """The lowest mean test error of a net whose whole test curve lies above the axis, else None."""
    _, mean, _, _ = seed_band(runs, "test_err")
    lowest = float(np.nanmin(mean)) if len(mean) else None
    return lowest if lowest is not None and lowest > ylim[1] else None


def style_key(ax, test_subset: str | None) -> list:
    """Legend entries that say which line is which error, as the paper's caption does."""
    return [
        Line2D([], [], color="0.4", label="training error", **TRAIN_STYLE),
        Line2D([], [], color="0.4", label=test_label(test_subset), **TEST_STYLE),
    ]


def test_label(test_subset: str | None) -> str:
    """'test error', and on which images when a sweep evaluated a subset of them (data.test_size)."""
    return f"test error\n({test_subset})" if test_subset else "test error"


def below_axes(ax, lines: list[str], gid: str) -> None:
    """Notes under the axes (never over the curves)."""
    ax.text(0.0, -0.2, "\n".join(lines), transform=ax.transAxes, ha="left", va="top", fontsize=7, gid=gid)


def finish_axes(ax, xlabel: str, last: float, unit: float, ylim) -> None:
    ax.set_xlabel(xlabel)
    ax.set_xlim(0, last / unit * 1.02)
    ax.set_ylim(*ylim)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))  # 0, 5, 10, ... as the paper's
    ax.grid(alpha=0.3)


def figure6(sweep: Sweep, ylim="paper"):
    """Left: plain nets; right: ResNets. Dashed thin = training error, bold = test error; colour = depth.

    ylim: 'paper' (0-20 % when every net ends inside it, else fitted to the data, said on the figure), 'auto'
    (fitted), or (low, high). A net whose test curve lies wholly above the axis is named under the panel."""
    axis, axis_note = choose_ylim(sweep, ylim)
    unit, xlabel, last = iteration_axis(sweep)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True, sharey=True)
    for ax, arch in zip(axes, ("plain", "resnet")):
        off_axis = []
        for depth in sweep.depths(arch):
            runs = sweep.select(arch, depth)
            lowest = above_axis(runs, axis)
            if lowest is not None:
                off_axis.append(f"{TITLES[arch]}-{depth}: test error > {axis[1]:g}% (lowest {lowest:.1f}%), not shown")
            # in the legend by its test curve, or by its training curve if only that shows
            name = net_name(arch, depth, sweep)
            draw_curve(ax, runs, "train_err", TRAIN_STYLE, name if lowest is not None else None, axis, unit)
            draw_curve(ax, runs, "test_err", TEST_STYLE, None if lowest is not None else name, axis, unit)
        ax.set_title(
            (f"{TITLES[arch]} nets" if arch == "plain" else "ResNets")
            + (f" ({sweep.variant})" if sweep.variant else "")
        )
        finish_axes(ax, xlabel, last, unit, axis)
        handles = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        ax.legend(
            handles=handles + style_key(ax, sweep.test_subset()),
            loc="best",
            fontsize=7,
            ncol=2 if len(handles) > 3 else 1,
        )
        notes = off_axis + ([axis_note] if axis_note and arch == "plain" else [])
        if notes:
            below_axes(ax, notes, "off-axis" if off_axis else "axis-note")
    axes[0].set_ylabel("error (%)")
    fig.tight_layout()
    return fig


def figure1(sweep: Sweep, depths=(20, 56), ylim=None):
    """The paper's Figure 1: plain nets of two depths, training error (left) and test error (right); None if
    the sweep has neither."""
    if not any(sweep.select("plain", depth) for depth in depths):
        return None
    unit, xlabel, last = iteration_axis(sweep)
    axis = ylim or fitted_ylim(sweep, archs=("plain",))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True, sharey=True)
    for ax, curve, title in zip(axes, ("train_err", "test_err"), ("training error", test_label(sweep.test_subset()))):
        for depth in depths:
            runs = sweep.select("plain", depth)
            if runs:
                draw_curve(ax, runs, curve, dict(linestyle="-", linewidth=1.5), f"{depth}-layer", axis, unit)
        ax.set_title(title)
        finish_axes(ax, xlabel, last, unit, axis)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    fig.tight_layout()
    return fig


FIG7_NETS = (("plain", 20), ("plain", 56), ("resnet", 20), ("resnet", 56), ("resnet", 110))


def figure7(sweep: Sweep):
    """Std of layer responses: layers in their original order (top) and sorted by magnitude (bottom), for the
    paper's nets (plain-20/56, ResNet-20/56/110) or, if the sweep has none of them, for its own; None if no run
    has measured them."""
    measured = [
        (arch, depth)
        for arch in ("plain", "resnet")
        for depth in sweep.depths(arch)
        if any(r.responses for r in sweep.select(arch, depth))
    ]
    if not measured:
        return None
    nets = [net for net in FIG7_NETS if net in measured] or measured  # the paper's nets, else the sweep's own
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharey=True)
    for arch, depth in nets:
        measured = [r.responses for r in sweep.select(arch, depth) if r.responses]
        if not measured:
            continue
        stds = np.mean(np.array(measured), axis=0)  # mean over seeds
        layers = np.arange(1, len(stds) + 1)
        style = dict(
            color=color(depth),
            linestyle="--" if arch == "plain" else "-",
            linewidth=1.2,
            marker=".",
            markersize=3,
            label=net_name(arch, depth, sweep),
            gid=f"{arch}-{depth}",
        )
        top.plot(layers, stds, **style)
        bottom.plot(layers, np.sort(stds)[::-1], **style)
    top.set_xlabel("layer index (original)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- Table 6 ----------------------------------------------------------------------------------


def reported_test_err(run: Run) -> float | None:
    """The run's final test error, or, with a validation split, the test error where validation was best."""
    if len(run.val_err.steps) and len(run.test_err.steps):
        best_step = run.val_err.steps[int(np.nanargmin(run.val_err.values))]
        at = np.flatnonzero(run.test_err.steps == best_step)
        if len(at):
            return float(run.test_err.values[at[0]])
    return run.final_test_err


def table6(sweep: Sweep) -> list[dict]:
    rows = []
    for arch in ("plain", "resnet"):
        for depth in sweep.depths(arch):
            runs = sweep.select(arch, depth)
            test = np.array([e for e in map(reported_test_err, runs) if e is not None], dtype=float)
            train = np.array([r.final_train_err for r in runs if r.final_train_err is not None], dtype=float)
            rows.append(
                {
                    "arch": arch,
                    "depth": depth,
                    "params": runs[0].params,
                    "seeds": len(test),
                    "test_err_mean": float(test.mean()) if len(test) else None,
                    "test_err_std": float(test.std(ddof=1)) if len(test) > 1 else None,
                    "test_err_best": float(test.min()) if len(test) else None,
                    "train_err_mean": float(train.mean()) if len(train) else None,
                    "diverged": sum(r.diverged_at is not None for r in runs),
                    "paper_test_err": PAPER_RESNET_TEST_ERR.get(depth) if arch == "resnet" else None,
                }
            )
    return rows


def degradation_gap(
    rows: list[dict], shallow: int = 20, deep: int = 56, error: str = "test"
) -> dict[str, float | None]:
    """deep minus shallow mean final error ('train' or 'test'), per arch: > 0 means the deeper net is worse.
    The degradation problem is a training error gap; the test gap is what a reader compares with the paper."""
    mean = {(r["arch"], r["depth"]): r[f"{error}_err_mean"] for r in rows}
    gap = {}
    for arch in ("plain", "resnet"):
        a, b = mean.get((arch, deep)), mean.get((arch, shallow))
        gap[arch] = None if a is None or b is None else a - b
    return gap


def table6_markdown(rows: list[dict], sweep: Sweep) -> str:
    lines = [
        f"# Table 6 — sweep `{sweep.name}`" + (f" ({sweep.variant} nets)" if sweep.variant else ""),
        "",
        "Final errors in %; test error as mean ± sample std over seeds (the test error at the best validation",
        "point where a validation split was held out); never selected on the test set."
        + (f" Test errors {sweep.test_subset()}." if sweep.test_subset() else ""),
        "",
        "| net | params | seeds | test err (mean ± std) | best of seeds | train err (mean) | paper test err |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        spread = (
            f"{number(r['test_err_mean'])} ± {number(r['test_err_std'])}"
            if r["test_err_std"] is not None
            else number(r["test_err_mean"])
        )
        name = net_name(r["arch"], r["depth"], sweep) + (f" ({r['diverged']} diverged)" if r["diverged"] else "")
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] else "–"
        lines.append(
            f"| {name} | {params} | {r['seeds']} | {spread} | {number(r['test_err_best'])} | "
            f"{number(r['train_err_mean'])} | {number(r['paper_test_err'])} |"
        )
    train, test = degradation_gap(rows, error="train"), degradation_gap(rows, error="test")
    lines += [
        "",
        "Degradation gap, 56-layer minus 20-layer final error, in points (the paper: plain > 0, ResNet < 0):",
        f"training error: plain {number(train['plain'])}, ResNet {number(train['resnet'])}; "
        f"test error: plain {number(test['plain'])}, ResNet {number(test['resnet'])}.",
    ]
    if sweep.missing:
        lines += ["", f"Missing or unfinished runs: {', '.join(sweep.missing)}."]
    if sweep.environment_note():
        lines += ["", f"Environments: {sweep.environment_note()}"]
    return "\n".join(lines) + "\n"


def write_table6_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["arch", "depth"])
        writer.writeheader()
        writer.writerows(rows)


# --- the command line -------------------------------------------------------------------------


def save(fig, out: Path, name: str, suffixes=("png", "pdf")) -> list[Path]:
    paths = [out / f"{name}.{suffix}" for suffix in suffixes]
    for path in paths:
        fig.savefig(path, dpi=200, bbox_inches="tight")
    plt.close(fig)
    return paths


def write_all(sweep: Sweep, out: Path, ylim="paper") -> tuple[list[Path], list[str]]:
    """(files written, warnings): a figure without data is not written, and a warning says how to get the data."""
    out.mkdir(parents=True, exist_ok=True)
    written, warnings = save(figure6(sweep, ylim), out, "fig6"), []
    fig1 = figure1(sweep)
    if fig1 is None:
        warnings.append(
            "Figure 1 not drawn: the sweep has no plain-20 or plain-56 (e.g. make sweep-cifar DEPTHS=20,56)"
        )
    else:
        written += save(fig1, out, "fig1")
    fig7 = figure7(sweep)
    if fig7 is None:
        warnings.append(f"Figure 7 not drawn: {NO_RESPONSES}")
    else:
        written += save(fig7, out, "fig7")
    rows = table6(sweep)
    (out / "table6.md").write_text(table6_markdown(rows, sweep))
    write_table6_csv(rows, out / "table6.csv")
    return written + [out / "table6.md", out / "table6.csv"], warnings


SOURCE_FILE = "source.txt"  # which sweep an output folder's figures are of: a path relative to the folder, or wandb:


def claim_output(out: Path, source: str) -> None:
    """An output folder holds the figures of one sweep: refuses to overwrite another sweep's."""
    marker = out / SOURCE_FILE
    where = lambda text: text if text.startswith("wandb:") else str((out / text).resolve())  # noqa: E731
    recorded = marker.read_text().strip() if marker.is_file() else None
    if recorded is not None and where(recorded) != where(source):
        raise FileExistsError(
            f"{out}/ holds the figures of {where(recorded)}, not {where(source)}: pass --out to write them elsewhere"
        )
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(source + "\n")


def parse_ylim(text: str):
    """--ylim: 'paper', 'auto', or 'low,high' with low < high (an argparse type: its error names the flag)."""
    if text in ("paper", "auto"):
        return text
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'paper', 'auto' or 'low,high' (e.g. 0,20), got {text!r}") from None
    if not low < high:
        raise argparse.ArgumentTypeError(f"low must be below high, got {text!r}")
    return low, high


def existing_folder(text: str) -> Path:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no folder {text}")
    return Path(text)


def load_source(args) -> Sweep:
    if args.source == "wandb":
        if not args.group:
            raise ValueError("--source wandb needs --group (the sweep name)")
        import wandb

        return load_wandb_sweep(wandb.Api(), args.project, args.group, args.entity)
    return load_sweep(sweep_path(args))


def sweep_path(args) -> Path:
    return Path(args.sweep) if args.sweep else latest_sweep(args.runs)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m degradation.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=existing_folder, help="a sweep folder (default: the latest under --runs)")
    parser.add_argument("--runs", default="runs", help="where sweeps live (default: runs)")
    parser.add_argument("--out", help="output folder (default: figures/<sweep name>)")
    parser.add_argument(
        "--ylim",
        type=parse_ylim,
        default="paper",
        help="Figure 6 error axis: paper (0-20 %% when every net ends inside it, else fitted; the "
        "default), auto (fitted to the data) or low,high",
    )
    parser.add_argument("--source", choices=("runs", "wandb"), default="runs", help="run directories or W&B")
    parser.add_argument("--project", default="degradation", help="W&B project (with --source wandb)")
    parser.add_argument("--entity", help="W&B entity (with --source wandb; default: yours)")
    parser.add_argument("--group", help="W&B group = sweep name (with --source wandb)")
    args = parser.parse_args(argv)
    plt.switch_backend("Agg")  # files only; notebooks keep their own backend
    if args.source == "runs" and not args.sweep and not Path(args.runs).is_dir():
        parser.error(f"argument --runs: no folder {args.runs}")
    try:
        sweep = load_source(args)
        if not sweep.runs:
            raise FileNotFoundError(f"no finished runs in sweep {sweep.name}")
    except (FileNotFoundError, ValueError, UserError) as error:
        exit_with(error)
    out = Path(args.out) if args.out else Path("figures") / sweep.name
    source = (
        f"wandb:{args.project}/{args.group}"
        if args.source == "wandb"
        else os.path.relpath(sweep_path(args).resolve(), out.resolve())
    )
    try:
        claim_output(out, source)
    except FileExistsError as error:
        exit_with(error)
    written, warnings = write_all(sweep, out, args.ylim)
    for path in written:
        print(path)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if sweep.missing:
        print(f"missing or unfinished runs (figures drawn from the rest): {', '.join(sweep.missing)}")


if __name__ == "__main__":
    main()
