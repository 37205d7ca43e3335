"""The house rules a newcomer relies on: the lint CI runs holds on src/ and tests/, and a fixture that parallel test
workers share is built once."""

import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import built_once

ROOT = Path(__file__).resolve().parents[1]


def test_src_and_tests_pass_the_lint_ci_runs_before_the_suite():
    """`make lint` (ruff's rules and format, pyproject.toml [tool.ruff]) runs in CI before `make test`."""
    ci = (ROOT / ".ci/run").read_text()
    assert "\nmake lint" in ci and ci.index("\nmake lint") < ci.index("\nmake test")
    for args in (["check", "src", "tests"], ["format", "--check", "src", "tests"]):
        result = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, f"ruff {' '.join(args)}: {result.stdout[-3000:]}{result.stderr[-1000:]}"


def test_a_fixture_shared_by_parallel_workers_is_built_once(tmp_path_factory, monkeypatch):
    """Four workers (threads here, processes under pytest-xdist) ask at once: one builds, the others reuse it."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    builds = []

    def build(folder: Path) -> None:
        builds.append(folder)
        time.sleep(0.2)  # long enough for the others to ask while it builds
        (folder / "built").write_text("yes")

    name = f"shared-{uuid.uuid4().hex}"  # the workers' shared folder outlives this session
    with ThreadPoolExecutor(4) as pool:
        folders = list(pool.map(lambda _: built_once(tmp_path_factory, name, build), range(4)))
    assert len(builds) == 1 and set(folders) == {builds[0]} and (builds[0] / "built").read_text() == "yes"
