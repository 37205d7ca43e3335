"""Sweeps through the real entry point: layout, idempotence, resume after SIGKILL, W&B, launchers.

Divergence isolation and the other reliability promises: tests/reliability/."""

import json
import signal
import subprocess
import time

from conftest import run_train, statuses, subprocess_env, tiny, train_command
from degradation.runs.rundir import RunDir
from wandb_files import records, run_record


def test_a_2x2_multirun_writes_four_runs_and_running_it_again_trains_nothing(tmp_path, fake_cifar_root):
    args = ["-m", *tiny(fake_cifar_root, "model=plain,resnet", "seed=0,1", "name=grid")]
    first = run_train(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    sweep = tmp_path / "runs/grid"
    assert statuses(sweep) == {f"{arch}-8/seed={seed}": "completed" for arch in ("plain", "resnet") for seed in (0, 1)}
    table = first.stdout[first.stdout.index("sweep runs/grid") :].splitlines()
    assert len(table) == 2 + 4 and all("completed" in line for line in table[2:])
    before = {path: path.read_text() for path in sweep.glob("*/seed=*/*.csv")}

    again = run_train(*args, cwd=tmp_path)
    assert again.returncode == 0 and (again.stdout + again.stderr).count("already completed") == 4
    assert {path: path.read_text() for path in sweep.glob("*/seed=*/*.csv")} == before


def test_a_run_killed_mid_way_resumes_to_the_same_metrics_and_wandb_run(tmp_path, fake_cifar_root):
    args = tiny(
        fake_cifar_root,
        "trainer.max_steps=60",
        "trainer.eval_every=10",
        "trainer.log_every=10",
        "logger=wandb",
        "logger.wandb.mode=offline",
    )
    assert run_train(*args, "name=straight", cwd=tmp_path).returncode == 0
    run = RunDir(tmp_path / "runs/killed/resnet-8/seed=0")
    process = subprocess.Popen(
        train_command(*args, "name=killed"),
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while (
        (len(run.read_metrics()) < 4 or not run.last_checkpoint.is_file())
        and time.time() < deadline
        and process.poll() is None
    ):  # the rows of step 10 come before its checkpoint
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_summary = run.read_summary()
    assert killed_summary["status"] == "running" and run.last_checkpoint.is_file()  # killed mid-way

    resumed = run_train(*args, "name=killed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = RunDir(tmp_path / "runs/straight/resnet-8/seed=0")
    assert run.metrics_path.read_text() == straight.metrics_path.read_text()  # every step once, same values
    summary = run.read_summary()
    assert summary["status"] == "completed" and summary["final_test_err"] == straight.read_summary()["final_test_err"]
    assert summary["wandb"]["id"] == killed_summary["wandb"]["id"]  # the same W&B run continues


def test_wandb_offline_writes_one_run_per_job_with_group_name_and_config(tmp_path, fake_cifar_root):
    secret = "test-key-that-must-not-be-written-anywhere-1234"
    result = run_train(
        "-m",
        *tiny(fake_cifar_root, "model=plain,resnet", "name=wb", "logger=wandb", "logger.wandb.mode=offline"),
        cwd=tmp_path,
        WANDB_API_KEY=secret,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for arch in ("plain", "resnet"):
        run_dir = tmp_path / f"runs/wb/{arch}-8/seed=0"
        wandb_files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
        assert len(wandb_files) == 1
        record = run_record(wandb_files[0])
        config = {item.key: json.loads(item.value_json) for item in record.config.update}
        assert (record.run_group, record.display_name) == ("wb", f"{arch}-8-s0")
        assert config["model"]["depth"] == 8 and config["model"]["arch"] == arch
        summary = RunDir(run_dir).read_summary()
        assert summary["wandb"]["id"] == record.run_id
        # W&B's config is the Hydra config, once (Lightning's hyperparameters would overwrite optim and speed with the
        # module's own shapes), and the environment against uv.lock, as summary.json has them
        updates = [config] + [
            {item.key: json.loads(item.value_json) for item in r.config.update}
            for r in records(wandb_files[0])
            if r.WhichOneof("record_type") == "config"
        ]
        given = {key: value for update in updates for key, value in update.items() if not key.startswith("_")}
        assert given == {**summary["config"], "environment": summary["environment"]}
        assert {arch, "depth-8"} <= set(record.tags)  # tags: arch and depth
        # every metrics.csv row is a history row keyed by the iteration
        history_steps = {
            json.loads(item.value_json)
            for r in records(wandb_files[0])
            if r.WhichOneof("record_type") == "history"
            for item in r.history.item
            if [*item.nested_key, item.key][0] == "trainer/global_step"
        }
        assert sorted(history_steps) == [row["step"] for row in RunDir(run_dir).read_metrics()]
        step_axes = {
            (r.metric.glob_name, r.metric.step_metric)
            for r in records(wandb_files[0])
            if r.WhichOneof("record_type") == "metric"
        }
        assert (
            "*",
            "trainer/global_step",
        ) in step_axes  # W&B plots every metric against the iteration (Lightning's WandbLogger defines it)
        assert not any(secret.encode() in path.read_bytes() for path in run_dir.rglob("*") if path.is_file())


def test_joblib_runs_jobs_in_parallel_processes(tmp_path, fake_cifar_root):
    result = run_train(
        "-m", *tiny(fake_cifar_root, "model=plain,resnet", "name=par", "launcher=joblib", "jobs=2"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stderr + result.stdout
    assert statuses(tmp_path / "runs/par") == {"plain-8/seed=0": "completed", "resnet-8/seed=0": "completed"}


def test_submitit_local_executor_runs_the_sweep(tmp_path, fake_cifar_root):
    result = run_train(
        "-m", *tiny(fake_cifar_root, "model=plain,resnet", "name=sub", "launcher=submitit_local"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert statuses(tmp_path / "runs/sub") == {"plain-8/seed=0": "completed", "resnet-8/seed=0": "completed"}
