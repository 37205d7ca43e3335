"""Why plain nets degrade: analyses over a sweep's run directories, or over nets at init.

The analyses are the records of analysis/registry.py (`--help` lists them).

    python -m degradation.analyze lesion     --sweep runs/cpu   # one analysis (--help lists them)
    python -m degradation.analyze all        --sweep runs/cpu   # every one, in turn
    python -m degradation.analyze shattering --nets plain-20,resnet-1202 --out figures/at-init   # at init, no run

Data go into each run directory (<analysis>.json; docs/run-directory.md), or for --nets into
<out>/<analysis>-init.json; figures (PNG and PDF) into the sweep's figures folder. Results already computed with the
same settings (and checkpoint) are reused; an interrupted landscape continues where it stopped. Everything runs on
--device (default: a GPU if there is one, else the CPU).
"""

import argparse
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt

from degradation.analysis.job import Job, Reporter
from degradation.analysis.registry import ANALYSES, Analysis, named, options_by_flag
from degradation.analysis.subjects import Subject, data_root, of_name, of_run, trained_step
from degradation.errors import OneLineParser, UserError, comma_list, exit_with
from degradation.report.analysis_figures import Drawing, entries_of_nets, entries_of_runs
from degradation.report.figures import claim_output, existing_folder, save
from degradation.runs.provenance import pick_device
from degradation.runs.results import latest_sweep
from degradation.runs.rundir import RunDir, find_runs, kind_in, name_in, write_atomically

ALL = "all"
NETS_SOURCE = "nets at init"  # what an output folder of --nets holds (a sweep's figures folder is refused)


def net_names(text: str) -> list[str]:
    """--nets: nets named as run directories name them (any family and variant), checked before anything runs."""
    try:
        return [of_name(name).name for name in text.split(",")]
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> OneLineParser:
    listed = "\n".join(f"  {a.name:<11} {a.about}" for a in ANALYSES.values())
    p = OneLineParser(
        prog="python -m degradation.analyze",
        description=__doc__.splitlines()[0],
        epilog=f"analyses:\n{listed}\n  {ALL:<11} each in turn",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("analysis", help=f"which analysis (below), or {ALL}")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sweep", type=existing_folder, help="a sweep folder (default: the latest under --runs)")
    at_init = ", ".join(a.name for a in ANALYSES.values() if not a.needs_trained)
    where.add_argument(
        "--nets",
        type=net_names,
        help=f"nets at init without a run, named as run directories (plain-20,resnet-110-preact,imagenet-resnet-50; "
        f"{at_init})",
    )
    p.add_argument("--runs", default="runs", help="where sweeps live (default: runs)")
    p.add_argument("--seeds", type=comma_list(int, "seeds"), help="only the runs of these seeds (default: all)")
    p.add_argument(
        "--only",
        type=net_names,
        help="only the sweep's runs of these nets, named as run directories (resnet-56,resnet-56-preact; default: all)",
    )
    p.add_argument("--out", help="figures folder (default: figures/<sweep name>; with --nets: figures/at-init)")
    p.add_argument("--data-root", help="CIFAR-10 root (default: each run's data.root; with --nets: data)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: a GPU if any")
    p.add_argument("--seed", type=int, default=0, help="random draws (directions, blocks) and --nets' init (default 0)")
    p.add_argument(
        "--redraw",
        action="store_true",
        help="only draw the figures from the records already written, with their recorded settings (nothing is "
        "computed: no checkpoint or data needed; the analyses' own options are ignored)",
    )
    for flag, (option, uses) in options_by_flag().items():
        p.add_argument(flag, type=option.type, default=option.default, help=uses)
    return p


def chosen(command_line: OneLineParser, name: str) -> list[Analysis]:
    """The analyses the command names (all: every one); another name is one error line listing them."""
    try:
        return list(ANALYSES.values()) if name == ALL else [named(name)]
    except UserError as error:
        command_line.error(f"{error} (or {ALL})")


# --- one analysis over a sweep's runs, or over nets at init -----------------------------------------------


def is_current(record: dict | None, analysis: Analysis, settings: dict, checkpoint_step: int | None = None) -> bool:
    """A recorded result to reuse: complete, of the same definition and settings and, where it used trained
    weights, those of the run's checkpoint as it is now."""
    if not record or not record.get("complete", True):
        return False
    if record.get("definition") != analysis.definition or record.get("settings") != settings:
        return False
    return record.get("step", checkpoint_step) == checkpoint_step


def as_record(analysis: Analysis, settings: dict, result: dict) -> dict:
    return {"definition": analysis.definition, "settings": settings, **result}


def analyse_runs(analysis: Analysis, runs: list[RunDir], options, device) -> None:
    """Computes (or reuses) each run's record of the analysis, into its run directory."""
    settings = analysis.settings(options)
    subjects = [of_run(run) for run in runs]
    current = [
        is_current(run.read_analysis(analysis.name), analysis, settings, trained_step(subject))
        for run, subject in zip(runs, subjects)
    ]
    for subject, done in zip(subjects, current):
        if not done:
            data_root(subject, options.data_root)  # every run's data is there before hours go into the first
    reporter = Reporter(len(runs))
    for run, subject, done in zip(runs, subjects, current):
        reporter.start(f"{analysis.name} {subject.name}")
        if done:
            reporter.say(f"{subject.name}: reusing {run.analysis_path(analysis.name)}")
            continue

        def save(result: dict, run: RunDir = run) -> None:
            run.write_analysis(analysis.name, as_record(analysis, settings, result))

        save(
            analysis.measure(subject, Job(options, device, settings, reporter, run.read_analysis(analysis.name), save))
        )


def analyse_nets(analysis: Analysis, subjects: list[Subject], options, device, out: Path) -> dict:
    """At init, for nets named without a run: <out>/<analysis>-init.json, one entry per net (reused if present)."""
    path = out / analysis.init_file
    settings = {**analysis.settings(options), "seed": options.seed}
    record = read_json(path)
    if not is_current(record, analysis, settings):
        record = as_record(analysis, settings, {"nets": {}})
    if any(subject.name not in record["nets"] for subject in subjects):
        data_root(subjects[0], options.data_root)
    reporter = Reporter(len(subjects))
    for subject in subjects:
        reporter.start(f"{analysis.name} {subject.name} at init")
        if subject.name not in record["nets"]:
            record["nets"][subject.name] = analysis.measure(subject, Job(options, device, settings, reporter))
            write_json(path, record)
    if analysis.at_init_extras:  # cheap, and computed again so that they follow their code
        record["extras"] = analysis.at_init_extras(settings)
        write_json(path, record)
    return record


def recorded_nets(analysis: Analysis, out: Path) -> dict:
    record = read_json(out / analysis.init_file)
    if record is None:
        raise UserError(f"--redraw: no {out / analysis.init_file} to draw (run the command without --redraw first)")
    return record


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, record: dict) -> None:
    write_atomically(path, json.dumps(record, indent=1) + "\n")


def drawn(analysis: Analysis, drawing: Drawing, out: Path) -> list[Path]:
    """The analysis's figures, saved as PNG and PDF; a figure its record does not name is a mistake in the record."""
    figures = drawing.say_kind(analysis.draw(drawing))
    unnamed = set(figures) - set(analysis.figures)
    if unnamed:
        raise ValueError(f"{analysis.name} drew {sorted(unnamed)}, which its record does not name")
    return [path for name, figure in figures.items() for path in save(figure, out, name)]


# --- the command ------------------------------------------------------------------------------------------


def over_nets(analyses: list[Analysis], options, device) -> list[Path]:
    out = Path(options.out or "figures/at-init")
    claim_output(out, NETS_SOURCE)
    if len(analyses) == 1 and analyses[0].needs_trained:
        raise UserError(f"{analyses[0].name} needs trained nets: pass --sweep (--nets builds nets at init)")
    at_init = [a for a in analyses if not a.needs_trained]
    if options.redraw and len(at_init) > 1:  # all: those that have a record
        at_init = [a for a in at_init if (out / a.init_file).is_file()] or at_init
    subjects = [of_name(name, options.seed) for name in options.nets]
    written = []
    for analysis in at_init:
        record = (
            recorded_nets(analysis, out) if options.redraw else analyse_nets(analysis, subjects, options, device, out)
        )
        entries = entries_of_nets(record, analysis.kinds_apart)
        written += drawn(analysis, Drawing(entries, extras=record.get("extras", {})), out)
    return written


def chosen_runs(sweep: Path, seeds: list[int] | None, nets: list[str] | None) -> dict[RunDir, dict]:
    """The sweep's runs with their summaries, only those of these seeds and nets where given."""
    runs = {}
    for run in find_runs(sweep):
        summary = run.read_summary() or {}
        if (seeds is None or summary.get("seed") in seeds) and (nets is None or name_in(summary) in nets):
            runs[run] = summary
    if not runs:
        only = " and ".join(
            f"{what} {','.join(map(str, wanted))}" for what, wanted in (("nets", nets), ("seeds", seeds)) if wanted
        )
        raise UserError(f"no runs in {sweep}{' of ' + only if only else ''} (a run directory has a summary.json)")
    return runs


def one_kind_unless_apart(analyses: list[Analysis], summaries: list[dict]) -> None:
    """Refused before hours go into computing: an analysis whose figures draw one kind of net at a time, over runs
    of several kinds (the interventions study's sweep)."""
    one_kind = [analysis.name for analysis in analyses if not analysis.kinds_apart]
    kinds = {kind_in(summary) for summary in summaries}
    if one_kind and len(kinds) > 1:
        held = ", ".join(kind or "the paper's" for kind in sorted(kinds))
        raise UserError(
            f"{', '.join(one_kind)}: the figures draw one kind of net at a time, and these runs hold {held}; pick one "
            "kind's runs with --only (e.g. --only plain-20,plain-56,resnet-20,resnet-56)"
        )


def over_sweep(analyses: list[Analysis], options, device) -> list[Path]:
    sweep = Path(options.sweep) if options.sweep else latest_sweep(options.runs)
    summary_of = chosen_runs(sweep, options.seeds, options.only)
    one_kind_unless_apart(analyses, list(summary_of.values()))
    runs = list(summary_of)
    out = Path(options.out) if options.out else Path("figures") / sweep.name
    claim_output(out, os.path.relpath(sweep.resolve(), out.resolve()))
    written = []
    for analysis in analyses:
        if not options.redraw:
            analyse_runs(analysis, runs, options, device)
        written += drawn(analysis, Drawing(entries_of_runs(runs, analysis.name, analysis.kinds_apart), runs), out)
    return written


def main(argv: list[str] | None = None) -> None:
    command_line = parser()
    options = command_line.parse_args(argv)
    analyses = chosen(command_line, options.analysis)
    if not options.sweep and not options.nets and not Path(options.runs).is_dir():
        command_line.error(f"argument --runs: no folder {options.runs}")
    plt.switch_backend("Agg")
    try:
        device = pick_device(options.device)
        if options.device == "cuda" and device.type != "cuda":
            raise UserError("--device cuda: no CUDA device is visible")
        for path in (over_nets if options.nets else over_sweep)(analyses, options, device):
            print(path)
    except (UserError, FileNotFoundError, FileExistsError) as error:
        exit_with(error)
