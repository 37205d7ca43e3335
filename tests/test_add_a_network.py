"""docs/add-a-network.md, followed literally: its three blocks go into a scratch copy of the repository, and the
toy family they add trains (plain and residual, as a sweep), gets the lesion study, the analyses at init by name
(--nets) and the figures."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_RUN

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "docs/add-a-network.md"
BLOCK = re.compile(r"<!-- file: (\S+) \((new|append)\) -->\n```\w+\n(.*?)```", re.DOTALL)


def walkthrough_blocks() -> list[tuple[str, str, str]]:
    """(file, new or append, code) for each block the page tells a reader to write."""
    return BLOCK.findall(WALKTHROUGH.read_text())


def follow_the_walkthrough(tree: Path) -> None:
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "conf", tree / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "src/degradation/conf").symlink_to(Path("../../conf"), target_is_directory=True)  # as installed
    for file, how, code in walkthrough_blocks():
        target = tree / file
        assert (how == "new") != target.exists(), f"{file}: the page says {how}"
        target.write_text((target.read_text() + "\n\n" if how == "append" else "") + code)


def run(tree: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "WANDB_MODE": "disabled"}
    result = subprocess.run([sys.executable, "-m", *args], cwd=tree, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_walkthrough_touches_three_files_a_builder_a_registry_entry_and_a_config():
    assert [(file, how) for file, how, _ in walkthrough_blocks()] == [
        ("src/degradation/nets/toy.py", "new"),
        ("src/degradation/nets/registry.py", "append"),
        ("conf/model/toy.yaml", "new"),
    ]


@pytest.mark.slow
def test_a_family_added_by_following_the_docs_trains_and_gets_the_lesion_study_and_the_figures(
    tmp_path, fake_cifar_root
):
    tree = tmp_path / "repo"
    follow_the_walkthrough(tree)
    steps = [*TINY_RUN, f"data.root={fake_cifar_root}", "trainer.max_steps=6", "trainer.eval_every=6"]
    grid = ["--multirun", "model=toy", "model.residual=false,true", "model.depth=2,4", "name=toy"]
    run(tree, "degradation.train", *grid, *[step for step in steps if not step.startswith("model.depth")])
    sweep = tree / "runs/toy"
    summaries = {path.parent.parent.name: json.loads(path.read_text()) for path in sweep.glob("*/seed=0/summary.json")}
    assert sorted(summaries) == ["toy-plain-2", "toy-plain-4", "toy-resnet-2", "toy-resnet-4"]
    assert {summary["status"] for summary in summaries.values()} == {"completed"}
    assert summaries["toy-resnet-4"]["shortcut"] == "identity" and summaries["toy-plain-4"]["shortcut"] == "none"

    run(tree, "degradation.analyze", "lesion", "--sweep", str(sweep))
    lesion = json.loads((sweep / "toy-resnet-4/seed=0/lesion.json").read_text())
    assert len(lesion["single"]) == 4 and lesion["downsampling"] == [False] * 4, lesion

    at_init = tree / "figures/toy-at-init"
    nets = ["--nets", "toy-plain-4,toy-resnet-4", "--out", str(at_init), "--data-root", str(fake_cifar_root)]
    run(tree, "degradation.analyze", "gradients", *nets)
    assert sorted(json.loads((at_init / "gradients-init.json").read_text())["nets"]) == ["toy-plain-4", "toy-resnet-4"]

    run(tree, "degradation.figures", "--sweep", str(sweep))
    figures = tree / "figures/toy"
    assert (figures / "fig6.png").stat().st_size > 0 and (figures / "table6.md").exists()
    assert "| plain-2 (toy) |" in (figures / "table6.md").read_text()  # never taken for the paper's plain-2
