"""The fidelity table of issue 24: final errors of the same sweep trained in fp32 and in bf16, net by net.

    python experiments/cpu-sweep-bf16/fidelity.py experiments/cpu-sweep/runs/cpu experiments/cpu-sweep-bf16/runs/cpu

Seed noise: the standard deviation of one run's final error between seeds, pooled over both precisions (each
precision's runs around their own mean). The bf16 - fp32 difference of the seeds' means is "within seed noise"
when it is at most 2 standard errors of that difference (2 x noise x sqrt(2 / seeds)). With 2 seeds per net the
noise estimate is itself rough, so the last lines also pool every net: the mean of the per-seed differences.
"""

import math
import sys
from statistics import mean, stdev

from degradation.runs.rundir import find_runs

ERRORS = {"final_train_err": "train", "final_test_err": "test"}


def final_errors(sweep: str) -> dict[tuple[str, int], dict[int, dict]]:
    """{(arch, depth): {seed: summary}} of the sweep's completed runs."""
    runs: dict[tuple[str, int], dict[int, dict]] = {}
    for run in find_runs(sweep):
        summary = run.read_summary()
        if summary.get("status") == "completed":
            runs.setdefault((summary["arch"], summary["depth"]), {})[summary["seed"]] = summary
    return runs


def seed_noise(*groups: list[float]) -> float:
    squares = sum((value - mean(group)) ** 2 for group in groups for value in group)
    return math.sqrt(squares / sum(len(group) - 1 for group in groups))


def table(fp32_sweep: str, bf16_sweep: str) -> str:
    fp32, bf16 = final_errors(fp32_sweep), final_errors(bf16_sweep)
    lines = ["| net | error % | fp32, per seed | bf16, per seed | fp32 mean | bf16 mean | bf16 − fp32 | seed noise (sd) | within 2 SE? |",
             "|---|---|---|---|---:|---:|---:|---:|---|"]
    paired = {error: [] for error in ERRORS}
    for key in sorted(set(fp32) & set(bf16), key=lambda k: (k[1], k[0])):
        seeds = sorted(set(fp32[key]) & set(bf16[key]))
        if len(seeds) < 2:
            continue
        for error, name in ERRORS.items():
            a, b = [fp32[key][s][error] for s in seeds], [bf16[key][s][error] for s in seeds]
            paired[error] += [y - x for x, y in zip(a, b)]
            noise, difference = seed_noise(a, b), mean(b) - mean(a)
            within = abs(difference) <= 2 * noise * math.sqrt(2 / len(seeds))
            lines.append(f"| {key[0]}-{key[1]} | {name} | {' / '.join(f'{v:.2f}' for v in a)} | "
                         f"{' / '.join(f'{v:.2f}' for v in b)} | {mean(a):.2f} | {mean(b):.2f} | {difference:+.2f} | "
                         f"{noise:.2f} | {'yes' if within else 'no'} |")
    lines.append("")
    for error, name in ERRORS.items():
        values = paired[error]
        lines.append(f"All nets, {name} error: bf16 − fp32 per seed {mean(values):+.2f} ± {stdev(values) / math.sqrt(len(values)):.2f} "
                     f"(mean ± SE of {len(values)} pairs; {sum(v > 0 for v in values)} of them positive)  ")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(*sys.argv[1:3]))
