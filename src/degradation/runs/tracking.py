"""Weights & Biases for one run: a logger that never prompts, never fails the run and never blocks it.

metrics.csv stays the source of truth; W&B receives the same rows (step = iteration) for dashboards,
grouped per sweep. Mode `auto` is online when credentials exist and offline otherwise; offline runs
are uploaded later with `make wandb-sync`. No API key is ever read into the config or written anywhere.

W&B never decides a run's fate. Its service is a process of its own (wandb-core), and a scheduler signals
every process of a job: SLURM's SIGTERM ends wandb-core at once (wandb/wandb#9963), and every later call
raises. So after the run has started, every call goes to W&B through a `Courier` (one thread, in order): a
call that raises, or a W&B that stops taking calls, is one warning in the run's log and the end of W&B for
that run; the status, checkpoint, metrics.csv and the preemption hand-over are those of a run without it.
"""

import logging
import netrc
import os
import queue
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger

from degradation.errors import one_line

log = logging.getLogger(__name__)

WANDB_HOST = "api.wandb.ai"
FINISH_DEADLINE_S = 120.0  # a run's end waits this long for W&B to write (online: upload) what it was given
# After a preemption signal the scheduler kills what is left (SLURM's KillWait: 30 s by default), and the
# checkpoint is already on disk: W&B gets a few seconds.
PREEMPTED_DEADLINE_S = 10.0
TEARDOWN_WAIT_S = 1.0  # time for wandb.teardown() to remove its exit hook before it blocks on a stuck service
BEHIND_LIMIT = 10_000  # calls W&B may fall behind by before it counts as stuck (a row every log_every steps)


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(requested: str) -> str:
    """online/offline/disabled; WANDB_MODE in the environment wins, as wandb users expect."""
    requested = os.environ.get("WANDB_MODE", requested)
    if requested == "auto":
        return "online" if has_credentials() else "offline"
    if requested == "online" and not has_credentials():
        log.warning("W&B: no credentials (WANDB_API_KEY or ~/.netrc); logging offline, sync later")
        return "offline"
    return requested


def run_name(cfg: DictConfig, run_dir: Path) -> str:
    """W&B's name of a run: its network's folder name (rundir.run_name) and its seed."""
    return f"{run_dir.parent.name}-s{cfg.seed}"


def make_logger(cfg: DictConfig, run_dir: Path, run_id: str | None, config: dict):
    """Lightning's WandbLogger for this run, or None when W&B is disabled. run_id continues an earlier run."""
    settings = cfg.logger.wandb
    mode = resolve_mode(settings.mode)
    if mode == "disabled":
        return None
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    os.environ.setdefault("WANDB_SILENT", "true")  # wandb's banner would drown the progress output
    return WandbLogger(
        save_dir=str(run_dir),
        project=settings.project,
        entity=settings.entity,
        group=settings.group,
        name=run_name(cfg, run_dir),
        tags=[cfg.model.arch, f"depth-{cfg.model.depth}", *settings.tags],
        id=run_id,
        resume="allow",
        mode=mode,
        config=config,
        settings=wandb.Settings(console="off", x_disable_stats=True),
    )


class Courier:
    """W&B's calls, in the order sent, on a thread of their own. The first call that raises, or a W&B that falls
    BEHIND_LIMIT calls behind or misses `close`'s deadline, ends W&B for this run with one warning; later calls
    are dropped. The training thread never waits on W&B, except in `close`, up to its deadline."""

    def __init__(self, behind_limit: int = BEHIND_LIMIT):
        self.calls: queue.Queue = queue.Queue(maxsize=behind_limit)
        self.failed = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.work, name="wandb-courier", daemon=True)
        self.thread.start()

    def send(self, call, *args) -> None:
        if self.failed:
            return
        try:
            self.calls.put_nowait((call, args))
        except queue.Full:
            self.give_up(f"it fell {self.calls.maxsize} calls behind")

    def work(self) -> None:
        while (item := self.calls.get()) is not None:
            call, args = item
            if self.failed:
                continue
            try:
                call(*args)
            except BaseException as error:  # noqa: BLE001 -- wandb may even sys.exit; none of it is the run's fate
                self.give_up(one_line(error, with_type=True))

    def close(self, deadline_s: float) -> bool:
        """Waits up to deadline_s for the calls sent so far; whether W&B took them all."""
        deadline = time.monotonic() + deadline_s
        try:
            self.calls.put(None, timeout=deadline_s)
        except queue.Full:
            pass
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():
            self.give_up(f"it did not finish within {deadline_s:.0f} s")
        return not self.failed

    def give_up(self, reason: str) -> None:
        with self.lock:
            if self.failed:
                return
            self.failed = True
        log.warning("W&B stopped working (%s); the run goes on without it: metrics.csv has every row", reason)
        # Let go of W&B's service, on a thread that may hang with it: wandb.teardown() first removes the exit hook
        # that would otherwise wait for a dead or stuck service (or print its traceback) when the process ends.
        letting_go = threading.Thread(target=teardown_quietly, name="wandb-teardown", daemon=True)
        letting_go.start()
        letting_go.join(TEARDOWN_WAIT_S)


def teardown_quietly() -> None:
    try:
        import wandb

        wandb.teardown()
    except BaseException:  # noqa: BLE001 -- the service is gone or stuck: nothing left to tell it
        pass


class WandbRows(Logger):
    """What Lightning logs to W&B: the metrics rows, through the courier. The run's config went to W&B once, at
    init (Lightning's own hyperparameters would overwrite its `optim` and `speed` keys with the module's shapes)."""

    def __init__(self, wandb_logger, courier: Courier):
        super().__init__()
        self.wandb_logger, self.courier = wandb_logger, courier

    @property
    def name(self) -> str:
        return "wandb"

    @property
    def version(self) -> str:
        return ""

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The Hydra config is W&B's config already (make_logger)."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.courier.send(self.wandb_logger.log_metrics, dict(metrics), step)


class WandbRun:
    """One run's W&B, or none: the logger the Trainer gets, what summary.json remembers, and the run's end."""

    def __init__(self, wandb_logger=None, record: dict | None = None):
        self.record = record
        self.courier = Courier() if wandb_logger is not None else None
        self.logger = WandbRows(wandb_logger, self.courier) if wandb_logger is not None else None

    def finish(self, summary: dict, exit_code: int, preempted: bool = False) -> bool:
        """Copies the run's summary values, marks a preempted run as preempting (W&B then shows it preempted, not
        crashed, and the requeued job continues it) and closes the W&B run; whether W&B took it all."""
        if self.courier is None:
            return True
        if preempted:
            self.courier.send(mark_preempting)
        self.courier.send(finish_run, summary, exit_code)
        return self.courier.close(PREEMPTED_DEADLINE_S if preempted else FINISH_DEADLINE_S)


def mark_preempting() -> None:
    import wandb

    if wandb.run is not None:
        wandb.run.mark_preempting()


def finish_run(summary: dict, exit_code: int) -> None:
    import wandb

    if wandb.run is not None:
        wandb.run.summary.update({key: value for key, value in summary.items() if isinstance(value, (int, float, str))})
    wandb.finish(exit_code=exit_code)


def open_run(cfg: DictConfig, run_dir: Path, run_id: str | None, config: dict) -> WandbRun:
    """This run's W&B, started now; never stops the training.

    If W&B cannot start (unreachable, no network, bad API key), the run logs offline with one
    warning and stays syncable with `make wandb-sync`; if even that fails, it goes on without W&B.
    """
    try:
        wandb_logger = make_logger(cfg, run_dir, run_id, config)
        return WandbRun(wandb_logger, start(wandb_logger))
    except Exception as error:
        if resolve_mode(cfg.logger.wandb.mode) == "offline":
            log.warning("W&B failed (%s); this run logs to metrics.csv only", one_line(error, with_type=True))
            finish_quietly()
            return WandbRun()
        log.warning(
            "W&B online failed (%s); logging offline instead: `make wandb-sync` uploads it later",
            one_line(error, with_type=True),
        )
        finish_quietly()
    offline = cfg.copy()
    offline.logger.wandb.mode = "offline"
    try:
        with forced_mode("offline"):
            wandb_logger = make_logger(offline, run_dir, run_id, config)
            return WandbRun(wandb_logger, start(wandb_logger))
    except Exception as error:
        log.warning("W&B offline failed too (%s); this run logs to metrics.csv only", one_line(error, with_type=True))
        finish_quietly()
        return WandbRun()


def finish_quietly() -> None:
    try:
        import wandb

        wandb.finish(exit_code=1, quiet=True)
    except Exception:
        pass


@contextmanager
def forced_mode(mode: str):
    """WANDB_MODE in the environment wins over the config; this overrides it for one attempt."""
    saved = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = mode
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = saved


def start(wandb_logger) -> dict | None:
    """Starts the W&B run now (not lazily) and returns what the summary should remember of it."""
    if wandb_logger is None:
        return None
    experiment = wandb_logger.experiment
    return {"id": experiment.id, "mode": experiment.settings.mode, "group": experiment.group}
