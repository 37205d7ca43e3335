"""The environment against uv.lock (runs/environment.py, tools/environment.sh): the lock is in step with
pyproject.toml, environment.yml with the lock, and every run records `locked` or what differs."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import TINY_RUN, run_train
from degradation.runs import environment
from degradation.runs.rundir import LOG_FILE, RunDir

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
needs_uv = pytest.mark.skipif(UV is None, reason="uv is not installed (`make install` installs it)")


def locked(name: str) -> str:
    return next(package["version"] for package in LOCK["package"] if package["name"] == name)


@needs_uv
def test_the_lock_is_in_step_with_pyproject():
    """CI's check too: a dependency added to pyproject.toml without `make lock` fails here."""
    check = subprocess.run([UV, "lock", "--check", "--offline"], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, f"uv.lock is out of step with pyproject.toml: run `make lock` ({check.stderr[-500:]})"


def test_pyproject_keeps_lower_bounds_only():
    """Versions are pinned in the lock, never capped in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    assert all(re.fullmatch(r"[\w-]+>=[\w.]+", requirement) for requirement in requirements), requirements


def test_environment_yml_installs_the_locks_uv_on_the_locks_pythons():
    """conda users: python + the lock's uv, then `make install` installs the lock into the conda environment."""
    conda = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pip = next(item["pip"] for item in conda if isinstance(item, dict))
    assert pip == [f"uv=={locked('uv')}"]
    upper = {re.search(r"python_full_version < '([\d.]+)'", marker).group(1) for marker in LOCK["supported-markers"]}
    assert f"python{LOCK['requires-python']},<{upper.pop()}" in conda and not upper


@needs_uv
def test_the_packages_the_lock_installs_here_are_those_uv_installs():
    """The run record's reading of the lock (markers followed from the project with its dev extra) against uv's own."""
    exported = subprocess.run(
        [
            UV,
            "export",
            "--frozen",
            "--extra",
            "dev",
            "--no-emit-project",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            "--format",
            "requirements.txt",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from packaging.requirements import Requirement

    by_uv = {}
    for line in exported.splitlines():
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            by_uv[requirement.name] = str(requirement.specifier).removeprefix("==")
    assert environment.locked_versions(LOCK) == by_uv


def test_packages_of_another_platform_are_not_expected_here():
    macos = {
        **environment.default_environment(),
        "sys_platform": "darwin",
        "platform_machine": "arm64",
        "platform_system": "Darwin",
    }
    on_mac, on_linux = environment.locked_versions(LOCK, macos), environment.locked_versions(LOCK)
    assert "torch" in on_mac and not any(name.startswith("nvidia-") or name == "triton" for name in on_mac)
    if sys.platform == "linux":
        assert "triton" in on_linux and any(name.startswith("nvidia-") for name in on_linux)


def test_a_differing_package_is_named_with_both_versions(monkeypatch):
    installed = environment.installed_versions()
    monkeypatch.setattr(environment, "installed_versions", lambda: {**installed, "torch": "9.9.9"})
    record = environment.environment_record()
    assert record["lock"] == __import__("hashlib").sha256((ROOT / "uv.lock").read_bytes()).hexdigest()[:16]
    assert f"torch 9.9.9 (lock {locked('torch')})" in record["state"].split(", ")


def fake_dist_info(folder: Path, name: str, version: str) -> Path:
    """Package metadata (no code) that shadows the installed one: what an environment off the lock looks like."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


def test_a_run_records_locked_or_what_differs_and_says_so_once(tmp_path, fake_cifar_root, straight_run):
    """In the environment `make install` made, summary.json says `locked` (W&B's config the same); with one package
    off the lock the run trains as before, names the package and both versions, and says so once in its log."""
    args = [*TINY_RUN, f"data.root={fake_cifar_root}"]
    truth = environment.environment_record()  # this environment as it is (locked after `make install`)
    assert straight_run.read_summary()["environment"] == truth
    if truth["state"] == environment.LOCKED:
        assert "not uv.lock's tested set" not in (straight_run.path / LOG_FILE).read_text()

    shadow = fake_dist_info(tmp_path / "shadow", "Pygments", "0.0.1")
    python_path = os.pathsep.join(filter(None, [str(shadow), os.environ.get("PYTHONPATH")]))
    off_lock = run_train(*args, "name=off", cwd=tmp_path, PYTHONPATH=python_path)
    assert off_lock.returncode == 0, off_lock.stderr[-3000:]
    run = RunDir(tmp_path / "runs/off/resnet-8/seed=0")
    state = run.read_summary()["environment"]["state"]
    assert f"pygments 0.0.1 (lock {locked('pygments')})" in state.split(", ")
    assert (off_lock.stdout + off_lock.stderr).count("not uv.lock's tested set") == 1
    assert run.metrics_path.read_text() == straight_run.metrics_path.read_text()


def install(env_dir: Path, tree: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(tree / "tools/environment.sh"), "install", str(env_dir), "active"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_uv
def test_make_install_with_a_lock_out_of_step_is_one_line_saying_make_lock(tmp_path):
    """In a copy of the project whose pyproject.toml gained a dependency; this environment is the active one (its
    uv does the check), and nothing is installed."""
    for name in ("pyproject.toml", "uv.lock", "tools/environment.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pyyaml>=6",', '"pyyaml>=6", "rich>=10",'))
    result = install(Path(sys.prefix), tmp_path)
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert result.stderr.strip() == (
        "error: uv.lock is out of step with pyproject.toml: run `make lock` (and commit uv.lock)"
    )


def an_older_python() -> str | None:
    """A Python the lock does not cover (3.8-3.10), if this machine has one that runs."""
    candidates = [shutil.which(f"python3.{minor}") for minor in (10, 9, 8)]
    candidates += sorted(map(str, Path.home().glob(".pyenv/versions/3.1[0]*/bin/python3")))
    for candidate in filter(None, candidates):
        version = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] < (3, 11))"], capture_output=True, text=True
        )
        if version.returncode == 0 and version.stdout.strip() == "True":
            return candidate
    return None


def test_make_install_on_a_python_the_lock_does_not_cover_is_one_line_naming_the_locked_ones(tmp_path):
    old = an_older_python()
    if old is None:
        pytest.skip("no Python older than 3.11 here to stand for a platform the lock does not cover")
    subprocess.run([old, "-m", "venv", "--without-pip", str(tmp_path / "old")], check=True)
    found = subprocess.run(
        [old, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
    ).stdout.strip()
    result = install(tmp_path / "old")
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert result.stderr.strip() == (
        "error: uv.lock covers linux x86_64, linux aarch64, darwin arm64 with Python >=3.11 and <3.14, not "
        f"{sys.platform} {__import__('platform').machine()} Python {found}: `make install-unlocked` installs the "
        "newest releases instead (not the tested set)"
    )
