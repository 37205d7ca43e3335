"""The run directory: the contract between training and everything that reads results.

    <run dir>/
      config.yaml            the resolved config the run was started with
      metrics.csv            one row per logged iteration (see METRIC_COLUMNS); blank = not measured
      summary.json           what the run is, how it ended, final errors, provenance
      checkpoints/last.ckpt  the latest Lightning checkpoint (model, optimizer, loops, loader position)
      checkpoints/previous.ckpt  the one before it: the fallback if last.ckpt is unreadable
      train.log              the run's log (Hydra's job log; appended to on resume)

This module is the only writer and reader of metrics.csv and summary.json.
"""

import csv
import json
import os
from pathlib import Path

from pytorch_lightning.loggers import Logger

METRIC_COLUMNS = ("step", "epoch", "lr", "train_loss", "train_err", "test_loss", "test_err")
VAL_COLUMNS = ("val_loss", "val_err")  # appended only when a validation split is held out
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"

RUNNING, COMPLETED, DIVERGED, FAILED, INTERRUPTED = "running", "completed", "diverged", "failed", "interrupted"
FINISHED = (COMPLETED, DIVERGED)  # outcomes a rerun keeps; failed and interrupted runs are tried again
HYDRA_FILES = ("train.log",)  # what Hydra writes into a run directory before the run's checks


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
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / LAST_CHECKPOINT

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
        write_atomically(self.path / CONFIG_FILE, config_yaml)

    def read_metrics(self) -> list[dict]:
        """Rows of metrics.csv with numbers parsed; blank cells become None.

        Safe while the run writes: a last line without its line end is not a row yet.
        """
        if not self.metrics_path.is_file():
            return []
        with open(self.metrics_path, newline="") as file:
            lines = [line for line in file.read().splitlines(keepends=True) if line.endswith("\n")]
        return [{key: parse_number(value) for key, value in row.items()} for row in csv.DictReader(lines)]

    def drop_metrics_after(self, step: int) -> None:
        """Forgets rows logged after `step`, e.g. those a resumed run will log again.

        A line without its line end was cut short by a kill mid-write: it is not a row.
        """
        if not self.metrics_path.is_file():
            return
        with open(self.metrics_path, newline="") as file:
            lines = [line for line in file.read().splitlines(keepends=True) if line.endswith("\n")]
        if not lines or not lines[0].startswith("step,"):
            self.metrics_path.unlink()
            return
        kept = [lines[0]] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step]
        write_atomically(self.metrics_path, "".join(kept))


def remove_empty_folders(folder: Path, up_to: Path) -> None:
    """Removes folder and its parents while they are empty, stopping after up_to."""
    root, folder = up_to.resolve(), folder.resolve()
    while folder.is_dir() and (folder == root or root in folder.parents) and not any(folder.iterdir()):
        folder.rmdir()
        if folder == root:
            break
        folder = folder.parent


def parse_number(text: str) -> int | float | None:
    if text == "":
        return None
    number = float(text)
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def format_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class MetricsCsvLogger(Logger):
    """A Lightning logger that writes metrics.csv: everything logged at one step becomes one row.

    Each row is on disk as soon as it is logged; metrics that arrive later for the same step
    (the test error after the training error) rewrite that last row in place.
    """

    def __init__(self, path: str | Path, columns: tuple[str, ...] = METRIC_COLUMNS):
        super().__init__()
        self.path, self.columns = Path(path), tuple(columns)
        self.last_row: dict | None = None
        self.last_row_offset = 0  # where the last row starts in the file

    @property
    def name(self) -> str:
        return "metrics_csv"

    @property
    def version(self) -> str:
        return ""

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The config is saved next to the metrics (config.yaml, summary.json); nothing to do here."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
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
