"""A sweep as data: every run's curves and final numbers, read from the run directories.

This is the one place figures, tables and notebooks get results from; it reads only files of the
run-directory contract (summary.json, metrics.csv), so every number can be traced back to disk.
"""

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from degradation.responses import read_responses
from degradation.rundir import DIVERGED, FINISHED, METRICS_FILE, SUMMARY_FILE

ARCHS = ("plain", "resnet")


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
    status: str
    params: int | None
    train_err: Curve
    test_err: Curve
    val_err: Curve
    summary: dict = field(repr=False)
    responses: list[float] | None = None  # Figure 7: std of each 3x3 layer's response

    @property
    def key(self) -> str:
        return f"{self.arch}-{self.depth}/seed={self.seed}"

    @property
    def final_test_err(self) -> float | None:
        return self.summary.get("final_test_err")

    @property
    def final_train_err(self) -> float | None:
        return self.summary.get("final_train_err")

    @property
    def diverged_at(self) -> int | None:
        return self.summary.get("steps") if self.status == DIVERGED else None


@dataclass
class Sweep:
    name: str
    runs: list[Run]
    missing: list[str]  # expected by the sweep's grid, not finished (absent, running, failed)

    def select(self, arch: str, depth: int | None = None) -> list[Run]:
        return [r for r in self.runs if r.arch == arch and (depth is None or r.depth == depth)]

    def depths(self, arch: str) -> list[int]:
        return sorted({r.depth for r in self.select(arch)})


def read_curves(metrics_path: Path) -> dict[str, Curve]:
    """train_err/test_err/val_err curves: the steps where each was measured, and its values."""
    points: dict[str, list[tuple[int, float]]] = {"train_err": [], "test_err": [], "val_err": []}
    with open(metrics_path, newline="") as file:
        for row in csv.DictReader(file):
            for name, pairs in points.items():
                if row.get(name):
                    pairs.append((int(row["step"]), float(row[name])))
    return {
        name: Curve(np.array([s for s, _ in pairs], dtype=int), np.array([v for _, v in pairs])) if pairs
        else Curve.empty()
        for name, pairs in points.items()
    }


def read_run(run_dir: Path) -> Run:
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    metrics = run_dir / METRICS_FILE
    curves = read_curves(metrics) if metrics.is_file() else {}
    return run_from(summary, curves, read_responses(run_dir))


def run_from(summary: dict, curves: dict[str, Curve], responses: list[float] | None = None) -> Run:
    return Run(
        arch=summary["arch"],
        depth=int(summary["depth"]),
        seed=int(summary["seed"]),
        status=summary["status"],
        params=summary.get("params"),
        train_err=curves.get("train_err", Curve.empty()),
        test_err=curves.get("test_err", Curve.empty()),
        val_err=curves.get("val_err", Curve.empty()),
        summary=summary,
        responses=responses,
    )


def expected_runs(sweep_dir: Path) -> list[str]:
    """The runs the sweep's grid asked for, from Hydra's multirun.yaml (empty if it is missing)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return []
    hydra = yaml.safe_load(path.read_text())["hydra"]
    grid = {key: str(value) for key, value in (hydra.get("sweeper", {}).get("params") or {}).items()}
    for override in hydra.get("overrides", {}).get("task", []):
        key, _, value = override.partition("=")
        if key in ("model", "model.depth", "model.residual", "seed"):
            grid[key] = value
    values = lambda key, default="": [v for v in grid.get(key, default).split(",") if v]  # noqa: E731
    seeds = values("seed", "0")
    runs = []
    for model in values("model"):
        # model=plain|resnet name the arch; model=resnet18 etc. fix the depth, and model.residual the arch.
        archs = [{"true": "resnet", "false": "plain"}[r.lower()] for r in values("model.residual")] or [
            model if model in ("plain", "resnet") else "resnet"]
        depths = [d for d in values("model.depth") or [model.removeprefix("resnet")] if d.isdigit()]
        runs += [f"{a}-{d}/seed={s}" for a in archs for d in depths for s in seeds]
    return runs


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Every finished run (completed or diverged) under sweep_dir, and the ones still missing."""
    sweep_dir = Path(sweep_dir)
    runs = [read_run(path.parent) for path in sorted(sweep_dir.glob(f"*/seed=*/{SUMMARY_FILE}"))]
    return assemble(sweep_dir.name, runs, expected_runs(sweep_dir))


def assemble(name: str, runs: list[Run], expected: list[str]) -> Sweep:
    """The finished runs in table order (arch, depth, seed); everything expected or begun but unfinished is missing."""
    finished = [r for r in runs if r.status in FINISHED]
    present = {r.key for r in finished}
    missing = sorted((set(expected) | {r.key for r in runs}) - present)
    finished.sort(key=lambda r: (ARCHS.index(r.arch) if r.arch in ARCHS else len(ARCHS), r.depth, r.seed))
    return Sweep(name=name, runs=finished, missing=missing)


def latest_sweep(runs_root: str | Path = "runs") -> Path:
    """The sweep folder under runs_root whose newest summary.json is the most recent."""
    candidates = [path for path in Path(runs_root).iterdir() if path.is_dir() and any(path.glob(f"*/seed=*/{SUMMARY_FILE}"))]
    if not candidates:
        raise FileNotFoundError(f"no sweep with finished runs under {runs_root}/")
    newest = lambda sweep: max(p.stat().st_mtime for p in sweep.glob(f"*/seed=*/{SUMMARY_FILE}"))  # noqa: E731
    return max(candidates, key=newest)


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
