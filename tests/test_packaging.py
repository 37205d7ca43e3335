import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_and_pyproject_list_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    conda_pip = {line for line in pip_section if not line.startswith("-e")}
    assert conda_pip == set(project["dependencies"])
    assert not any("torch==" in dependency for dependency in project["dependencies"])  # torch is never pinned


@pytest.mark.slow
def test_an_installed_wheel_finds_its_configs(tmp_path):
    """`pip install .` (not editable): degradation-train runs from anywhere with the configs inside the package.

    The wheel goes into a fresh virtual environment; its dependencies come from this one through a .pth
    line, which adds them to sys.path without this environment's editable install of the checkout."""
    import site
    import subprocess
    import sys
    import sysconfig

    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    (target / "dependencies.pth").write_text("\n".join(site.getsitepackages() + [sysconfig.get_path("purelib")]) + "\n")
    [wheel] = wheels.glob("degradation-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    where = subprocess.run([python, "-c", "import degradation.conf as c; print(c.CONFIG_DIR)"], cwd=tmp_path,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(target) and (Path(where) / "train.yaml").is_file()
    (tmp_path / "bin").mkdir()
    script = tmp_path / "bin" / "degradation-train"  # what pip's console script does
    script.write_text(f"#!{python}\nfrom degradation.cli import main\nmain()\n")
    script.chmod(0o755)
    result = subprocess.run([str(script), "model=resnet50", "dry_run=true", "data.download=false"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"would train {tmp_path}/runs/default/imagenet-resnet-50/seed=0" in result.stdout + result.stderr
