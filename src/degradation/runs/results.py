"""A sweep as data: every run's curves and final numbers, read from the run directories.

This is the one place figures, tables and notebooks get results from; it reads run directories
only through `rundir`, so every number can be traced back to disk. No torch: plotting a sweep
needs numpy and matplotlib only.
"""

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from degradation.conf import intervention_keys, model_preset
from degradation.errors import UserError
from degradation.runs.rundir import (
    DIVERGED,
    FINISHED,
    MULTIRUN_FILE,
    PAPER_FAMILY,
    RunDir,
    find_runs,
    last_written,
    net_kind,
    run_subdir,
    variant,
)

ARCHS = ("plain", "resnet")


def number(value, digits: int = 2) -> str:
    """How tables write a number; a dash where there is none."""
    return "–" if value is None else f"{value:.{digits}f}"


@dataclass
class Curve:
    steps: np.ndarray
    values: np.ndarray

    @classmethod
    def empty(cls) -> "Curve":
        return cls(np.zeros(0, dtype=int), np.zeros(0))


@dataclass
class Run:
    """One run of a sweep: what it is, how it ended, its curves (errors in percent)."""

    arch: str
    depth: int
    seed: int
    family: str
    status: str
    params: int | None
    train_err: Curve
    test_err: Curve
    val_err: Curve
    summary: dict = field(repr=False)
    responses: list[float] | None = None  # Figure 7: std of each 3x3 layer's response

    @property
    def variant(self) -> str:
        """What else makes it another net than the paper's (summary.json's `variant`; '' for the paper's)."""
        return self.summary.get("variant", "")

    @property
    def kind(self) -> str:
        return net_kind(self.family, self.variant)

    @property
    def key(self) -> str:
        return run_subdir(self.family, self.arch, self.depth, self.seed, self.variant)

    @property
    def final_test_err(self) -> float | None:
        return self.summary.get("final_test_err")

    @property
    def final_train_err(self) -> float | None:
        return self.summary.get("final_train_err")

    @property
    def test_size(self) -> int | None:
        """How many test images its test error is measured on: None for all 10,000 (data.test_size)."""
        return ((self.summary.get("config") or {}).get("data") or {}).get("test_size")

    @property
    def diverged_at(self) -> int | None:
        return self.summary.get("steps") if self.status == DIVERGED else None


@dataclass
class Sweep:
    name: str
    runs: list[Run]
    missing: list[str]  # expected by the sweep's grid, not finished (absent, running, failed)
    variant: str = ""  # the kind all its nets are (Run.kind: `preact`, `imagenet`); '' for the paper's

    def select(self, arch: str, depth: int | None = None) -> list[Run]:
        return [r for r in self.runs if r.arch == arch and (depth is None or r.depth == depth)]

    def depths(self, arch: str) -> list[int]:
        return sorted({r.depth for r in self.select(arch)})

    def environment_note(self) -> str | None:
        """What Table 6 says when its runs were not trained in one environment, or not in uv.lock's tested set
        (summary.json's `environment`); nothing when every run is locked to one lock, or none recorded it."""
        groups: dict[str, list[str]] = {}
        for run in self.runs:
            record = run.summary.get("environment")
            said = (
                f"{record['state']} (uv.lock {record['lock'] or 'absent'})"
                if record
                else "not recorded (trained before runs recorded it)"
            )
            groups.setdefault(said, []).append(run.key)
        if len(groups) == 1 and (next(iter(groups)).startswith(("locked", "not recorded"))):
            return None
        parts = [
            f"{len(keys)} run{'s' if len(keys) > 1 else ''} {said}"
            + ("" if said.startswith("locked") else f": {', '.join(sorted(keys))}")
            for said, keys in sorted(groups.items(), key=lambda g: -len(g[1]))
        ]
        if len(groups) == 1:
            return f"Every run was trained outside uv.lock's tested set: {parts[0]}."
        return f"These runs come from {len(groups)} environments: {'; '.join(parts)}."

    def test_subset(self) -> str | None:
        """What figures and tables say when test errors come from a subset of the test set (data.test_size)."""
        sizes = sorted({r.test_size for r in self.runs if r.test_size is not None})
        if not sizes:
            return None
        return f"on the first {' or '.join(map(str, sizes))} of the 10,000 test images"


def read_curves(run_dir: RunDir) -> dict[str, Curve]:
    """train_err/test_err/val_err curves: the steps where each was measured, and its values."""
    rows = run_dir.read_metrics()
    curves = {}
    for name in ("train_err", "test_err", "val_err"):
        pairs = [(row["step"], float(row[name])) for row in rows if row.get(name) is not None]
        curves[name] = (
            Curve(np.array([s for s, _ in pairs], dtype=int), np.array([v for _, v in pairs]))
            if pairs
            else Curve.empty()
        )
    return curves


def read_run(run_dir: RunDir) -> Run:
    return run_from(run_dir.read_summary(), read_curves(run_dir), run_dir.read_responses())


def run_from(summary: dict, curves: dict[str, Curve], responses: list[float] | None = None) -> Run:
    return Run(
        arch=summary["arch"],
        depth=int(summary["depth"]),
        seed=int(summary["seed"]),
        family=summary.get("family", PAPER_FAMILY),  # runs from before families existed are the paper's
        status=summary["status"],
        params=summary.get("params"),
        train_err=curves.get("train_err", Curve.empty()),
        test_err=curves.get("test_err", Curve.empty()),
        val_err=curves.get("val_err", Curve.empty()),
        summary=summary,
        responses=responses,
    )


def expected_runs(sweep_dir: Path) -> list[str]:
    """The runs the sweep's grid asked for, from Hydra's multirun.yaml (empty if it is missing), sorted."""
    path = sweep_dir / MULTIRUN_FILE
    if not path.is_file():
        return []
    hydra = yaml.safe_load(path.read_text())["hydra"]
    grid = {key: str(value) for key, value in (hydra.get("sweeper", {}).get("params") or {}).items()}
    for override in hydra.get("overrides", {}).get("task", []):
        key, _, value = override.partition("=")
        if key in ("model", "seed", "intervention") or key.startswith("model."):
            grid[key] = value
    values = lambda key, default="": [v for v in grid.get(key, default).split(",") if v]  # noqa: E731
    other_keys = [key for key in grid if key.startswith("model.") and key not in ("model.depth", "model.residual")]
    runs = []
    for net in base_nets(values("intervention"), values("model", "resnet")):
        residuals = [r.lower() == "true" for r in values("model.residual")] or [net["residual"]]
        depths = [int(d) for d in values("model.depth") if d.isdigit()] or [net["depth"]]
        for choice in itertools.product(*[values(key) for key in other_keys]):
            chosen = {key.removeprefix("model."): yaml.safe_load(value) for key, value in zip(other_keys, choice)}
            named = variant({**net, **chosen})
            runs += [
                run_subdir(net["family"], "resnet" if residual else "plain", depth, int(seed), named)
                for residual in residuals
                for depth in depths
                for seed in values("seed", "0")
            ]
    return sorted(set(runs))  # a model.* override may turn two of the study's nets into one


def base_nets(interventions: list[str], models: list[str]) -> list[dict]:
    """The nets a sweep's grid names before its model.* overrides: the interventions study's nets, each one's keys
    from conf/intervention/<its run name>.yaml (experiment=sweep_interventions), or else conf/model presets."""
    if interventions:
        return [{**model_preset("resnet"), **intervention_keys(name)} for name in interventions]
    return [model_preset(model) for model in models]  # its family, depth and arch


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Every finished run (completed or diverged) under sweep_dir, and the ones still missing."""
    sweep_dir = Path(sweep_dir)
    runs = [read_run(run_dir) for run_dir in find_runs(sweep_dir)]
    return assemble(sweep_dir.name, runs, expected_runs(sweep_dir))


def assemble(name: str, runs: list[Run], expected: list[str]) -> Sweep:
    """The finished runs in table order (arch, depth, seed); everything expected or begun but unfinished is missing."""
    finished = [r for r in runs if r.status in FINISHED]
    present = {r.key for r in finished}
    missing = sorted((set(expected) | {r.key for r in runs}) - present)
    finished.sort(key=lambda r: (ARCHS.index(r.arch) if r.arch in ARCHS else len(ARCHS), r.depth, r.seed))
    return Sweep(
        name=name, runs=finished, missing=missing, variant=one_variant(f"sweep {name}", {r.kind for r in finished})
    )


def one_variant(holder: str, variants: set[str]) -> str:
    """The variant all of `holder`'s nets share (every figure's rule): the figures draw one at a time, since a
    ResNet-20 and a pre-activation ResNet-20 would otherwise be averaged as seeds of one net."""
    ordered = sorted(variants)
    if len(ordered) > 1:
        shown = ", ".join(v or "the paper's" for v in ordered)
        raise UserError(
            f"{holder} holds nets of several variants ({shown}): the figures draw one variant at a time, "
            "so train each in its own sweep (name=...)"
        )
    return ordered[0] if ordered else ""


def latest_sweep(runs_root: str | Path = "runs") -> Path:
    """The sweep folder under runs_root whose newest summary.json is the most recent."""
    candidates = [path for path in Path(runs_root).iterdir() if path.is_dir() and find_runs(path)]
    if not candidates:
        raise FileNotFoundError(f"no sweep with finished runs under {runs_root}/")
    return max(candidates, key=last_written)


# --- the same runs from W&B ---------------------------------------------------------------------

STEP_KEY = "trainer/global_step"


def wandb_curve(history_rows, metric: str) -> Curve:
    pairs = sorted((int(row[STEP_KEY]), float(row[metric])) for row in history_rows if row.get(metric) is not None)
    if not pairs:
        return Curve.empty()
    return Curve(np.array([s for s, _ in pairs], dtype=int), np.array([v for _, v in pairs]))


def load_wandb_sweep(api, project: str, group: str, entity: str | None = None) -> Sweep:
    """The runs of one W&B group (one sweep) through the public API (`wandb.Api()` or a stand-in)."""
    path = f"{entity}/{project}" if entity else project
    runs = []
    for remote in api.runs(path, filters={"group": group}):
        summary = dict(remote.summary)
        if "arch" not in summary:  # not a harness run, or one that never finished its first step
            continue
        curves = {
            metric: wandb_curve(remote.scan_history(keys=[STEP_KEY, metric]), metric)
            for metric in ("train_err", "test_err", "val_err")
        }
        runs.append(run_from(summary, curves))
    return assemble(group, runs, expected=[])
