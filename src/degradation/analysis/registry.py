"""One record per analysis: its name, what it measures, the options it reads and the settings its result depends on,
whether it needs trained nets, how it computes, the file it writes and the figures it draws. The command line,
the run directory's file names, `make analyze`'s help and docs/analyses.md's table all follow from these records.

Adding an analysis: its compute function (`measure(subject, job) -> dict`, analysis/<name>.py), its figures
(report/analysis_figures.py: `Drawing -> {figure name: figure}`), and a record below.
"""

from collections.abc import Callable
from dataclasses import dataclass

from degradation.analysis import gradients, landscape, lesion, shattering, signal
from degradation.errors import UserError, at_least_one, comma_list, positive
from degradation.report import analysis_figures as figures
from degradation.report.signal_figures import signal_figures
from degradation.runs.rundir import ANALYSIS_FILE

INIT_FILE = "{analysis}-init.json"  # what --nets computes (no run directory holds it), in the --out folder


@dataclass(frozen=True)
class Option:
    """A command-line option an analysis reads; analyses that share a flag share its type and default."""

    flag: str
    use: str  # what this analysis does with it (--help)
    type: Callable = positive
    default: object = None
    note: str = ""  # said after the default (what the paper used, say)


@dataclass(frozen=True)
class Analysis:
    name: str
    about: str  # one line: --help, docs/analyses.md's table
    definition: str  # what the numbers are: into every record
    measure: Callable  # (Subject, Job) -> the record's data for one net
    settings: Callable  # (options) -> what a result depends on besides the weights (another value recomputes it)
    draw: Callable  # (figures.Drawing) -> {figure name: figure}
    figures: tuple[str, ...]  # every figure it may draw (PNG and PDF each)
    needs_trained: bool = False  # refused for --nets (nets at init)
    options: tuple[Option, ...] = ()
    at_init_extras: Callable | None = None  # (settings) -> what --nets' record holds besides the nets
    kinds_apart: bool = False  # its figures give every kind of net (preact, imagenet) a line of its own

    @property
    def run_file(self) -> str:
        return ANALYSIS_FILE.format(analysis=self.name)

    @property
    def init_file(self) -> str:
        return INIT_FILE.format(analysis=self.name)


IMAGES_FOR_LANDSCAPE = Option(
    "--images", f"first N training images (default {landscape.IMAGES})", note="Li et al. all 50,000"
)
IMAGES_FOR_LESION = Option("--images", "first N test images (default: the run's own)")

ANALYSES: dict[str, Analysis] = {
    analysis.name: analysis
    for analysis in (
        Analysis(
            "gradients",
            "per-layer gradient norms, recorded in training (gradients.csv) and at init",
            gradients.DEFINITION,
            gradients.measure,
            lambda options: {"batch": gradients.BATCH},
            figures.gradients_figures,
            ("gradients_by_layer", "gradients_ratio", "gradients_at_init"),
        ),
        Analysis(
            "shattering",
            "how alike the input gradients of nearby inputs are (Balduzzi et al. 2017), at init and trained",
            shattering.DEFINITION,
            shattering.measure,
            lambda options: {"pairs": options.pairs, "points": shattering.POINTS, "max_lag": shattering.MAX_LAG},
            figures.shattering_figures,
            ("shattering", "shattering_depth", "shattering_at_init", "shattering_depth_at_init"),
            options=(Option("--pairs", "pairs of test images", default=4),),
            at_init_extras=lambda settings: {"toy": shattering.toy(settings["seed"])},
        ),
        Analysis(
            "lesion",
            "test error with blocks of the trained net deleted (Veit et al. 2016)",
            lesion.DEFINITION,
            lesion.measure,
            lambda options: {"images": options.images, "ks": options.ks, "draws": options.draws, "seed": options.seed},
            figures.lesion_figures,
            ("lesion",),
            needs_trained=True,
            kinds_apart=True,  # the interventions study sets ResNet-56's variants side by side
            options=(
                IMAGES_FOR_LESION,
                Option("--draws", "random draws per k", default=lesion.DRAWS),
                Option(
                    "--ks",
                    "numbers of random blocks to delete",
                    comma_list(at_least_one, "numbers of blocks >= 1"),
                    list(lesion.KS),
                ),
            ),
        ),
        Analysis(
            "landscape",
            "the loss on a filter-normalized plane through the trained weights (Li et al. 2018)",
            landscape.DEFINITION,
            landscape.measure,
            lambda options: {
                "points": options.points,
                "images": options.images or landscape.IMAGES,
                "seed": options.seed,
            },
            figures.landscape_figures,
            ("landscape", "landscape_1d"),
            needs_trained=True,
            options=(
                Option("--points", "grid points per axis over [-1, 1]", default=landscape.POINTS, note="Li et al. 51"),
                IMAGES_FOR_LANDSCAPE,
            ),
        ),
        Analysis(
            "signal",
            "signal propagation at init: per-block statistics (Brock et al. 2021), the input-output Jacobian's SVD",
            signal.DEFINITION,
            signal.measure,
            lambda options: {"batch": signal.BATCH, "jacobian_images": signal.JACOBIAN_IMAGES},
            signal_figures,
            ("signal", "signal_jacobian", "signal_at_init", "signal_jacobian_at_init"),
            kinds_apart=True,  # the interventions study draws its nets of every variant together
        ),
    )
}


def named(name: str) -> Analysis:
    """The analysis called `name`; another name is one error listing the valid ones."""
    if name not in ANALYSES:
        raise UserError(f"no analysis {name!r}: the analyses are {', '.join(ANALYSES)}")
    return ANALYSES[name]


def options_by_flag() -> dict[str, tuple[Option, str]]:
    """Each flag the analyses read, once: (its option, the help saying what each analysis uses it for)."""
    found: dict[str, tuple[Option, list[str]]] = {}
    for analysis in ANALYSES.values():
        for option in analysis.options:
            first, uses = found.setdefault(option.flag, (option, []))
            if (first.type, first.default) != (option.type, option.default):
                raise ValueError(f"{option.flag}: analyses that share an option share its type and default")
            default = "" if option.default is None else f" (default {format_default(option.default)})"
            uses.append(f"{analysis.name}: {option.use}{default}{'; ' + option.note if option.note else ''}")
    return {flag: (option, "; ".join(uses)) for flag, (option, uses) in found.items()}


def format_default(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def markdown_table() -> str:
    """docs/analyses.md's table of the analyses (a test keeps it equal to this)."""
    rows = [
        "| analysis | what it measures | in each run directory | nets at init (`--nets`) | figures (PNG and PDF) |",
        "|---|---|---|---|---|",
    ]
    for a in ANALYSES.values():
        at_init = "– (needs trained nets)" if a.needs_trained else f"`<out>/{a.init_file}`"
        drawn = ", ".join(f"`{name}`" for name in a.figures)
        rows.append(f"| `{a.name}` | {a.about} | `{a.run_file}` | {at_init} | {drawn} |")
    return "\n".join(rows)
