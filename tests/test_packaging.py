import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_of_the_source_tree_ships():
    """pyproject lists the packages (degradation.conf lives in the top-level conf/): none may be left out."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    source = {".".join(init.parent.relative_to(ROOT / "src").parts) for init in (ROOT / "src").rglob("__init__.py")}
    assert listed == source | {"degradation.conf"} and (ROOT / "conf" / "train.yaml").is_file()


def install_into_fresh_venv(tmp_path: Path, install: str) -> Path:
    """This checkout as a wheel or an editable install in a new virtual environment, whose dependencies come from
    this one through a .pth line (sys.path, without this environment's own editable install). Its python."""
    import site
    import subprocess
    import sys
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (target / "dependencies.pth").write_text("\n".join(site.getsitepackages() + [sysconfig.get_path("purelib")]) + "\n")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q"]
    if install == "wheel":
        wheels = tmp_path / "wheels"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(wheels),
                str(ROOT),
            ],
            check=True,
            capture_output=True,
        )
        [wheel] = wheels.glob("degradation-*.whl")
        subprocess.run([*pip, "--target", str(target), str(wheel)], check=True, capture_output=True)
    else:  # pip of this environment, told to install for the new one's python
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), *pip[3:], "-e", str(ROOT)],
            check=True,
            capture_output=True,
        )
    return python


@pytest.mark.slow
@pytest.mark.parametrize("install", ["wheel", "editable"])
def test_an_installed_package_finds_its_configs_from_any_folder(tmp_path, install):
    """`pip install .` carries conf/ inside the package; `pip install -e .` maps the package's conf to the
    checkout's conf/. Either way `degradation-train` runs from an unrelated folder with the configs found."""
    import subprocess

    python = install_into_fresh_venv(tmp_path, install)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [python, "-c", "import degradation.conf as c; print(c.CONFIG_DIR)"],
        cwd=elsewhere,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    expected = ROOT / "conf" if install == "editable" else python.parents[1]
    assert Path(where).is_relative_to(expected) and (Path(where) / "train.yaml").is_file(), where
    script = tmp_path / "degradation-train"  # what pip's console script does
    script.write_text(f"#!{python}\nfrom degradation.cli import main\nmain()\n")
    script.chmod(0o755)
    result = subprocess.run(
        [str(script), "model=resnet50", "dry_run=true", "data.download=false"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"would train {elsewhere}/runs/default/imagenet-resnet-50/seed=0" in result.stdout + result.stderr
