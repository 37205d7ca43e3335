"""Synthetic run directories with known curves, written by the real run-directory writers."""

from pathlib import Path

from degradation.runs.rundir import RunDir

STEPS = (1000, 2000, 3000, 4000)


def known_error(arch: str, depth: int, seed: int, step: int, train: bool) -> float:
    """Plain nets get worse with depth, ResNets better; test error is 2 points above training error."""
    base = 10.0 + (depth - 20) / 10 if arch == "plain" else 10.0 - (depth - 20) / 20
    return base - step / 1000 + seed + (0.0 if train else 2.0)


def known_summary(arch: str, depth: int, seed: int, status: str, last: int) -> dict:
    """What a run of these known curves ends with, as summary.json (and W&B's run summary) say it."""
    return {
        "arch": arch,
        "depth": depth,
        "seed": seed,
        "status": status,
        "params": 1000 * depth,
        "steps": last,
        "final_train_err": known_error(arch, depth, seed, last, True),
        "final_test_err": known_error(arch, depth, seed, last, False),
    }


def write_run(
    sweep_dir: Path,
    arch: str,
    depth: int,
    seed: int,
    status: str = "completed",
    steps=STEPS,
    test_size: int | None = None,
) -> RunDir:
    run = RunDir(sweep_dir / f"{arch}-{depth}/seed={seed}")
    run.path.mkdir(parents=True)
    writer = run.metrics_writer()
    for step in steps:
        writer.write(step, {"train_err": known_error(arch, depth, seed, step, True), "epoch": 0})
        writer.write(step, {"test_err": known_error(arch, depth, seed, step, False)})
    last = steps[-1]
    run.write_summary({**known_summary(arch, depth, seed, status, last), "config": {"data": {"test_size": test_size}}})
    return run


def write_sweep(sweep_dir: Path, archs=("plain", "resnet"), depths=(20, 56), seeds=(0, 1)) -> Path:
    for arch in archs:
        for depth in depths:
            for seed in seeds:
                write_run(sweep_dir, arch, depth, seed)
    return sweep_dir
