"""What deleting blocks costs each net of the study's lesion records: test error points above the intact net's.

    python experiments/interventions/lesion_cost.py experiments/interventions/runs/interventions

Reads every run's lesion.json (python -m degradation.analyze lesion; docs/analyses.md) and prints, per net and
seed, the intact test error, the median cost of deleting one block (over every deletable block), and the mean
cost of deleting k blocks at random (over the record's draws). Cost = error with the deletion - intact error.
"""

import json
import statistics
import sys
from pathlib import Path


def costs(record: dict) -> tuple[float, float, dict[int, float]]:
    """(intact error, median one-block cost, {k: mean cost of k random deletions})."""
    intact = record["intact"]
    single = [error - intact for error in record["single"] if error is not None]
    by_k = {int(k): statistics.mean(errors) - intact for k, errors in record["random"].items()}
    return intact, statistics.median(single), by_k


def main(sweep: str) -> None:
    rows = []
    for path in sorted(Path(sweep).glob("*/seed=*/lesion.json")):
        intact, single, by_k = costs(json.loads(path.read_text()))
        rows.append((path.parent.parent.name, path.parent.name[5:], intact, single, by_k))
    ks = sorted({k for *_, by_k in rows for k in by_k})
    print("| net | seed | intact test err % | one block: median cost | " + " | ".join(f"k={k}" for k in ks) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(ks))
    for net, seed, intact, single, by_k in rows:
        cells = " | ".join(f"{by_k[k]:+.1f}" if k in by_k else "–" for k in ks)
        print(f"| {net} | {seed} | {intact:.2f} | {single:+.2f} | {cells} |")


if __name__ == "__main__":
    main(sys.argv[1])
