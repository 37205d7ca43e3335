"""The study's wall time per run, from each run's train.log (committed beside its contract files).

    python experiments/interventions/wall_times.py experiments/interventions/runs/interventions

A run's log holds one attempt per `run directory` line (a run stopped at the end of a session resumes from its
last checkpoint in the next). Per run: the attempts, their wall time summed (from the first line of each to its
last progress line: a sweep run again later only logs that the run is complete), and an
undisturbed estimate: the same sum with every gap between two progress lines capped at twice the run's median
gap, which removes the stretches where the run was stopped (SIGSTOP) while the machine ran CI; it cannot remove a
slowdown from sharing the cores, which the README states where it happened.
"""

import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[([\w.]+)\]")
START = "run directory "


def attempts(log: Path) -> list[list[tuple[datetime, bool]]]:
    """Per attempt: (time, is a progress line) of every stamped line."""
    found: list[list[tuple[datetime, bool]]] = []
    for line in log.read_text().splitlines():
        match = STAMP.match(line)
        if not match:
            continue
        if START in line or not found:
            found.append([])
        found[-1].append((datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f"), match[2].endswith("progress")))
    return [attempt for attempt in found if any(progress for _, progress in attempt)]


def last_progress(attempt: list[tuple[datetime, bool]]) -> datetime:
    return max(time for time, progress in attempt if progress)


def minutes(log: Path) -> tuple[int, float, float]:
    """(attempts that trained, wall minutes, undisturbed minutes)."""
    tried = attempts(log)
    gaps = [
        (later - earlier).total_seconds()
        for attempt in tried
        for (earlier, _), (later, progress) in zip(attempt, attempt[1:])
        if progress and later <= last_progress(attempt)
    ]
    cap = 2 * statistics.median(gaps)
    wall = sum((last_progress(attempt) - attempt[0][0]).total_seconds() for attempt in tried)
    undisturbed = wall - sum(gap - cap for gap in gaps if gap > cap)
    return len(tried), wall / 60, undisturbed / 60


def main(sweep: str) -> None:
    print("| net | seed | attempts | wall min | undisturbed min |")
    print("|---|---:|---:|---:|---:|")
    total = [0.0, 0.0]
    for log in sorted(Path(sweep).glob("*/seed=*/train.log"), key=lambda p: (p.parent.name, p.parent.parent.name)):
        count, wall, undisturbed = minutes(log)
        total[0] += wall
        total[1] += undisturbed
        print(f"| {log.parent.parent.name} | {log.parent.name[5:]} | {count} | {wall:.1f} | {undisturbed:.1f} |")
    print(f"| all | | | {total[0]:.0f} | {total[1]:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1])
