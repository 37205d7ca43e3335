"""`make bench` (`python -m degradation.bench [options] [config overrides]`): training speed on this device.

For each arch x depth, steady-state time per step (after warm-up steps) of
  harness    the real training path: ClassifierModule and the device-resident loader in the Trainer
             that `degradation.train` builds, with the config's speed switches;
  reference  a common reproduction (loops.py): torchvision CIFAR10 + DataLoader, `.item()` every step;
  bare       the harness's step as one CUDA graph (whole_step.py) on ready-made device batches, same
             precision, layout and compilation, no framework: the floor.
paper_run_min is one paper run (64k steps) at the harness's pace, grid_min the runs down to that row
one after another; harness_ran and bare_ran say which path the timed steps took, from what happened
(precision, layout, compiled or eager, CUDA graph or not). Each measurement releases the device
after it, as a run of a sweep does, so each starts as a fresh run would. Then the data loaders alone, each speed
switch alone on the first network, and several harness runs sharing the device (on a GPU with and without the
MPS daemon). Synthetic data of CIFAR shape: no dataset needed. Writes a table to the terminal and
experiments/bench/<device>/bench[-<overrides>].{json,md}.
"""

import argparse
import contextlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from degradation.bench import loops
from degradation.data.cifar10 import CifarLoader, Split, mean_image
from degradation.errors import OneLineParser, UserError, comma_list, exit_with, require
from degradation.nets.cifar import count_parameters
from degradation.nets.registry import build_net
from degradation.runs import provenance
from degradation.runs.provenance import pick_device
from degradation.runs.rundir import RunDir
from degradation.sweeps import gpu_sharing
from degradation.training import progress, speed
from degradation.training.build import (
    build_datamodule,
    build_module,
    build_speed,
    build_trainer,
    network_args,
    optimizer_args,
    precision_of,
)
from degradation.training.config import check_config, compose_config
from degradation.training.lifecycle import release_device_memory
from degradation.training.precision import cpu_bf16_units

PAPER_STEPS = 64_000
DEFAULT_ARCHS = "plain,resnet"
TEST_SIZE = 256  # the harness evaluates once, after its timed steps; kept small so that costs little
SWITCHES = {  # what each row of the switch table overrides, relative to the configured path
    **{name: [f"speed.{name}=true"] for name in speed.SWITCHES},
    "bf16-mixed": ["trainer.precision=bf16-mixed"],
    "speed=fast": ["speed=fast"],  # with trainer.precision=auto: bf16 only where the device has bf16 units
    "speed=fast+bf16": ["speed=fast", "trainer.precision=bf16-mixed"],
    "speed=fast+fp32": [
        "speed=fast",
        "trainer.precision=32-true",
    ],  # the fast path without bf16 (CPUs without bf16 units)
}
log = logging.getLogger("degradation.bench")


# --- configs and synthetic data ---------------------------------------------------------------


def bench_config(overrides: list[str], network: list[str], batch_size: int, total_steps: int) -> DictConfig:
    """The real config tree with the user's overrides for one network, sized for a timing run."""
    timing = [
        f"data.batch_size={batch_size}",
        f"trainer.max_steps={total_steps}",
        f"trainer.eval_every={total_steps}",
        "trainer.progress_bar=false",
    ]
    cfg = compose_config([*network, *overrides, *timing])
    check_config(cfg)
    return cfg


def networks(archs: list[str], depths: list[int]) -> list[list[str]]:
    """Model overrides of each network to time: the paper's family at every depth, depth by depth;
    other families (model=resnet18 ...) at their own depth. `<model>:plain` is a model's plain twin."""
    by_family = {"cifar": [], "other": []}
    for arch in archs:
        model, _, twin = arch.partition(":")
        base = [f"model={model}"] + (["model.residual=false"] if twin == "plain" else [])
        family = compose_config(base).model.family
        by_family["cifar" if family == "cifar" else "other"].append(base)
    cifar = [[*base, f"model.depth={depth}"] for depth in depths for base in by_family["cifar"]]
    return cifar + by_family["other"]


def synthetic_split(size: int, seed: int = 0) -> Split:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return Split(images, torch.randint(0, 10, (size,), generator=generator))


def bench_device(cfg: DictConfig) -> torch.device:
    return pick_device(cfg.trainer.accelerator)


# --- the three paths --------------------------------------------------------------------------


class HarnessClock(pl.Callback):
    """Ticks the step timer; with a barrier, the timed steps of several processes start together."""

    def __init__(self, timer: loops.StepTimer, barrier=None):
        self.timer, self.barrier = timer, barrier

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.barrier is not None and self.timer.done + 1 == self.timer.warmup:
            self.barrier.wait()
        self.timer.tick()


def harness_timer(cfg: DictConfig, train: Split, test: Split, warmup: int, steps: int, barrier=None) -> loops.StepTimer:
    """Runs the Trainer that `degradation.train` builds, into a throw-away run directory."""
    with tempfile.TemporaryDirectory() as scratch:
        datamodule = build_datamodule(cfg)
        datamodule.use_splits(train, test)
        module = build_module(cfg, datamodule.eval_names)
        timer = loops.StepTimer(warmup, steps, bench_device(cfg))
        trainer = build_trainer(cfg, RunDir(scratch), datamodule, callbacks=[HarnessClock(timer, barrier)])
        trainer.fit(module, datamodule=datamodule)
    timer.graphed = module.train_step.replays_a_graph
    return timer


def compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def measured(cfg: DictConfig, timed) -> tuple[float, str]:
    """Seconds per step of `timed()` (a StepTimer's maker) and the path its steps took: precision and layout as
    configured, compiled when dynamo compiled the network during the measurement, CUDA graph when the step
    replayed one. The device is released after it, as after a run of a sweep: dynamo compiles each new
    network's code again, and stops at its recompile limit (8) unless reset, which made every row after the
    8th an eager number."""
    compiled_before = compiled_graphs()
    timer = timed()
    compiled = compiled_graphs() > compiled_before
    release_device_memory()
    ran = [
        precision_of(cfg),
        *(["channels_last"] if cfg.speed.channels_last else []),
        "compiled" if compiled else "eager",
        *(["CUDA graph"] if timer.graphed else []),
    ]
    return timer.step_s, ", ".join(ran)


def measure_paths(cfg, paths, train, test, warmup, steps, rounds) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per step of each path, and the path each took: the best of `rounds` rounds that take the
    paths in turn, so that a slow spell of a shared machine does not land on one path only."""
    device, batch_size, net, optim = bench_device(cfg), cfg.data.batch_size, network_args(cfg), optimizer_args(cfg)
    timers = {
        "harness": lambda: harness_timer(cfg, train, test, warmup, steps),
        "reference": lambda: loops.reference_timer(net, optim, train, batch_size, device, warmup, steps),
        "bare": lambda: loops.bare_timer(
            net, optim, build_speed(cfg), precision_of(cfg), batch_size, device, warmup, steps
        ),
    }
    step_s, ran = {}, {}
    for _ in range(rounds):
        for path in paths:
            seconds, ran[path] = measured(cfg, timers[path])
            step_s[path] = min(step_s.get(path, float("inf")), seconds)
    for path in paths:
        log.info(
            "%s-%d %-9s %8.2f ms/step %9.0f img/s  (%s)",
            cfg.model.arch,
            cfg.model.depth,
            path,
            1e3 * step_s[path],
            batch_size / step_s[path],
            ran[path],
        )
    return step_s, {path: ran[path] for path in paths if path != "reference"}  # the reference is its own loop


def network_row(cfg: DictConfig, step_s: dict[str, float], ran: dict[str, str]) -> dict:
    batch_size = cfg.data.batch_size
    row = {
        "arch": cfg.model.arch,
        "family": cfg.model.family,
        "depth": cfg.model.depth,
        "params": count_parameters(build_net(**network_args(cfg))),
        **{f"{path}_ms": round(1e3 * s, 3) for path, s in step_s.items()},
        **{f"{path}_images_per_s": round(batch_size / s, 1) for path, s in step_s.items()},
        **{f"{path}_ran": description for path, description in ran.items()},
    }
    if "harness" in step_s:
        row["paper_run_min"] = round(PAPER_STEPS * step_s["harness"] / 60, 2)  # training steps only
    if {"harness", "bare"} <= set(step_s):
        row["harness_over_bare_pct"] = round(100 * (step_s["harness"] / step_s["bare"] - 1), 1)
    if {"harness", "reference"} <= set(step_s):
        row["speedup_vs_reference"] = round(step_s["reference"] / step_s["harness"], 2)
    return row


def add_grid_column(rows: list[dict]) -> None:
    """grid_min: the paper runs (64k steps each, training only) of this network and those above it, one
    after another; the last row's is the whole grid's, one seed."""
    total = 0.0
    for row in rows:
        if "paper_run_min" in row:
            total += row["paper_run_min"]
            row["grid_min"] = round(total, 1)


# --- loaders, switches, sharing ---------------------------------------------------------------


def loader_images_per_s(train: Split, device: torch.device, batch_size: int) -> dict[str, float]:
    """The harness's loader over one full epoch (with the epoch's shuffle and augmentation draws), and the
    reference's."""
    loader = CifarLoader(train.to(device), mean_image(train), batch_size, train=True)
    next(iter(loader))  # first-use costs (allocations, kernels) out of the timing
    loader.load_state_dict({"epoch": 0, "next_batch": len(loader)})  # the next __iter__ starts a fresh epoch
    loops.synchronize(device)
    started = time.perf_counter()
    for _batch in loader:  # the loader's own work only
        pass
    loops.synchronize(device)
    harness = len(train) / (time.perf_counter() - started)
    reference = loops.reference_loader_images_per_s(train, batch_size, device)
    log.info("loaders: harness %.0f augmented img/s, reference %.0f img/s", harness, reference)
    return {"harness_images_per_s": round(harness, 1), "reference_images_per_s": round(reference, 1)}


def switch_rows(overrides, network, batch_size, names, train, test, warmup, steps, rounds) -> list[dict]:
    """Harness step time with each switch on its own, relative to the configured path: the best of
    `rounds` rounds, each timing the configured path and then every switch in turn."""
    total = warmup + steps
    base_cfg = bench_config(overrides, network, batch_size, total)
    runnable = [name for name in names if name not in speed.CUDA_ONLY or bench_device(base_cfg).type == "cuda"]
    configs = {"(as configured)": base_cfg} | {
        name: bench_config([*overrides, *SWITCHES[name]], network, batch_size, total) for name in runnable
    }
    best, ran = {}, {}
    for _ in range(rounds):
        for name, cfg in configs.items():
            step_s, ran[name] = measured(cfg, lambda cfg=cfg: harness_timer(cfg, train, test, warmup, steps))
            best[name] = min(best.get(name, float("inf")), step_s)
    base = best["(as configured)"]
    rows = [
        {"switch": name, "ms": round(1e3 * step_s, 3), "speedup": round(base / step_s, 3), "ran": ran[name]}
        for name, step_s in best.items()
    ]
    for name, step_s in best.items():
        log.info("switch %-18s %8.2f ms/step (x%.2f)", name, 1e3 * step_s, base / step_s)
    return rows + [{"switch": name, "skipped": speed.CUDA_ONLY[name]} for name in names if name not in runnable]


def shared_worker(overrides, network, batch_size, train_size, warmup, steps, threads, barrier) -> tuple[float, float]:
    """One of several harness runs sharing the device, in its own process: its timed window."""
    torch.set_num_threads(threads)
    quiet_lightning()
    cfg = bench_config(overrides, network, batch_size, warmup + steps)
    timer = harness_timer(cfg, synthetic_split(train_size), synthetic_split(TEST_SIZE, seed=1), warmup, steps, barrier)
    return timer.started, timer.ended


def shared_rows(device: torch.device, *args) -> list[dict]:
    """Runs sharing the device as processes take turns on it, and on a GPU also under the MPS daemon
    (started and stopped here, as a joblib sweep does), when nvidia-cuda-mps-control exists. A daemon
    that will not start is a row that says why: the timings before it are kept."""
    rows = [shared_row(*args, mps=False)]
    if device.type != "cuda" or shutil.which(gpu_sharing.CONTROL) is None:
        log.info("MPS not measured: %s", "no CUDA device" if device.type != "cuda" else f"no {gpu_sharing.CONTROL}")
        return rows
    daemon = gpu_sharing.MpsDaemon()
    try:
        daemon.start()
    except (OSError, subprocess.SubprocessError) as error:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            daemon.stop()
        reason = gpu_sharing.start_failure(error)
        log.warning("MPS not measured: the daemon did not start (%s)", reason)
        return rows + [{"processes": rows[0]["processes"], "mps": True, "error": f"MPS daemon did not start: {reason}"}]
    try:
        rows.append(shared_row(*args, mps=True))
    finally:
        daemon.stop()
    return rows


def shared_row(overrides, network, batch_size, train_size, warmup, steps, processes, single_s, mps: bool) -> dict:
    """Aggregate throughput of `processes` harness runs at once, over the span that covers all their timed windows."""
    threads = max(1, torch.get_num_threads() // processes)
    spawn = get_context("spawn")
    with spawn.Manager() as manager, ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        args = (overrides, network, batch_size, train_size, warmup, steps, threads, manager.Barrier(processes))
        windows = list(pool.map(shared_worker, *zip(*[args] * processes)))
    span = max(end for _, end in windows) - min(start for start, _ in windows)
    aggregate = processes * steps * batch_size / span
    single = batch_size / single_s
    log.info(
        "%d runs sharing the device%s: %.0f img/s together (one alone: %.0f)",
        processes,
        " under MPS" if mps else "",
        aggregate,
        single,
    )
    return {
        "processes": processes,
        "mps": mps,
        "threads_each": threads,
        "aggregate_images_per_s": round(aggregate, 1),
        "single_images_per_s": round(single, 1),
        "gain": round(aggregate / single, 2),
    }


# --- the report -------------------------------------------------------------------------------


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.=_]+", "-", text.lower()).strip("-")


def output_paths(
    out_root: Path, device_name: str, archs: str, overrides: list[str], cpu_bf16_units: str = "none"
) -> tuple[Path, Path]:
    """bench.json for the default networks and config; other choices get their own file, named by them. A folder
    per device; CPUs with bf16 units get their own (the same core count with and without them differs ~3x)."""
    named = ([archs] if archs != DEFAULT_ARCHS else []) + overrides
    stem = "_".join(["bench", *map(slug, named)]).replace("_", "-", 1)
    on_cpu_with_units = device_name.startswith("cpu") and cpu_bf16_units != "none"
    folder = out_root / slug(f"{device_name} {cpu_bf16_units}" if on_cpu_with_units else device_name)
    return folder / f"{stem}.json", folder / f"{stem}.md"


def markdown(report: dict) -> str:
    lines = [
        f"# Benchmark on {report['device']}",
        "",
        f"Command: `{report['command']}`  ",
        f"Settings: {json.dumps(report['settings'])}  ",
        f"Versions: {json.dumps(report['versions'])}  ",
        f"Git: {report['git']['commit']}{' (uncommitted changes)' if report['git']['dirty'] else ''}",
        "",
        "## Time per training step",
        "",
    ]
    lines += table(report["networks"])
    if report.get("loaders"):
        lines += ["", "## Data loaders alone (images/s)", ""] + table([report["loaders"]])
    if report.get("switches"):
        lines += ["", f"## Speed switches, one at a time ({report['switch_network']}, harness path)", ""]
        lines += table(report["switches"])
    if report.get("shared"):
        lines += ["", f"## Runs sharing the device ({report['switch_network']}, harness path)", ""]
        lines += table(report["shared"])
    return "\n".join(lines) + "\n"


def table(rows: list[dict]) -> list[str]:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(column, "")) for column in columns) + " |" for row in rows]
    return lines


def print_table(rows: list[dict]) -> None:
    print("\n".join(table(rows)))


# --- the command line -------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="python -m degradation.bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "overrides",
        nargs="*",
        help="config overrides for the harness and bare paths, e.g. trainer.precision=bf16-mixed",
    )
    parser.add_argument(
        "--archs",
        default=DEFAULT_ARCHS,
        help="model configs, e.g. plain,resnet or resnet18,resnet18:plain (the plain twin)",
    )
    parser.add_argument(
        "--depths",
        type=comma_list(int, "integer depths"),
        default=[20, 32, 44, 56, 110],
        help="depths of the paper's nets (default 20,32,44,56,110)",
    )
    parser.add_argument("--paths", default="harness,reference,bare")
    parser.add_argument("--switches", default="all", help="comma list of " + ", ".join(SWITCHES) + "; all or none")
    parser.add_argument("--share", type=int, default=2, help="harness runs sharing the device at once; 0 skips")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 30 on GPU, 3 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 200 on GPU, 10 on CPU)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds over the paths, best kept (default 1 on GPU, 2 on CPU)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-size", type=int, default=50_000, help="synthetic training images")
    parser.add_argument("--out", type=Path, default=Path("experiments/bench"))
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    require(
        set(args.paths.split(",")) <= {"harness", "reference", "bare"},
        f"--paths: harness, reference or bare, got {args.paths}",
    )
    names = [] if args.switches == "none" else list(SWITCHES) if args.switches == "all" else args.switches.split(",")
    require(set(names) <= set(SWITCHES), f"--switches: all, none or some of {', '.join(SWITCHES)}; got {args.switches}")
    args.switches = names
    require(min(args.warmup, args.steps, args.rounds) >= 1, "--warmup, --steps and --rounds must be >= 1")
    fixed = [o for o in args.overrides if o.split("=")[0].lstrip("+~") in ("model", "model.depth", "data.batch_size")]
    require(
        not fixed, f"{fixed[0] if fixed else ''}: choose networks with --archs/--depths and the batch with --batch-size"
    )
    require(args.batch_size >= 1 and args.train_size >= args.batch_size, "--train-size must hold at least one batch")


def run(args: argparse.Namespace) -> dict:
    paths, total = args.paths.split(","), args.warmup + args.steps
    train, test = synthetic_split(args.train_size), synthetic_split(TEST_SIZE, seed=1)
    timed = networks(args.archs.split(","), args.depths)
    configs = [bench_config(args.overrides, network, args.batch_size, total) for network in timed]
    rows = [
        network_row(cfg, *measure_paths(cfg, paths, train, test, args.warmup, args.steps, args.rounds))
        for cfg in configs
    ]
    add_grid_column(rows)
    # Switches and sharing on the first residual network (the first network if there is none).
    index = next((i for i, cfg in enumerate(configs) if cfg.model.residual), 0)
    network, first = timed[index], configs[index]
    device = bench_device(first)
    report = {
        "device": provenance.device_name(device),
        "command": " ".join(["python -m degradation.bench", *sys.argv[1:]]),
        "settings": {
            "warmup": args.warmup,
            "steps": args.steps,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "train_size": args.train_size,
            "overrides": args.overrides,
            "precision": first.trainer.precision,
            "speed": OmegaConf.to_container(first.speed),
            "torch_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "cpu_bf16_units": cpu_bf16_units(),
        },
        "versions": provenance.library_versions(),
        "git": provenance.git_commit(),
        "networks": rows,
        "loaders": loader_images_per_s(train, device, args.batch_size),
        "switch_network": f"{first.model.arch}-{first.model.depth}",
    }
    common = (args.overrides, network, args.batch_size)
    if args.switches:
        report["switches"] = switch_rows(*common, args.switches, train, test, args.warmup, args.steps, args.rounds)
    if args.share > 1:
        single_s, _ = measured(first, lambda: harness_timer(first, train, test, args.warmup, args.steps))
        report["shared"] = shared_rows(device, *common, args.train_size, args.warmup, args.steps, args.share, single_s)
    return report


def quiet_lightning() -> None:
    """No per-fit banners, nor warnings about the short timing runs, between the table's lines."""
    progress.quiet_lightning()
    warnings.filterwarnings("ignore", message=".*number of training batches.*")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_lightning()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    on_gpu = torch.cuda.is_available()
    args.warmup = (30 if on_gpu else 3) if args.warmup is None else args.warmup
    args.steps = (200 if on_gpu else 10) if args.steps is None else args.steps
    args.rounds = (1 if on_gpu else 2) if args.rounds is None else args.rounds
    try:
        check_args(args)
        report = run(args)
    except (UserError, HydraException, OmegaConfBaseException) as error:
        exit_with(error)
    json_path, md_path = output_paths(
        args.out, report["device"], args.archs, args.overrides, report["settings"]["cpu_bf16_units"]
    )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    print_table(report["networks"])
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
