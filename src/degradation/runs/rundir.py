"""The run directory: the contract between training and everything that reads results.

    <runs_root>/<name>/<run name>/seed=<seed>/     run name: <arch>-<depth> (the paper's CIFAR nets),
                                                   <family>-<arch>-<depth> for other families
      config.yaml            the resolved config the run was started with
      metrics.csv            one row per logged iteration (see METRIC_COLUMNS); blank = not measured
      summary.json           what the run is, how it ended, final errors, provenance
      responses.json         Figure 7: the std of each 3x3 layer's response, measured when training ended
      gradients.csv          every conv/linear weight's gradient norm and norm, one row per layer every log_every
                             iterations (see GRADIENT_COLUMNS)
      <analysis>.json        each analysis of `python -m degradation.analyze` (gradients.json, lesion.json, ...:
                             analysis/registry.py names them; docs/run-directory.md)
      checkpoints/last.ckpt  the latest Lightning checkpoint (model, optimizer, loops, loader position)
      checkpoints/previous.ckpt  the one before it: the fallback if last.ckpt is unreadable
      train.log              the run's log (Hydra's job log; appended to on resume)
      .lock                  held by the process training the run

This module is the one owner of these names and of the layout, and the only reader and writer of
the files (checkpoints are written by Lightning, through `write_atomically`). Standard library
only: figures, tables and notebooks read runs without loading torch.
"""

import csv
import json
import os
from pathlib import Path

METRIC_COLUMNS = ("step", "epoch", "lr", "train_loss", "train_err", "test_loss", "test_err")
VAL_COLUMNS = ("val_loss", "val_err")  # appended only when a validation split is held out
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"
RESPONSES_FILE = "responses.json"
GRADIENTS_FILE = "gradients.csv"
GRADIENT_COLUMNS = ("step", "layer", "grad_norm", "weight_norm")
ANALYSIS_FILE = "{analysis}.json"  # the record of an analysis of degradation.analyze (analysis/registry.py)
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
PREVIOUS_CHECKPOINT = "previous.ckpt"
LOCK_FILE = ".lock"
LOG_FILE = "train.log"
HYDRA_FILES = (LOG_FILE,)  # what Hydra writes into a run directory before the run's checks
MULTIRUN_FILE = "multirun.yaml"  # Hydra's record of a sweep, in the sweep folder
PAPER_FAMILY = "cifar"  # its run names carry no family, as they always have

RUNNING, COMPLETED, DIVERGED, FAILED, INTERRUPTED = "running", "completed", "diverged", "failed", "interrupted"
FINISHED = (COMPLETED, DIVERGED)  # outcomes a rerun keeps; failed and interrupted runs are tried again


# --- the layout of a sweep ----------------------------------------------------------------------


# The model keys that make another network than the paper's: the paper's value and how another value is written in
# the run directory's name (resnet-110-preact/, resnet-56-norm-none-skipinit/), so that no two networks share one.
NAMED_MODEL_KEYS = {
    "block": ("original", "{}"),
    "norm": ("bn", "norm-{}"),
    "branch_init": ("none", "{}"),
    "drop_path": (0.0, "droppath{:g}"),
    "init_mode": ("fan_in", "{}"),
    "activation": ("relu", "{}"),
    "conv": ("standard", "{}"),
}


def variant(model) -> str:
    """What names a network besides family, arch and depth: its NAMED_MODEL_KEYS that differ from the paper's,
    joined by '-' ('' for the paper's own nets and for families without these keys)."""
    return "-".join(
        label.format(model[key]) for key, (paper, label) in NAMED_MODEL_KEYS.items() if model.get(key, paper) != paper
    )


def run_name(family: str, arch: str, depth: int, variant: str = "") -> str:
    """Names one network: no two networks of any families share it. `variant`: what else makes it another
    network than the paper's (nets/registry.variant: `preact`), empty for the paper's own."""
    name = f"{arch}-{depth}" + (f"-{variant}" if variant else "")
    return name if family == PAPER_FAMILY else f"{family}-{name}"


def net_kind(family: str, variant: str = "") -> str:
    """What a net is besides its arch and depth: its family (other than the paper's) and variant, as its run
    directory's name says them (`preact`, `imagenet`, `imagenet-fan_out`); '' for the paper's nets. Figures draw
    one kind at a time."""
    return "-".join(part for part in (family if family != PAPER_FAMILY else "", variant) if part)


def name_in(summary: dict) -> str:
    """The net a run's summary.json records, named as its run directory names it."""
    return run_name(
        summary.get("family", PAPER_FAMILY), summary.get("arch"), summary.get("depth"), summary.get("variant", "")
    )


def kind_in(summary: dict) -> str:
    """The kind of net (net_kind) a run's summary.json records."""
    return net_kind(summary.get("family", PAPER_FAMILY), summary.get("variant", ""))


def run_subdir(family: str, arch: str, depth: int, seed: int, variant: str = "") -> str:
    """Where a run lives inside its sweep folder (Hydra's run and sweep dirs are built from this)."""
    return f"{run_name(family, arch, depth, variant)}/seed={seed}"


def find_runs(sweep_dir: str | Path) -> list["RunDir"]:
    """Every run directory of a sweep that has a summary, in name order."""
    return [RunDir(path.parent) for path in sorted(Path(sweep_dir).glob(f"*/seed=*/{SUMMARY_FILE}"))]


def last_written(sweep_dir: str | Path) -> float:
    """When a summary of the sweep last changed (0 if it has none)."""
    return max((run.summary_path.stat().st_mtime for run in find_runs(sweep_dir)), default=0.0)


# --- one run directory --------------------------------------------------------------------------


class RunDir:
    """Paths and reads/writes of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def responses_path(self) -> Path:
        return self.path / RESPONSES_FILE

    @property
    def gradients_path(self) -> Path:
        return self.path / GRADIENTS_FILE

    def analysis_path(self, analysis: str) -> Path:
        return self.path / ANALYSIS_FILE.format(analysis=analysis)

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / LAST_CHECKPOINT

    @property
    def previous_checkpoint(self) -> Path:
        return self.checkpoint_dir / PREVIOUS_CHECKPOINT

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> "RunDir":
        return cls(Path(checkpoint).parent.parent)

    def holds_results(self) -> bool:
        return any(path.exists() for path in (self.metrics_path, self.summary_path, self.checkpoint_dir))

    def discard_if_empty(self, runs_root: Path) -> None:
        """Removes a run directory that holds only Hydra's files, and its empty parents under runs_root.

        Used when a run is refused (bad input): the runs tree is left as it was.
        """
        if not self.path.is_dir() or self.holds_results():
            return
        for name in HYDRA_FILES:
            (self.path / name).unlink(missing_ok=True)
        remove_empty_folders(self.path, up_to=runs_root)

    def read_summary(self) -> dict | None:
        if not self.summary_path.is_file():
            return None
        return json.loads(self.summary_path.read_text())

    def write_summary(self, summary: dict) -> None:
        write_atomically(self.summary_path, json.dumps(summary, indent=2, sort_keys=False) + "\n")

    def write_config(self, config_yaml: str) -> None:
        write_atomically(self.config_path, config_yaml)

    def read_responses(self) -> list[float] | None:
        """Figure 7's stds, one per 3x3 layer; None if the run has not measured them."""
        return json.loads(self.responses_path.read_text())["std"] if self.responses_path.is_file() else None

    def write_responses(self, definition: str, stds: list[float], step: int) -> None:
        record = {"definition": definition, "step": step, "layers": len(stds), "std": stds}
        write_atomically(self.responses_path, json.dumps(record, indent=1) + "\n")

    def read_analysis(self, analysis: str) -> dict | None:
        """What `python -m degradation.analyze <analysis>` recorded for this run; None if it has not run."""
        path = self.analysis_path(analysis)
        return json.loads(path.read_text()) if path.is_file() else None

    def write_analysis(self, analysis: str, record: dict) -> None:
        write_atomically(self.analysis_path(analysis), json.dumps(record, indent=1) + "\n")

    def append_gradients(self, rows: list[dict]) -> None:
        """Adds rows of GRADIENT_COLUMNS to gradients.csv (one per layer, input to output), on disk at once."""
        new = not self.gradients_path.is_file()
        with open(self.gradients_path, "a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(GRADIENT_COLUMNS)
            writer.writerows([format_cell(row[column]) for column in GRADIENT_COLUMNS] for row in rows)
            file.flush()

    def read_gradients(self) -> list[dict]:
        """Rows of gradients.csv (layer names as text, numbers parsed); [] if the run has not recorded them."""
        lines = whole_lines(self.gradients_path)
        return [
            {key: value if key == "layer" else parse_number(value) for key, value in row.items()}
            for row in csv.DictReader(lines)
        ]

    def drop_gradients_after(self, step: int) -> None:
        """Forgets gradient rows recorded after `step` (a resumed run records them again)."""
        drop_rows_after(self.gradients_path, step)

    def read_metrics(self) -> list[dict]:
        """Rows of metrics.csv with numbers parsed; blank cells become None.

        Safe while the run writes: a last line without its line end is not a row yet.
        """
        return [{key: parse_number(value) for key, value in row.items()} for row in csv.DictReader(self.metric_lines())]

    def drop_metrics_after(self, step: int) -> None:
        """Forgets rows logged after `step`, e.g. those a resumed run will log again."""
        drop_rows_after(self.metrics_path, step)

    def metric_lines(self) -> list[str]:
        return whole_lines(self.metrics_path)

    def metrics_writer(self, columns: tuple[str, ...] = METRIC_COLUMNS) -> "MetricsWriter":
        return MetricsWriter(self.metrics_path, columns)


class MetricsWriter:
    """Writes metrics.csv: everything logged at one step becomes one row.

    Each row is on disk as soon as it is written; metrics that arrive later for the same step
    (the test error after the training error) rewrite that last row in place.
    """

    def __init__(self, path: Path, columns: tuple[str, ...] = METRIC_COLUMNS):
        self.path, self.columns = Path(path), tuple(columns)
        self.last_row: dict | None = None
        self.last_row_offset = 0  # where the last row starts in the file

    def write(self, step: int, metrics: dict[str, float]) -> None:
        unknown = set(metrics) - set(self.columns)
        if unknown:
            raise ValueError(f"metrics {sorted(unknown)} are not columns of {self.path.name}: {self.columns}")
        same_step = self.last_row is not None and self.last_row["step"] == step
        row = {**self.last_row, **metrics} if same_step else {"step": step, **metrics}
        with open(self.path, "r+" if self.path.is_file() else "w", newline="") as file:
            if file.seek(0, os.SEEK_END) == 0:
                csv.writer(file).writerow(self.columns)
            if same_step:
                file.seek(self.last_row_offset)
                file.truncate()
            self.last_row_offset = file.tell()
            csv.writer(file).writerow([format_cell(row.get(column)) for column in self.columns])
            file.flush()
        self.last_row = row


# --- helpers ------------------------------------------------------------------------------------


def remove_empty_folders(folder: Path, up_to: Path) -> None:
    """Removes folder and its parents while they are empty, stopping after up_to."""
    root, folder = up_to.resolve(), folder.resolve()
    while folder.is_dir() and (folder == root or root in folder.parents) and not any(folder.iterdir()):
        folder.rmdir()
        if folder == root:
            break
        folder = folder.parent


def drop_rows_after(path: Path, step: int) -> None:
    """Keeps the header and the whole rows of a csv file whose first column (the step) is at most `step`; a file
    without its header (cut before the header was written) is removed."""
    lines = whole_lines(path)
    if not lines or not lines[0].startswith("step,"):
        path.unlink(missing_ok=True)
        return
    kept = [lines[0]] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step]
    write_atomically(path, "".join(kept))


def whole_lines(path: Path) -> list[str]:
    """The lines of a csv file that end with a line end; a last line without one was cut short by a kill mid-write."""
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return [line for line in file.read().splitlines(keepends=True) if line.endswith("\n")]


def parse_number(text: str) -> int | float | None:
    if text == "":
        return None
    number = float(text)
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


def format_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def write_atomically(path: Path, data: str | bytes, keep_previous_as: Path | None = None) -> None:
    """Readers see the old file or the new one, never half of one; the old one may be kept under another name."""
    temporary = temporary_path(path)
    with open(temporary, "wb" if isinstance(data, bytes) else "w") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    if keep_previous_as is not None and path.is_file():
        os.replace(path, keep_previous_as)
    os.replace(temporary, path)
