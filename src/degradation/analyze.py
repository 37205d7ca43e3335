"""`python -m degradation.analyze ANALYSIS` (`make analyze`): the command line of analysis/command.py, with the
figures of report/analysis_figures.py. See analysis/command.py for what each analysis does."""

import argparse
import os
from pathlib import Path

import matplotlib.pyplot as plt

from degradation.analysis import command
from degradation.analysis.command import ANALYSES, LANDSCAPE_POINTS, LESION_KS, NEEDS_TRAINED
from degradation.analysis.lesion import DRAWS
from degradation.analysis.subjects import of_name
from degradation.errors import OneLineParser, UserError, comma_list, exit_with
from degradation.report import analysis_figures as figures
from degradation.report.figures import claim_output, existing_folder, save
from degradation.runs.provenance import pick_device
from degradation.runs.results import latest_sweep
from degradation.runs.rundir import find_runs

NETS_SOURCE = "nets at init"  # what an output folder of --nets holds (a sweep's figures folder is refused)


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{value} < 1")
    return value


def positive(text: str) -> int:
    try:
        return at_least_one(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None


def net_names(text: str) -> list[str]:
    """--nets: the paper's nets by name, checked before anything runs."""
    try:
        return [of_name(name).name for name in text.split(",")]
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> OneLineParser:
    p = OneLineParser(prog="python -m degradation.analyze", description=command.__doc__.splitlines()[0])
    p.add_argument("analysis", choices=(*ANALYSES, "all"), help="which analysis (all: the four in turn)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sweep", type=existing_folder, help="a sweep folder (default: the latest under --runs)")
    where.add_argument(
        "--nets", type=net_names, help="nets at init without a run, e.g. plain-20,resnet-1202 (gradients, shattering)"
    )
    p.add_argument("--runs", default="runs", help="where sweeps live (default: runs)")
    p.add_argument("--seeds", type=comma_list(int, "seeds"), help="only the runs of these seeds (default: all)")
    p.add_argument("--out", help="figures folder (default: figures/<sweep name>; with --nets: figures/at-init)")
    p.add_argument("--data-root", help="CIFAR-10 root (default: each run's data.root; with --nets: data)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: a GPU if any")
    p.add_argument("--seed", type=int, default=0, help="landscape directions, lesion draws, --nets init (default 0)")
    p.add_argument("--pairs", type=positive, default=4, help="shattering: pairs of test images (default 4)")
    p.add_argument(
        "--points",
        type=positive,
        default=LANDSCAPE_POINTS,
        help=f"landscape: grid points per axis over [-1, 1] (default {LANDSCAPE_POINTS}; Li et al. 51)",
    )
    p.add_argument(
        "--images",
        type=positive,
        help="landscape: first N training images (default "
        f"{command.LANDSCAPE_IMAGES}; Li et al. all 50,000); lesion: first N test images (default: the run's)",
    )
    p.add_argument("--draws", type=positive, default=DRAWS, help=f"lesion: random draws per k (default {DRAWS})")
    p.add_argument(
        "--ks",
        type=comma_list(at_least_one, "numbers of blocks >= 1"),
        default=list(LESION_KS),
        help=f"lesion: numbers of random blocks to delete (default {','.join(map(str, LESION_KS))})",
    )
    return p


def figures_of_runs(analysis: str, runs, out: Path) -> list[Path]:
    entries = figures.entries_of_runs(runs, analysis)
    if analysis == "gradients":
        profiles, ratio = figures.training_gradients(runs)
        written = save(profiles, out, "gradients_by_layer") + save(ratio, out, "gradients_ratio") if profiles else []
        return written + (save(figures.init_gradients(entries), out, "gradients_at_init") if entries else [])
    if not entries:
        return []
    if analysis == "shattering":
        return save(figures.shattering_curves(entries), out, "shattering") + save(
            figures.neighbour_correlation(entries), out, "shattering_depth"
        )
    if analysis == "lesion":
        return save(figures.lesion_figure(entries), out, "lesion")
    contours, slices = figures.landscape_figures(entries)
    return save(contours, out, "landscape") + save(slices, out, "landscape_1d")


def figures_of_nets(analysis: str, record: dict, out: Path, toy: dict | None) -> list[Path]:
    entries = figures.entries_of_nets(record)
    if analysis == "gradients":
        return save(figures.init_gradients(entries), out, "gradients_at_init")
    return save(figures.shattering_curves(entries), out, "shattering_at_init") + save(
        figures.neighbour_correlation(entries, toy), out, "shattering_depth_at_init"
    )


def run(args, device) -> list[Path]:
    analyses = ANALYSES if args.analysis == "all" else (args.analysis,)
    if args.nets:
        out = Path(args.out or "figures/at-init")
        claim_output(out, NETS_SOURCE)
        refused = [a for a in analyses if a in NEEDS_TRAINED]
        if refused and args.analysis != "all":
            raise UserError(f"{refused[0]} needs trained nets: pass --sweep (--nets builds nets at init)")
        written = []
        for analysis in (a for a in analyses if a not in NEEDS_TRAINED):
            record = command.analyse_nets(analysis, args.nets, args, device, out)
            toy = command.toy_record(out, args.seed) if analysis == "shattering" else None
            written += figures_of_nets(analysis, record, out, toy)
        return written
    sweep = Path(args.sweep) if args.sweep else latest_sweep(args.runs)
    runs = [
        run for run in find_runs(sweep) if args.seeds is None or (run.read_summary() or {}).get("seed") in args.seeds
    ]
    if not runs:
        raise UserError(
            f"no runs in {sweep}{' with seeds ' + ','.join(map(str, args.seeds)) if args.seeds else ''} "
            "(a run directory has a summary.json)"
        )
    out = Path(args.out) if args.out else Path("figures") / sweep.name
    claim_output(out, os.path.relpath(sweep.resolve(), out.resolve()))
    written = []
    for analysis in analyses:
        command.analyse_runs(analysis, runs, args, device)
        written += figures_of_runs(analysis, runs, out)
    return written


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    plt.switch_backend("Agg")
    if not args.sweep and not args.nets and not Path(args.runs).is_dir():
        parser().error(f"argument --runs: no folder {args.runs}")
    try:
        device = pick_device(args.device)
        if args.device == "cuda" and device.type != "cuda":
            raise UserError("--device cuda: no CUDA device is visible")
        for path in run(args, device):
            print(path)
    except (UserError, FileNotFoundError, FileExistsError) as error:
        exit_with(error)


if __name__ == "__main__":
    main()
