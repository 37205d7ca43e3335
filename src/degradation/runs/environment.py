"""The environment a run trained in, against uv.lock (the tested set): `locked`, or what differs.

Read from the installed packages' metadata and the lock file, without a subprocess: every package the lock
installs on this platform and Python (the project with its dev extra, its dependencies followed through their
markers) is compared with what is installed.
"""

import hashlib
import tomllib
from importlib.metadata import distributions
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.utils import canonicalize_name

LOCK_FILE = Path(__file__).resolve().parents[3] / "uv.lock"  # beside pyproject.toml in a checkout
PROJECT, EXTRAS = "degradation", ("dev",)
LOCKED = "locked"


def environment_record(lock_file: Path = LOCK_FILE) -> dict:
    """{"lock": sha256 of uv.lock (first 16 hex), "state": "locked" or "torch 2.15.0 (lock 2.14.1), …"}; without a
    lock file (the package installed from a wheel) {"lock": None, "state": "no uv.lock"}."""
    if not lock_file.is_file():
        return {"lock": None, "state": f"no uv.lock (looked in {lock_file.parent})"}
    text = lock_file.read_bytes()
    differences = differing(locked_versions(tomllib.loads(text.decode())), installed_versions())
    return {"lock": hashlib.sha256(text).hexdigest()[:16], "state": ", ".join(differences) or LOCKED}


def differing(locked: dict[str, str], installed: dict[str, str]) -> list[str]:
    """One entry per package whose installed version is not the lock's: `torch 2.15.0 (lock 2.14.1)`."""
    return [
        f"{name} {installed.get(name, 'not installed')} (lock {version})"
        for name, version in sorted(locked.items())
        if installed.get(name) != version
    ]


def installed_versions() -> dict[str, str]:
    """What import finds: where a package is installed twice, the first on sys.path."""
    versions = {}
    for dist in distributions():
        if dist.metadata["Name"]:
            versions.setdefault(canonicalize_name(dist.metadata["Name"]), dist.version)
    return versions


def locked_versions(lock: dict, environment: dict | None = None) -> dict[str, str]:
    """The version the lock installs of every package this platform gets: the dependency graph from the project (with
    its extras), each edge taken where its marker holds here. The project itself is left out."""
    environment = environment or default_environment()
    packages = {}
    for package in lock["package"]:
        packages.setdefault(canonicalize_name(package["name"]), []).append(package)
    versions, todo = {}, [(PROJECT, None, EXTRAS)]
    seen = set()
    while todo:
        name, version, extras = todo.pop()
        package = pick(packages[canonicalize_name(name)], version)
        key = (canonicalize_name(name), package.get("version"), tuple(sorted(extras)))
        if key in seen:
            continue
        seen.add(key)
        if canonicalize_name(name) != PROJECT:
            versions[canonicalize_name(name)] = package["version"]
        edges = list(package.get("dependencies", []))
        for extra in extras:
            edges += package.get("optional-dependencies", {}).get(extra, [])
        for edge in edges:
            if holds(edge.get("marker"), environment):
                todo.append((edge["name"], edge.get("version"), tuple(edge.get("extra", ()))))
    return versions


def pick(candidates: list[dict], version: str | None) -> dict:
    """The lock's entry of a package: the one version there is, or the one an edge names (a split resolution)."""
    if version is None:
        return candidates[0]
    return next(package for package in candidates if package.get("version") == version)


def holds(marker: str | None, environment: dict) -> bool:
    return marker is None or Marker(marker).evaluate(environment)
