"""`python -m degradation.bench` end to end on CPU at a tiny size."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import main_refuses, subprocess_env
from degradation.bench import measure as degradation_bench

TINY_BENCH = [
    "--depths",
    "8",
    "--steps",
    "2",
    "--warmup",
    "1",
    "--rounds",
    "1",
    "--batch-size",
    "16",
    "--train-size",
    "256",
]


def bench(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "degradation.bench.measure", *TINY_BENCH, "--out", str(tmp_path), *args],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # ~25 s (a compiled path among them): CI runs it after `make test` (.ci/run)
def test_the_bench_times_every_path_and_writes_its_report(tmp_path):
    # On the CPU explicitly (where CUDA-only switches are skipped); tests/gpu/ runs the bench on CUDA.
    result = bench(
        tmp_path,
        "--switches",
        "channels_last,cuda_graphs",
        "--share",
        "2",
        "speed.fused_sgd=true",
        "trainer.accelerator=cpu",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [report_path] = tmp_path.glob("cpu-*/bench-speed.fused_sgd=true_trainer.accelerator=cpu.json")
    report = json.loads(report_path.read_text())
    assert report["settings"]["speed"]["fused_sgd"] is True and report["versions"]["torch"]
    assert [(row["arch"], row["depth"]) for row in report["networks"]] == [("plain", 8), ("resnet", 8)]
    for row in report["networks"]:
        for path in ("harness", "reference", "bare"):
            assert row[f"{path}_ms"] > 0 and row[f"{path}_images_per_s"] > 0
        # from the unrounded times: the rounded ms give it to within one unit of its last digit
        assert row["speedup_vs_reference"] == pytest.approx(row["reference_ms"] / row["harness_ms"], abs=0.011)
    assert report["loaders"]["harness_images_per_s"] > 0 and report["loaders"]["reference_images_per_s"] > 0
    switches = {row["switch"]: row for row in report["switches"]}
    assert switches["channels_last"]["ms"] > 0 and "CUDA" in switches["cuda_graphs"]["skipped"]
    [shared] = report["shared"]  # on a CPU: no MPS row
    assert shared["processes"] == 2 and shared["mps"] is False and shared["aggregate_images_per_s"] > 0
    plain, resnet = report["networks"]
    assert resnet["grid_min"] == pytest.approx(plain["paper_run_min"] + resnet["paper_run_min"], abs=0.1)
    assert resnet["paper_run_min"] == pytest.approx(64_000 * resnet["harness_ms"] / 60e3, rel=1e-2)
    markdown = report_path.with_suffix(".md").read_text()
    assert "| resnet | cifar | 8 | 75290 |" in markdown and "## Speed switches" in markdown
    assert "| arch | family | depth |" in result.stdout  # the table is printed too


@pytest.mark.parametrize(
    "args, words",
    [
        (["--switches", "warp_drive"], "error: --switches: all, none or some of"),
        (["--depths", "7"], "model.depth must be 6n+2"),
        (["model.depth=20"], "choose networks with --archs/--depths"),
        (["--archs", "vgg"], "available: imagenet, plain, resnet"),
        (["--depths", "abc"], "error: argument --depths: expected integer depths separated by commas, got 'abc'"),
        (["--steps", "x"], "error: argument --steps: invalid int value: 'x'"),
        (["--turbo"], "error: unrecognized arguments: --turbo"),
    ],
)
def test_bad_bench_input_ends_with_one_line(tmp_path, capsys, args, words):
    line = main_refuses(degradation_bench.main, [*TINY_BENCH, "--out", str(tmp_path), *args], capsys)
    assert words in line, line
    assert not list(tmp_path.glob("*/bench*"))


def test_every_network_is_measured_on_the_path_it_asks_for_however_many_came_before(tmp_path):
    """Dynamo compiles each new network's code again and stops at its recompile limit (8) unless it is reset:
    every row after the 8th network timed the eager path under speed.compile. Each measurement now releases the
    device as a run of a sweep does, and each row says which path its steps took. With the limit at 1 here, the
    second network (and the bare loop after the harness) would already run eagerly."""
    import logging

    import torch._dynamo.config

    root_handlers = logging.root.handlers[
        :
    ]  # main() configures logging for the terminal; the tests after log elsewhere
    try:
        with torch._dynamo.config.patch(recompile_limit=1):
            degradation_bench.main(
                [
                    *TINY_BENCH,
                    "--archs",
                    "resnet",
                    "--depths",
                    "8,8",
                    "--paths",
                    "harness,bare",
                    "--switches",
                    "none",
                    "--share",
                    "0",
                    "--out",
                    str(tmp_path),
                    "speed.compile=true",
                    "trainer.accelerator=cpu",
                ]
            )
    finally:
        logging.root.handlers[:] = root_handlers
    [report_path] = tmp_path.glob("cpu-*/bench-*.json")
    rows = json.loads(report_path.read_text())["networks"]
    assert [(row["harness_ran"], row["bare_ran"]) for row in rows] == [("32-true, compiled", "32-true, compiled")] * 2


def test_an_mps_daemon_that_will_not_start_is_a_row_and_the_timings_before_it_are_kept(tmp_path, monkeypatch):
    """On a GPU the bench shares it with and without MPS; a daemon that cannot start (not allowed on this node,
    GPUs it cannot name) must not throw away the bench's minutes of timings."""
    import os

    from degradation.sweeps import gpu_sharing

    control = tmp_path / gpu_sharing.CONTROL
    control.write_text("#!/bin/sh\necho 'permission denied' >&2\nexit 1\n")
    control.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(degradation_bench, "shared_row", lambda *args, mps: {"processes": 4, "mps": mps, "gain": 1.0})
    rows = degradation_bench.shared_rows(torch.device("cuda"), *[None] * 8)
    assert rows[0] == {"processes": 4, "mps": False, "gain": 1.0}
    assert (
        rows[1]["mps"] is True
        and "MPS daemon did not start" in rows[1]["error"]
        and "permission denied" in rows[1]["error"]
    )


def test_cpus_with_and_without_bf16_units_keep_their_benchmarks_apart():
    from degradation.bench.measure import DEFAULT_ARCHS, output_paths

    def folder(device: str, units: str) -> str:
        return output_paths(Path("out"), device, DEFAULT_ARCHS, [], units)[0].parent.name

    assert folder("cpu (x86_64, 2 threads)", "none") == "cpu-x86_64-2-threads"  # the folder already on record
    assert folder("cpu (x86_64, 2 threads)", "AVX-512 BF16") == "cpu-x86_64-2-threads-avx-512-bf16"
    assert folder("NVIDIA H200", "AMX") == "nvidia-h200"  # a GPU's speed is not its host's
