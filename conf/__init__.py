"""The Hydra config tree, shipped inside the package so that an installed `degradation-train` finds it.

Standard library and yaml only: results read model presets from here without loading torch.
"""

from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).resolve().parent


def model_preset(name: str) -> dict:
    """The values of conf/model/<name>.yaml with the files it extends (its defaults list) merged under it."""
    path = CONFIG_DIR / "model" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no model config {name} in {path.parent}")
    own = yaml.safe_load(path.read_text()) or {}
    merged = {}
    for base in own.pop("defaults", []):
        if isinstance(base, str) and (CONFIG_DIR / "model" / f"{base}.yaml").is_file():  # not _self_ or a schema
            merged.update(model_preset(base))
    return {**merged, **own}


def intervention_keys(name: str) -> dict:
    """The model keys of conf/intervention/<name>.yaml: a net of the interventions study, named as its run."""
    path = CONFIG_DIR / "intervention" / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no intervention {name} in {path.parent}")
    return yaml.safe_load(path.read_text()) or {}
