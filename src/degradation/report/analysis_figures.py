"""Figures of the analyses (python -m degradation.analyze), from the records in run directories or the
at-init records of --nets. No torch: figures read records only.

Colour = depth (as Figure 6), dashed = plain, solid = ResNet; seeds are averaged where a curve is drawn.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from degradation.errors import UserError
from degradation.report.figures import TITLES, below_axes, color
from degradation.runs.results import one_variant
from degradation.runs.rundir import RunDir, kind_in

ARCH_STYLE = {"plain": dict(linestyle="--"), "resnet": dict(linestyle="-")}
BN_TITLES = {"train": "BN in train mode (line = one batch)", "eval": "BN in eval mode (running statistics)"}


@dataclass(frozen=True)
class Entry:
    """One net's record of an analysis: from a run (trained, with its seed) or from --nets (at init)."""

    arch: str
    depth: int
    seed: int
    record: dict
    settings: dict = field(default_factory=dict)  # what it was computed with (shattering's points, say)
    kind: str = ""  # its family (other than the paper's) and variant: `preact`, `imagenet`; '' for the paper's


def entries_of_runs(runs: list[RunDir], analysis: str, kinds_apart: bool = False) -> list[Entry]:
    """The runs' records of an analysis; one kind of net at a time unless its figures tell kinds apart."""
    found, variants = [], set()
    for run in runs:
        summary, record = run.read_summary() or {}, run.read_analysis(analysis)
        if record is not None and summary.get("arch") in ARCH_STYLE:
            kind = kind_in(summary)
            found.append(
                Entry(summary["arch"], summary["depth"], summary["seed"], record, record.get("settings", {}), kind)
            )
            variants.add(kind)
    if not kinds_apart:
        one_variant("the sweep", variants)
    return found


def entries_of_nets(record: dict, kinds_apart: bool = False) -> list[Entry]:
    """The nets of an <analysis>-init.json, named as run directories (plain-56, resnet-110-preact,
    imagenet-resnet-50: family, arch, depth, variant); one kind of net at a time, as in a sweep, unless the
    analysis's figures tell kinds apart."""
    names = [parts_of_net(name) for name in record["nets"]]
    if not kinds_apart:
        one_variant("the at-init record", {kind for *_, kind in names})
    return [
        Entry(arch, depth, record["settings"].get("seed", 0), result, record["settings"], kind)
        for (arch, depth, kind), result in zip(names, record["nets"].values())
    ]


def parts_of_net(name: str) -> tuple[str, int, str]:
    """(arch, depth, kind) of a net's name; its kind is its family (other than the paper's) and variant."""
    words = name.split("-")
    family = [words.pop(0)] if words[0] not in ARCH_STYLE else []
    return words[0], int(words[1]), "-".join(family + words[2:])


@dataclass(frozen=True)
class Drawing:
    """What an analysis's figures are drawn from: an entry per net; the sweep's runs (None for nets at init,
    --nets); what the at-init record holds besides the nets (shattering's 1-D toy)."""

    entries: list[Entry]
    runs: list[RunDir] | None = None
    extras: dict = field(default_factory=dict)

    @property
    def suffix(self) -> str:
        return "" if self.runs is not None else "_at_init"

    def say_kind(self, figures: dict) -> dict:
        """Every figure of nets of one kind other than the paper's says which in its corner (`preact nets`,
        `imagenet nets`), so that a figure taken out of its folder is not read as the paper's nets."""
        kinds = {entry.kind for entry in self.entries}
        kind = kinds.pop() if len(kinds) == 1 else ""  # several kinds: each line's label says its own
        for figure in figures.values() if kind else []:
            figure.text(0.005, 0.995, f"{kind} nets", ha="left", va="top", fontsize=8, color="0.3")
        return figures


def gradients_figures(drawing: Drawing) -> dict:
    drawn = {}
    if drawing.runs is not None:
        profiles, ratio = training_gradients(drawing.runs)
        if profiles:
            drawn.update(gradients_by_layer=profiles, gradients_ratio=ratio)
    if drawing.entries:
        drawn["gradients_at_init"] = init_gradients(drawing.entries)
    return drawn


def shattering_figures(drawing: Drawing) -> dict:
    if not drawing.entries:
        return {}
    return {
        f"shattering{drawing.suffix}": shattering_curves(drawing.entries),
        f"shattering_depth{drawing.suffix}": neighbour_correlation(drawing.entries, drawing.extras.get("toy")),
    }


def lesion_figures(drawing: Drawing) -> dict:
    return {"lesion": lesion_figure(drawing.entries)} if drawing.entries else {}


def landscape_figures(drawing: Drawing) -> dict:
    if not drawing.entries:
        return {}
    contours, slices = landscape_surfaces(drawing.entries)
    return {"landscape": contours, "landscape_1d": slices}


def by_net(entries: list[Entry]) -> dict[tuple[str, int, str], list[Entry]]:
    """Each net's entries (its seeds), keyed (arch, depth, kind), shallow first."""
    grouped = defaultdict(list)
    for entry in sorted(entries, key=lambda e: (e.depth, e.arch, e.kind, e.seed)):
        grouped[(entry.arch, entry.depth, entry.kind)].append(entry)
    return dict(grouped)


def net_label(arch: str, depth: int) -> str:
    return f"{TITLES[arch]}-{depth}"


def style(arch: str, depth: int, **extra) -> dict:
    """A net's line: a colour per depth, dashed plain nets; `extra` adds to it or replaces any of it."""
    base = {"color": color(depth), "label": net_label(arch, depth), "gid": f"{arch}-{depth}", "linewidth": 1.4}
    return {**base, **ARCH_STYLE[arch], **extra}


def line_style(entry: Entry, entries: list[Entry]) -> dict:
    """The analyses' style (a colour per depth, dashed plain) where the nets drawn (`entries`, one per net) are of
    one kind; where several kinds are drawn together (the interventions study), a colour per net and its kind in
    the label."""
    if len({e.kind for e in entries}) == 1:
        return style(entry.arch, entry.depth)
    label = net_label(entry.arch, entry.depth) + (f" {entry.kind}" if entry.kind else "")
    return style(entry.arch, entry.depth, color=distinct_color(entries.index(entry)), label=label, gid=label)


def distinct_color(index: int):
    """tab20's ten strong hues first, then their light twins: ten nets never share a hue, and a light line is not
    read as a variant of the strong one beside it."""
    return plt.cm.tab20((2 * index) % 20 + (index // 10) % 2)


def arch_key() -> list[Line2D]:
    return [
        Line2D([], [], color="0.4", label="plain", **ARCH_STYLE["plain"]),
        Line2D([], [], color="0.4", label="ResNet", **ARCH_STYLE["resnet"]),
    ]


def legend(ax, **options) -> None:
    """A legend where the axes have labelled lines (a panel of a net the sweep lacks has none)."""
    if any(not line.get_label().startswith("_") for line in ax.get_lines()):
        ax.legend(**options)


def depth_panels(depths: list[int], height: float = 3.2):
    fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), height), squeeze=False)
    return fig, list(axes[0])


# --- gradients ------------------------------------------------------------------------------------------


def grouped_steps(rows: list[dict]) -> dict[int, np.ndarray]:
    """{step: grad norms in layer order} from gradients.csv rows."""
    steps = defaultdict(list)
    for row in rows:
        steps[int(row["step"])].append(row["grad_norm"])
    return {step: np.array(norms) for step, norms in sorted(steps.items())}


def few_steps(steps: list[int], count: int = 4) -> list[int]:
    """The first, the last and evenly spaced steps between them."""
    if len(steps) <= count:
        return steps
    return sorted({steps[int(round(i))] for i in np.linspace(0, len(steps) - 1, count)})


def gradient_profiles(curves: dict[tuple[str, int], dict[int, np.ndarray]], title: str):
    """‖∂L/∂W‖ by layer position, input to output, one panel per depth; colour = step (darker = later)."""
    depths = sorted({depth for _, depth in curves})
    fig, axes = depth_panels(depths)
    for ax, depth in zip(axes, depths):
        for arch in ("plain", "resnet"):
            steps = curves.get((arch, depth), {})
            chosen = few_steps(list(steps))
            shades = plt.cm.viridis(np.linspace(0.9, 0.0, max(len(chosen), 1)))
            for shade, step in zip(shades, chosen):
                norms = steps[step]
                ax.plot(
                    np.arange(1, len(norms) + 1),
                    norms,
                    color=shade,
                    linewidth=1.2,
                    **ARCH_STYLE[arch],
                    label=f"{TITLES[arch]}, iter. {step}",
                    gid=f"{arch}-{depth}:{step}",
                )
        ax.set_yscale("log")
        ax.set_title(f"{depth} layers")
        ax.set_xlabel("layer (input → output)")
        ax.grid(alpha=0.3, which="both")
        legend(ax, fontsize=6, ncol=2)
    axes[0].set_ylabel("‖∂L/∂W‖")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def training_gradients(runs: list[RunDir]):
    """(profiles figure, first/last ratio figure) of the gradients recorded while training (and at step 0, where
    `analyze gradients` measured them at init); None without any."""
    curves, ratios = {}, defaultdict(list)
    summaries = [run.read_summary() or {} for run in runs]
    lowest = lowest_seeds(summaries)
    for run, summary in zip(runs, summaries):
        if summary.get("arch") not in ARCH_STYLE or summary.get("seed") != lowest[(summary["arch"], summary["depth"])]:
            continue
        rows = run.read_gradients()
        if not rows:
            continue
        at_init = (run.read_analysis("gradients") or {}).get("init")
        steps = grouped_steps((at_init or []) + rows)  # step 0: the norms at init, where analyze measured them
        curves[(summary["arch"], summary["depth"])] = steps
        ratios[(summary["arch"], summary["depth"])] = [(step, norms[0] / norms[-1]) for step, norms in steps.items()]
    if not curves:
        return None, None
    profiles = gradient_profiles(curves, "Gradient norm by layer while training (seed shown: the lowest)")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (arch, depth), points in sorted(ratios.items(), key=lambda item: item[0][1]):
        ax.plot(*zip(*points), **style(arch, depth))
    ax.axhline(1.0, color="0.5", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("iter. (0: at init)")
    ax.set_ylabel("‖∂L/∂W‖ first layer / last layer")
    ax.grid(alpha=0.3, which="both")
    legend(ax, fontsize=7)
    fig.tight_layout()
    return profiles, fig


def lowest_seeds(summaries: list[dict]) -> dict[tuple[str, int], int]:
    """{(arch, depth): the lowest seed of the sweep for that net}: the one whose curves are drawn."""
    lowest: dict[tuple[str, int], int] = {}
    for s in summaries:
        if s.get("arch") in ARCH_STYLE:
            key = (s["arch"], s["depth"])
            lowest[key] = min(lowest.get(key, s["seed"]), s["seed"])
    return lowest


def init_gradients(entries: list[Entry]):
    """At init: ‖∂L/∂W‖ by layer position for every depth in one panel per arch (x scaled to [0, 1]), and
    the first/last ratio against depth."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.6))
    ratios, overflow = defaultdict(list), []
    for (arch, depth, _), group in by_net(entries).items():
        norms = np.mean([[row["grad_norm"] for row in entry.record["init"]] for entry in group], axis=0)
        ax = left if arch == "plain" else middle
        ax.plot(np.linspace(0, 1, len(norms)), norms, **style(arch, depth))
        if np.all(np.isfinite(norms)):
            ratios[arch].append((depth, norms[0] / norms[-1]))
        else:  # the backward pass itself overflowed: float32 gradient entries past 3.4e38, on the way to the input
            overflow.append(
                f"{net_label(arch, depth)}: gradient entries not finite (float32 overflow) in "
                f"{np.count_nonzero(~np.isfinite(norms))} of {len(norms)} layers, from the input"
            )
    for ax, arch in ((left, "plain"), (middle, "resnet")):
        ax.set_title(f"{TITLES[arch]} nets at init")
        ax.set_xlabel("relative layer position (input → output)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        legend(ax, fontsize=7)
    left.set_ylabel("‖∂L/∂W‖ (one batch of 128)")
    for arch, points in ratios.items():
        right.plot(*zip(*sorted(points)), marker="o", color="0.2", label=TITLES[arch], **ARCH_STYLE[arch])
    right.set(xscale="log", yscale="log", xlabel="depth", ylabel="first layer / last layer")
    depths = sorted({e.depth for e in entries})
    right.set_xticks(depths, [str(d) for d in depths], fontsize=7)
    right.minorticks_off()
    right.grid(alpha=0.3)
    legend(right, fontsize=7)
    if overflow:
        below_axes(left, overflow, "overflow")
    fig.tight_layout()
    return fig


# --- shattering -------------------------------------------------------------------------------------------


def mean_curve(group: list[Entry], state: str, bn: str) -> np.ndarray | None:
    curves = [entry.record[state][bn]["autocorrelation"] for entry in group if state in entry.record]
    return np.mean(curves, axis=0) if curves else None


def line_points(entries: list[Entry]) -> int:
    """The points on the line of every record drawn: lag k means k/(points - 1) of the line, so records of
    different numbers of points cannot share a lag axis."""
    points = {entry.settings["points"] for entry in entries}
    if len(points) > 1:
        raise UserError(
            f"shattering records of {' and '.join(map(str, sorted(points)))} points on the line cannot share a lag "
            "axis: compute them again with one setting (without --redraw)"
        )
    return points.pop()


def shattering_curves(entries: list[Entry]):
    """r(k) against lag k: columns at init / trained, rows BN train / eval mode."""
    states = [state for state in ("init", "trained") if any(state in e.record for e in entries)]
    points = line_points(entries)
    fig, axes = plt.subplots(2, len(states), figsize=(5.2 * len(states), 6.4), squeeze=False, sharey=True)
    for column, state in enumerate(states):
        for row, bn in enumerate(("train", "eval")):
            ax = axes[row][column]
            for (arch, depth, _), group in by_net(entries).items():
                curve = mean_curve(group, state, bn)
                if curve is not None:
                    ax.plot(np.arange(len(curve)), curve, **style(arch, depth))
            ax.axhline(0, color="0.5", linewidth=0.8)
            ax.set_title(f"{'at init' if state == 'init' else 'trained'}; {BN_TITLES[bn]}", fontsize=9)
            ax.set_xlabel(f"lag k (steps of 1/{points - 1} of the line: {points} points)")
            ax.grid(alpha=0.3)
            legend(ax, fontsize=6, ncol=2)
        axes[0][column].set_ylim(-0.2, 1.02)
    for row in axes:
        row[0].set_ylabel("autocorrelation r(k)")
    fig.tight_layout()
    return fig


def neighbour_correlation(entries: list[Entry], toy: dict | None = None):
    """r(1) against depth, plain vs ResNet, at init (and trained where measured), one panel per BN mode; the 1-D
    toy on the right."""
    fig, axes = plt.subplots(1, 4 if toy else 2, figsize=(18 if toy else 10, 3.8), squeeze=False)
    axes, spacing = list(axes[0]), line_points(entries) - 1
    for ax, bn in zip(axes, ("train", "eval")):
        not_finite = []
        for state, marker in (("init", "o"), ("trained", "s")):
            for arch in ("plain", "resnet"):
                by_depth = sorted(
                    (depth, float(np.mean([e.record[state][bn]["neighbour_correlation"] for e in group])))
                    for (a, depth, _), group in by_net(entries).items()
                    if a == arch and state in group[0].record
                )
                not_finite += [
                    f"{net_label(arch, depth)} ({state}): gradients not finite (float32 overflow)"
                    for depth, value in by_depth
                    if not np.isfinite(value)
                ]
                if by_depth:
                    ax.plot(
                        *zip(*by_depth),
                        marker=marker,
                        color="0.2" if state == "init" else "#d62728",
                        label=f"{TITLES[arch]}, {'at init' if state == 'init' else 'trained'}",
                        **ARCH_STYLE[arch],
                    )
        depths = sorted({e.depth for e in entries})
        ax.set(
            xscale="log",
            xlabel="depth",
            ylabel=f"r(1): correlation of neighbouring\ngradients (1/{spacing} of the line apart)",
            title=BN_TITLES[bn],
            ylim=(-0.05, 1.02),
        )
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
        legend(ax, fontsize=7)
        if not_finite:
            below_axes(ax, not_finite, "not-finite")
    if toy:
        draw_toy(axes[2], axes[3], toy)
    fig.tight_layout()
    return fig


TOY_COLORS = {"feedforward-1": "#0072b2", "feedforward-24": "#d62728", "resnet-50": "#009e73"}


def draw_toy(gradient_ax, correlation_ax, toy: dict) -> None:
    """Balduzzi et al.'s Figure 1 check: the gradient along the line and its autocorrelation, beside those of
    brown noise (what a 1-layer net's gradient should look like) and white noise (a deep plain net's)."""
    for name, result in toy["nets"].items():
        gradient = np.array(result["gradient"])
        gradient_ax.plot(
            np.linspace(*toy["line"], len(gradient)),
            gradient / np.abs(gradient).max(),
            linewidth=0.8,
            color=TOY_COLORS.get(name),
            label=name,
        )
        correlation_ax.plot(result["autocorrelation"], color=TOY_COLORS.get(name), label=name)
    for kind, linestyle in (("brown", "--"), ("white", ":")):
        correlation_ax.plot(toy["noises"][kind], color="0.35", linestyle=linestyle, label=f"{kind} noise (mean)")
    gradient_ax.set(title="1-D toy at init: gradient (scaled to max 1)", xlabel="input x")
    correlation_ax.set(
        title="1-D toy: autocorrelation", xlabel=f"lag k (steps of 1/{toy['points'] - 1} of the line)", ylabel="r(k)"
    )
    for ax in (gradient_ax, correlation_ax):
        ax.grid(alpha=0.3)
        legend(ax, fontsize=7)


# --- lesion ---------------------------------------------------------------------------------------------


def lesion_figure(entries: list[Entry]):
    """Left: test error with one block deleted, by block; right: against the number of random blocks deleted."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    all_ks: set[int] = set()
    nets = by_net(entries)
    firsts = [group[0] for group in nets.values()]
    for group in nets.values():
        record, drawn = group[0].record, line_style(group[0], firsts)
        single = np.array([[np.nan if e is None else e for e in entry.record["single"]] for entry in group]).mean(0)
        blocks = np.arange(1, len(single) + 1)
        left.plot(blocks, single, marker=".", **drawn)
        intact = np.mean([entry.record["intact"] for entry in group])
        left.axhline(intact, color=drawn["color"], linewidth=0.6, linestyle=drawn["linestyle"])
        down = np.flatnonzero(record["downsampling"])
        left.plot(
            blocks[down],
            single[down],
            linestyle="none",
            marker="o",
            markersize=7,
            markerfacecolor="none",
            markeredgecolor=drawn["color"],
            gid=f"{drawn['gid']}:downsampling",
        )
        ks = [int(k) for k in record["random"]]
        all_ks.update(ks)
        errors = [np.concatenate([entry.record["random"][str(k)] for entry in group]) for k in ks]
        right.errorbar(
            ks,
            [e.mean() for e in errors],
            yerr=np.array([[e.mean() - e.min() for e in errors], [e.max() - e.mean() for e in errors]]),
            capsize=2,
            marker="o",
            markersize=3,
            **drawn,
        )
    for ax in (left, right):
        ax.axhline(90, color="0.5", linewidth=0.8, linestyle=":")
        ax.text(
            1.0, 90, "chance ", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=7, color="0.4"
        )
    left.set(
        xlabel="deleted block, input → output (○: downsampling block; a plain one cannot be deleted)",
        ylabel="test error (%)",
        title="one block deleted (thin line: the intact net)",
        ylim=(0, 100),
    )
    right.set_xticks(sorted(all_ks))
    right.set(
        xlabel="blocks deleted at random",
        ylabel="test error (%)",
        ylim=(0, 100),
        title="k random blocks deleted (mean, min-max over draws)",
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
        legend(ax, fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


# --- landscape ------------------------------------------------------------------------------------------


def landscape_surfaces(entries: list[Entry]):
    """(contours: rows = depths, columns = plain / ResNet, each net's lowest seed with a complete grid; 1-D slices)."""
    complete = [entry for entry in entries if entry.record.get("complete")]
    nets = {(arch, depth): group[0] for (arch, depth, _), group in by_net(complete).items()}
    depths = sorted({depth for _, depth in nets})
    fig, axes = plt.subplots(len(depths), 2, figsize=(9, 4.2 * len(depths)), squeeze=False)
    for row, depth in enumerate(depths):
        for column, arch in enumerate(("plain", "resnet")):
            ax = axes[row][column]
            entry = nets.get((arch, depth))
            if entry is None:
                ax.set_axis_off()
                continue
            draw_contours(ax, entry.record)
            ax.set_title(f"{net_label(arch, depth)} (seed {entry.seed}, iter. {entry.record['step']})", fontsize=9)
    if nets:
        settings = next(iter(nets.values())).record["settings"]
        fig.suptitle(
            f"training loss on a filter-normalized plane: {settings['points']} x {settings['points']} points, "
            f"first {settings['images']} training images, BN eval",
            fontsize=9,
        )
    fig.tight_layout()
    slices, ax = plt.subplots(figsize=(6, 3.8))
    for (arch, depth), entry in sorted(nets.items(), key=lambda item: item[0][1]):
        ax.plot(entry.record["slice_axis"], entry.record["slice"], **style(arch, depth))
    ax.set(yscale="log", xlabel="α (along δ, filter-normalized)", ylabel="training loss")
    ax.grid(alpha=0.3, which="both")
    legend(ax, fontsize=7)
    slices.tight_layout()
    return fig, slices


CONTOUR_LEVELS = 18


def draw_contours(ax, record: dict) -> None:
    """Contours of the loss as Li et al. draw them: levels from the minimum up, in log steps, to 50 x the minimum
    (+ 10 for a minimum near 0) at most, so that a wall of huge losses does not take every level. Points whose
    loss is not finite (float32 overflow far from the weights) are left blank and counted under the axes."""
    grid = np.array(record["axis"])
    loss = np.ma.masked_invalid(np.array(record["loss"], dtype=float))  # rows: beta, columns: alpha
    if loss.count() == 0:
        below_axes(ax, ["no finite loss on the grid"], "not-finite")
        return
    low, high = max(loss.min(), 1e-3), min(loss.max(), 50 * loss.min() + 10)
    contours = ax.contour(
        grid, grid, loss, levels=np.unique(np.geomspace(low, high, CONTOUR_LEVELS)), cmap="viridis", linewidths=0.8
    )
    ax.clabel(contours, contours.levels[::3], fontsize=6, fmt="%.2g")
    if np.ma.count_masked(loss):
        below_axes(ax, [f"{np.ma.count_masked(loss)} of {loss.size} points not finite (blank)"], "not-finite")
    ax.plot(0, 0, marker="+", color="k")
    ticks = [-1, -0.5, 0, 0.5, 1]
    ax.set(xlabel="α (δ)", ylabel="β (η)", aspect="equal", xticks=ticks, yticks=ticks)
