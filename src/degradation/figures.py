"""The paper's Figure 6, the Figure 1 variant, Figure 7 and Table 6 from a sweep's run directories.

    python -m degradation.figures                       # the latest sweep under runs/
    python -m degradation.figures --sweep runs/quick    # a given (possibly partial) sweep
    python -m degradation.figures --source wandb --project degradation --group cifar   # runs on W&B
Output: figures/<sweep name>/{fig6.png, fig6.pdf, fig1.png, fig7.png, fig7.pdf, table6.md, table6.csv}
"""

import argparse
import csv
import logging
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from degradation.errors import OneLineParser
from degradation.results import Curve, Run, Sweep, latest_sweep, load_sweep, load_wandb_sweep, number

log = logging.getLogger(__name__)

PAPER_YLIM = (0.0, 20.0)
# He et al. 2015, Table 6: CIFAR-10 test error (%) of the ResNets (110: best of 5 runs; mean 6.61 +- 0.16).
PAPER_RESNET_TEST_ERR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
DEPTH_COLORS = {20: "#0072b2", 32: "#56b4e9", 44: "#009e73", 56: "#d62728", 110: "#000000", 1202: "#cc79a7",
                18: "#0072b2", 34: "#009e73", 50: "#d62728", 101: "#000000", 152: "#cc79a7"}  # ImageNet-style ResNets
TRAIN_STYLE = dict(linestyle="--", linewidth=0.8)  # the paper: dashed thin = training error
TEST_STYLE = dict(linestyle="-", linewidth=2.0)  # bold = test error
TITLES = {"plain": "plain", "resnet": "ResNet"}


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


def draw_curve(ax, runs: list[Run], curve: str, style: dict, label: str | None, ylim) -> None:
    steps, mean, low, high = seed_band(runs, curve)
    if not len(steps):
        return
    c = color(runs[0].depth)
    ax.plot(steps / 1e4, mean, color=c, label=label, gid=f"{runs[0].arch}-{runs[0].depth}:{curve}", **style)
    if len(runs) > 1:
        ax.fill_between(steps / 1e4, low, high, color=c, alpha=0.15, linewidth=0)
    for run in runs:
        if run.diverged_at is not None:  # drawn up to where it diverged, and marked there
            y = np.nanmin([mean[-1], ylim[1]]) if ylim else mean[-1]
            ax.plot(run.diverged_at / 1e4, y, marker="x", color=c, markersize=8, gid="diverged")


def note_off_axis(ax, runs_by_depth: dict[int, list[Run]], ylim) -> None:
    """Names every net whose test curve lies above the axis, as the paper's caption does for plain-110."""
    if ylim is None:
        return
    notes = []
    for depth, runs in runs_by_depth.items():
        _, mean, _, _ = seed_band(runs, "test_err")
        if len(mean) and np.nanmin(mean) > ylim[1]:
            notes.append(f"{runs[0].arch}-{depth}: error > {ylim[1]:g}% (min {np.nanmin(mean):.1f}%), not shown")
    if notes:
        ax.text(0.98, 0.98, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=7, gid="off-axis")


def figure6(sweep: Sweep, ylim=PAPER_YLIM):
    """Left: plain nets; right: ResNets. Dashed thin = training error, bold = test error; colour = depth."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, arch in zip(axes, ("plain", "resnet")):
        runs_by_depth = {d: sweep.select(arch, d) for d in sweep.depths(arch)}
        for depth, runs in runs_by_depth.items():
            draw_curve(ax, runs, "train_err", TRAIN_STYLE, None, ylim)
            draw_curve(ax, runs, "test_err", TEST_STYLE, f"{TITLES[arch]}-{depth}", ylim)
        note_off_axis(ax, runs_by_depth, ylim)
        ax.set_title(f"{TITLES[arch]} nets" if arch == "plain" else "ResNets")
        ax.set_xlabel("iter. (1e4)")
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
        if runs_by_depth:
            ax.legend(loc="upper right" if ylim is None else "lower left", fontsize=8)
    axes[0].set_ylabel("error (%)")
    fig.tight_layout()
    return fig


def figure1(sweep: Sweep, depths=(20, 56), ylim=None):
    """The paper's Figure 1: plain nets of two depths, training error (left) and test error (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, curve, title in zip(axes, ("train_err", "test_err"), ("training error", "test error")):
        for depth in depths:
            runs = sweep.select("plain", depth)
            if runs:
                draw_curve(ax, runs, curve, dict(linestyle="-", linewidth=1.5), f"{depth}-layer", ylim)
        ax.set_title(title)
        ax.set_xlabel("iter. (1e4)")
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    fig.tight_layout()
    return fig


FIG7_NETS = (("plain", 20), ("plain", 56), ("resnet", 20), ("resnet", 56), ("resnet", 110))


def figure7(sweep: Sweep):
    """Std of layer responses: layers in their original order (top) and sorted by magnitude (bottom)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharey=True)
    for arch, depth in FIG7_NETS:
        measured = [r.responses for r in sweep.select(arch, depth) if r.responses]
        if not measured:
            continue
        stds = np.mean(np.array(measured), axis=0)  # mean over seeds
        layers = np.arange(1, len(stds) + 1)
        style = dict(color=color(depth), linestyle="--" if arch == "plain" else "-", linewidth=1.2,
                     marker=".", markersize=3, label=f"{TITLES[arch]}-{depth}", gid=f"{arch}-{depth}")
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
            rows.append({
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
            })
    return rows


def degradation_gap(rows: list[dict], shallow: int = 20, deep: int = 56) -> dict[str, float | None]:
    """deep minus shallow mean final test error, per arch: > 0 means the deeper net is worse."""
    mean = {(r["arch"], r["depth"]): r["test_err_mean"] for r in rows}
    gap = {}
    for arch in ("plain", "resnet"):
        a, b = mean.get((arch, deep)), mean.get((arch, shallow))
        gap[arch] = None if a is None or b is None else a - b
    return gap


def table6_markdown(rows: list[dict], sweep: Sweep) -> str:
    lines = [
        f"# Table 6 — sweep `{sweep.name}`",
        "",
        "Final errors in %; test error as mean ± sample std over seeds (the test error at the best validation",
        "point where a validation split was held out); never selected on the test set.",
        "",
        "| net | params | seeds | test err (mean ± std) | best of seeds | train err (mean) | paper test err |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        spread = f"{number(r['test_err_mean'])} ± {number(r['test_err_std'])}" if r["test_err_std"] is not None else number(r["test_err_mean"])
        name = f"{TITLES[r['arch']]}-{r['depth']}" + (f" ({r['diverged']} diverged)" if r["diverged"] else "")
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] else "–"
        lines.append(f"| {name} | {params} | {r['seeds']} | {spread} | {number(r['test_err_best'])} | "
                     f"{number(r['train_err_mean'])} | {number(r['paper_test_err'])} |")
    gap = degradation_gap(rows)
    lines += ["", f"Degradation gap (56-layer minus 20-layer final test error): plain {number(gap['plain'], 2)} points, "
              f"ResNet {number(gap['resnet'], 2)} points (the paper: plain > 0, ResNet < 0)."]
    if sweep.missing:
        lines += ["", f"Missing or unfinished runs: {', '.join(sweep.missing)}."]
    return "\n".join(lines) + "\n"


def write_table6_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["arch", "depth"])
        writer.writeheader()
        writer.writerows(rows)


# --- the command line -------------------------------------------------------------------------


def write_all(sweep: Sweep, out: Path, ylim=PAPER_YLIM) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    fig = figure6(sweep, ylim)
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"fig6.{suffix}", dpi=200)
        written.append(out / f"fig6.{suffix}")
    plt.close(fig)
    fig = figure1(sweep)
    fig.savefig(out / "fig1.png", dpi=200)
    plt.close(fig)
    written.append(out / "fig1.png")
    fig = figure7(sweep)
    for suffix in ("png", "pdf"):
        fig.savefig(out / f"fig7.{suffix}", dpi=200)
        written.append(out / f"fig7.{suffix}")
    plt.close(fig)
    rows = table6(sweep)
    (out / "table6.md").write_text(table6_markdown(rows, sweep))
    write_table6_csv(rows, out / "table6.csv")
    return written + [out / "table6.md", out / "table6.csv"]


def parse_ylim(text: str):
    """--ylim: 'auto', or 'low,high' with low < high (an argparse type: its error names the flag)."""
    if text == "auto":
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'low,high' (e.g. 0,20) or 'auto', got {text!r}") from None
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
    sweep_dir = Path(args.sweep) if args.sweep else latest_sweep(args.runs)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"no sweep folder {sweep_dir}/")
    return load_sweep(sweep_dir)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m degradation.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=existing_folder, help="a sweep folder (default: the latest under --runs)")
    parser.add_argument("--runs", default="runs", help="where sweeps live (default: runs)")
    parser.add_argument("--out", help="output folder (default: figures/<sweep name>)")
    parser.add_argument("--ylim", type=parse_ylim, default="0,20",
                        help="Figure 6 error axis: 'low,high' (paper: 0,20) or 'auto'")
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
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    out = Path(args.out) if args.out else Path("figures") / sweep.name
    for path in write_all(sweep, out, args.ylim):
        print(path)
    if sweep.missing:
        print(f"missing or unfinished runs (figures drawn from the rest): {', '.join(sweep.missing)}")


if __name__ == "__main__":
    main()
