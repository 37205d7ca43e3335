from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from synthetic_sweep import write_sweep

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks/explore_runs.ipynb"


def run_notebook(cwd: Path, monkeypatch) -> list:
    """Executes the notebook with Jupyter's working directory at cwd; its outputs, none an error."""
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"], [o for o in outputs if o.output_type == "error"]
    return outputs


def test_the_notebook_runs_on_a_sweep_and_shows_figures_and_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("DEGRADATION_SWEEP", str(write_sweep(tmp_path / "grid")))
    outputs = run_notebook(tmp_path, monkeypatch)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # Figure 6 twice, Figure 1; no run has Figure 7's data, and the notebook says how to get it
    assert "python -m degradation.responses" in "".join(o.get("text", "") for o in outputs)
    text = "".join(o.get("text", "") for o in outputs) + "".join(
        o.get("data", {}).get("text/markdown", "") for o in outputs
    )
    assert "grid: 8 finished runs; missing: none" in text and "Degradation gap" in text


@pytest.mark.parametrize("start", [".", "notebooks"])
def test_the_notebook_finds_the_checkouts_runs_from_the_root_and_from_notebooks(tmp_path, monkeypatch, start):
    """Jupyter starts a notebook where it lives (notebooks/); the runs are in the checkout's root."""
    monkeypatch.delenv("DEGRADATION_SWEEP", raising=False)
    write_sweep(tmp_path / "runs/quick", depths=(20,), seeds=(0,))
    (tmp_path / "notebooks").mkdir()
    outputs = run_notebook(tmp_path / start, monkeypatch)
    assert "quick: 2 finished runs" in "".join(o.get("text", "") for o in outputs)
