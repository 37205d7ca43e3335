"""The signal propagation analysis's figures (analysis/signal.py): Brock, De & Smith 2021's signal propagation plots
(three panels against the block), and the spectrum of the input-output Jacobian at init."""

import math

import matplotlib.pyplot as plt
import numpy as np

from degradation.report.analysis_figures import Drawing, Entry, line_style

PANELS = (
    ("squared_mean", "average channel squared mean"),
    ("variance", "average channel variance"),
    ("branch_variance", "residual branch variance"),
)


def signal_figures(drawing: Drawing) -> dict:
    if not drawing.entries:
        return {}
    lowest_seed = {}
    for entry in sorted(drawing.entries, key=lambda e: (e.depth, e.arch, e.kind, e.seed)):
        lowest_seed.setdefault((entry.arch, entry.depth, entry.kind), entry)
    lowest_seed = list(lowest_seed.values())
    return {
        f"signal{drawing.suffix}": propagation(lowest_seed),
        f"signal_jacobian{drawing.suffix}": jacobian_spectra(lowest_seed),
    }


def propagation(entries: list[Entry]):
    """One panel per statistic against the block (input to output), log scale, a line per net."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.9))
    for ax, (key, title) in zip(axes, PANELS):
        for entry in entries:
            points = [
                (block, value)
                for block, value in enumerate(entry.record["blocks"][key], start=1)
                if value is not None and value > 0 and math.isfinite(value)
            ]
            if points:
                ax.plot(*zip(*points), **line_style(entry, entries))
        ax.set_yscale("log")
        at_least_a_decade(ax)
        ax.set_xlabel("block (input to output)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[2].text(
        0.02,
        0.02,
        "plain nets have no branch; a branch that is 0 at init (Fixup) has no point on a log axis",
        transform=axes[2].transAxes,
        fontsize=7,
        color="0.4",
    )
    # every net, beside the panels: inside, a dozen of them (the interventions study) hide the lines at 1
    axes[2].legend(*axes[1].get_legend_handles_labels(), fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(
        f"Signal propagation at init (Brock et al. 2021): block outputs over one batch of {images(entries)} "
        "training images, BN in train mode; seed " + seeds(entries),
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def jacobian_spectra(entries: list[Entry]):
    """The ten singular values of d logits / d image by rank: the median over images, a band from min to max."""
    fig, ax = plt.subplots(figsize=(9.5, 4.4))
    for entry in entries:
        values = np.array(entry.record["jacobian_singular_values"])  # [images, 10], largest first
        ranks = np.arange(1, values.shape[1] + 1)
        median = np.median(values, axis=0)
        drawn = line_style(entry, entries)
        ax.plot(ranks, median, marker=".", **{**drawn, "label": f"{drawn['label']} ({spread_said(values)})"})
        ax.fill_between(ranks, values.min(0), values.max(0), color=drawn["color"], alpha=0.12, linewidth=0)
    ax.set_yscale("log")
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("rank of the singular value")
    ax.set_ylabel("singular value of d logits / d image")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside: the lines span the height
    count = len(entries[0].record["jacobian_singular_values"])
    ax.set_title(
        f"Input-output Jacobian at init: median over {count} images (band: min to max);\n"
        "BN fixed at the batch's statistics; all equal = every input direction passed on alike",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def at_least_a_decade(ax) -> None:
    """A log axis spans at least a factor of 10 around its data, so that a flat line (a branch ending in BN has
    variance 1 - eps) reads as flat, not as noise blown up to fill the panel."""
    low, high = ax.get_ylim()
    if high / low < 10:
        middle = math.sqrt(low * high)
        ax.set_ylim(middle / math.sqrt(10), middle * math.sqrt(10))


def spread_said(values: np.ndarray) -> str:
    """The median over images of largest / smallest singular value; a zero Jacobian (Fixup's zero logits) and a
    rank-deficient one said as such, since neither has a ratio."""
    if not values.any():
        return "Jacobian 0: the logits are 0 at init"
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.median(values[:, 0] / values[:, -1])
    return f"largest / smallest {ratio:.3g}" if np.isfinite(ratio) else "largest / smallest: ∞, rank < 10"


def images(entries: list[Entry]) -> int:
    return entries[0].settings.get("batch", 0)


def seeds(entries: list[Entry]) -> str:
    return ", ".join(str(seed) for seed in sorted({entry.seed for entry in entries}))
