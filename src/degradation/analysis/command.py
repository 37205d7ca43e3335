"""Why plain nets degrade: four analyses over a sweep's run directories (or over nets named without a run).

    python -m degradation.analyze gradients  --sweep runs/cpu   # figures of gradients.csv (recorded in training)
    python -m degradation.analyze shattering --sweep runs/cpu   # input-gradient correlations, at init and trained
    python -m degradation.analyze lesion     --sweep runs/cpu   # test error with blocks deleted
    python -m degradation.analyze landscape  --sweep runs/cpu   # the loss on a filter-normalized plane
    python -m degradation.analyze all        --sweep runs/cpu   # the four, one after the other
    python -m degradation.analyze shattering --nets plain-20,resnet-1202 --out figures/at-init   # at init, no run

Data go into each run directory (shattering.json, lesion.json, landscape.json; docs/run-directory.md), or for
--nets into <out>/<analysis>-init.json; figures (PNG and PDF) into the sweep's figures folder. Results already
computed with the same settings (and checkpoint) are reused; an interrupted landscape continues where it
stopped. Everything runs on --device (default: a GPU if there is one, else the CPU).
"""

import json
import sys
import time
from pathlib import Path

from degradation.analysis import gradients, landscape, lesion, shattering
from degradation.analysis.subjects import (
    Subject,
    cifar_images,
    data_root,
    init_net,
    of_name,
    of_run,
    trained_net,
    trained_step,
)
from degradation.runs.rundir import RunDir, write_atomically

ANALYSES = ("gradients", "shattering", "lesion", "landscape")
NEEDS_TRAINED = ("lesion", "landscape")
INIT_FILE = "{analysis}-init.json"  # what --nets computes (no run directory holds it), in the --out folder
TOY_FILE = "shattering-toy.json"  # the 1-D toy, next to them
GRADIENT_BATCH = 128  # the first training images (unaugmented): the batch whose loss gives the step-0 gradients
LANDSCAPE_IMAGES = 2000  # laptop-sized defaults (Li et al.: 51 x 51 points on all 50,000 training images)
LANDSCAPE_POINTS = 21
LESION_KS = (1, 2, 4, 6, 8, 12, 16, 20)


class Reporter:
    """Progress on stderr: a line per net, and within one at most a line every few seconds."""

    def __init__(self, total: int, every_s: float = 10.0):
        self.total, self.index, self.every_s = total, 0, every_s

    def start(self, what: str) -> None:
        self.index += 1
        self.what, self.started, self.last = what, time.monotonic(), time.monotonic()
        print(f"[{self.index}/{self.total}] {what}", file=sys.stderr, flush=True)

    def within(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s or done == total:
            self.last = now
            print(
                f"[{self.index}/{self.total}] {self.what}: {done}/{total} ({now - self.started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )


def settings_of(analysis: str, args) -> dict:
    """What a result depends on besides the weights: a recorded result with other settings is computed again."""
    return {
        "gradients": {"batch": GRADIENT_BATCH},
        "shattering": {"pairs": args.pairs, "points": shattering.POINTS, "max_lag": shattering.MAX_LAG},
        "lesion": {"images": args.images, "ks": args.ks, "draws": args.draws, "seed": args.seed},
        "landscape": {"points": args.points, "images": args.images or LANDSCAPE_IMAGES, "seed": args.seed},
    }[analysis]


# --- one analysis of one net ------------------------------------------------------------------------


def shattering_of(subject: Subject, args, device, trained: bool) -> dict:
    """r(k) in both BN modes at init and, for a run, of its trained weights."""
    test = cifar_images(subject, args.data_root, "test", 2 * args.pairs, device)
    pairs = shattering.image_pairs(test.images, test.labels, args.pairs)
    result = {"init": shattering.both_bn_modes(init_net(subject).to(device), pairs)}
    if trained:
        net, step = trained_net(subject)
        result.update(trained=shattering.both_bn_modes(net.to(device), pairs), step=step)
    return result


def gradients_of(subject: Subject, args, device) -> dict:
    batch = cifar_images(subject, args.data_root, "train", GRADIENT_BATCH, device)
    return {"init": gradients.at_init(init_net(subject).to(device), batch.images, batch.labels)}


def lesion_of(subject: Subject, args, device, reporter: Reporter) -> dict:
    net, step = trained_net(subject)
    size = args.images or subject.config.get("data", {}).get("test_size")  # default: the run's own test images
    images = cifar_images(subject, args.data_root, "test", size, device)
    return {
        **lesion.lesion_study(net.to(device), images, args.ks, args.draws, args.seed, reporter.within),
        "step": step,
    }


def landscape_of(subject: Subject, args, device, reporter: Reporter, settings: dict) -> dict:
    net, step = trained_net(subject)
    images = cifar_images(subject, args.data_root, "train", settings["images"], device)
    earlier = subject.run_dir.read_analysis("landscape") or {}
    same = earlier.get("settings") == settings and earlier.get("step") == step
    done = {key: earlier[key] for key in ("axis", "loss", "slice_axis", "slice")} if same else None

    def save(record: dict) -> None:
        subject.run_dir.write_analysis(
            "landscape", {"definition": landscape.DEFINITION, "settings": settings, "step": step, **record}
        )

    return {
        "step": step,
        **landscape.surface(net.to(device), images, args.points, args.seed, done, save, reporter.within),
    }


def compute(analysis: str, subject: Subject, args, device, reporter: Reporter, settings: dict) -> dict:
    trained = subject.run_dir is not None
    if analysis == "shattering":
        return shattering_of(subject, args, device, trained)
    if analysis == "gradients":
        return gradients_of(subject, args, device)
    if analysis == "lesion":
        return lesion_of(subject, args, device, reporter)
    return landscape_of(subject, args, device, reporter, settings)


DEFINITIONS = {
    "gradients": gradients.DEFINITION,
    "shattering": shattering.DEFINITION,
    "lesion": lesion.DEFINITION,
    "landscape": landscape.DEFINITION,
}


# --- over a sweep or a list of nets -----------------------------------------------------------------------


def is_current(record: dict | None, settings: dict, checkpoint_step: int | None) -> bool:
    """A recorded result to reuse: complete, with the same settings and, where it used trained weights, those of
    the run's checkpoint as it is now."""
    if not record or record.get("settings") != settings or not record.get("complete", True):
        return False
    return record.get("step", checkpoint_step) == checkpoint_step


def analyse_runs(analysis: str, runs: list[RunDir], args, device) -> None:
    """Computes (or reuses) each run's record of the analysis, into its run directory."""
    settings = settings_of(analysis, args)
    subjects = [of_run(run) for run in runs]
    current = [
        is_current(run.read_analysis(analysis), settings, trained_step(subject)) for run, subject in zip(runs, subjects)
    ]
    for subject, done in zip(subjects, current):
        if not done:
            data_root(subject, args.data_root)  # every run's data is there before hours go into the first
    reporter = Reporter(len(runs))
    for run, subject, done in zip(runs, subjects, current):
        reporter.start(f"{analysis} {subject.name}")
        if done:
            print(
                f"[{reporter.index}/{reporter.total}] {subject.name}: reusing {run.analysis_path(analysis)}",
                file=sys.stderr,
            )
            continue
        result = compute(analysis, subject, args, device, reporter, settings)
        run.write_analysis(analysis, {"definition": DEFINITIONS[analysis], "settings": settings, **result})


def analyse_nets(analysis: str, names: list[str], args, device, out: Path) -> dict:
    """At init, for nets named without a run: <out>/<analysis>-init.json, one entry per net (reused if present)."""
    path = out / INIT_FILE.format(analysis=analysis)
    settings = {**settings_of(analysis, args), "seed": args.seed}
    record = read_json(path) or {}
    if record.get("settings") != settings:
        record = {"definition": DEFINITIONS[analysis], "settings": settings, "nets": {}}
    subjects = [of_name(name, args.seed) for name in names]
    if any(name not in record["nets"] for name in names):
        data_root(subjects[0], args.data_root)
    reporter = Reporter(len(names))
    for name, subject in zip(names, subjects):
        reporter.start(f"{analysis} {name} at init")
        if name not in record["nets"]:
            record["nets"][name] = compute(analysis, subject, args, device, reporter, settings)
            write_json(path, record)
    return record


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, record: dict) -> None:
    write_atomically(path, json.dumps(record, indent=1) + "\n")


def toy_record(out: Path, seed: int) -> dict:
    """The 1-D toy of Balduzzi et al. at init (<out>/shattering-toy.json, reused for the same seed)."""
    path = out / TOY_FILE
    record = read_json(path)
    if not record or record.get("seed") != seed:
        record = {"definition": shattering.TOY_DEFINITION, "seed": seed, "nets": shattering.toy(seed)}
        write_json(path, record)
    return record["nets"]
