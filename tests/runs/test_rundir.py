import subprocess
import sys

from degradation.runs.rundir import METRIC_COLUMNS, RunDir
from degradation.training.callbacks import MetricsCsvLogger


def test_rows_are_on_disk_at_once_and_metrics_of_one_step_share_a_row(tmp_path):
    run = RunDir(tmp_path)
    logger = MetricsCsvLogger(run.metrics_writer())  # what Lightning calls
    logger.log_metrics({"train_err": 50.0, "lr": 0.1, "epoch": 0}, step=100)
    assert [row["step"] for row in run.read_metrics()] == [100]
    logger.log_metrics({"test_err": 40.0, "epoch": 0}, step=100)
    logger.log_metrics({"train_err": 30.0, "lr": 0.1, "epoch": 1}, step=200)
    rows = run.read_metrics()
    assert run.metrics_path.read_text().splitlines()[0] == ",".join(METRIC_COLUMNS)
    assert [(r["step"], r["train_err"], r["test_err"]) for r in rows] == [(100, 50.0, 40.0), (200, 30.0, None)]


def test_a_new_logger_appends_and_rows_after_a_checkpoint_can_be_dropped(tmp_path):
    run = RunDir(tmp_path)
    for step in (100, 200, 300):
        run.metrics_writer().write(step, {"train_err": float(step)})
    run.drop_metrics_after(200)
    assert [row["step"] for row in run.read_metrics()] == [100, 200]


def test_discarding_a_refused_run_leaves_results_alone(tmp_path):
    refused = RunDir(tmp_path / "runs/default/plain-20/seed=0")
    refused.path.mkdir(parents=True)
    (refused.path / "train.log").write_text("")
    refused.discard_if_empty(runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    kept = RunDir(tmp_path / "runs/default/plain-20/seed=1")
    kept.path.mkdir(parents=True)
    kept.write_summary({"status": "completed"})
    kept.discard_if_empty(runs_root=tmp_path / "runs")
    assert kept.read_summary() == {"status": "completed"}


def test_reading_runs_and_drawing_figures_loads_no_torch():
    """Figures, tables and notebooks read run directories with the standard library, numpy and matplotlib only."""
    code = (
        "import sys, degradation.report.figures, degradation.runs.results, degradation.runs.rundir; "
        "print(sorted(m for m in ('torch', 'pytorch_lightning', 'torchvision', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
