import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_and_pyproject_list_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda_pip = {line for line in pip_section if not line.startswith("-e")}
    assert conda_pip == set(project["dependencies"])
    assert not any("torch==" in dependency for dependency in project["dependencies"])  # torch is never pinned
