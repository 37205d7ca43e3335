"""The package's layers (docs/architecture.md): imports only run downwards, and each subpackage says what it owns."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "degradation"
# Highest first. A module may import its own subpackage and anything in a lower layer, nothing beside or above it.
LAYERS = [
    {
        "__main__",
        "train",
        "figures",
        "responses",
        "analyze",
        "study",
    },  # the commands' short names (python -m degradation.figures ...)
    {"cli", "bench"},  # the command lines: training (and sweeps), the benchmark
    {"sweeps"},
    {"training"},
    {"analysis"},  # an analysis's record names the figures that draw it
    {"report"},
    {"runs", "nets", "data"},
    {"schema", "conf"},  # the config's types and rules, the config tree
    {"errors"},
]
LAYER_OF = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def unit(dotted: str) -> str:
    """The top-level module or subpackage of degradation that a dotted name belongs to."""
    return dotted.split(".")[1]


def imports_of(path: Path) -> set[str]:
    """Every degradation module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("degradation"):
            names = [node.module] if node.module != "degradation" else [f"degradation.{a.name}" for a in node.names]
            found.update(name for name in names if name.count(".") >= 1)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("degradation."))
    return found


def test_every_module_belongs_to_a_layer():
    units = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units <= set(LAYER_OF), f"no layer for {sorted(units - set(LAYER_OF))}: add it to LAYERS and the docs"


def test_imports_only_run_downwards():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if importer == "__init__":
            continue
        for imported in sorted(imports_of(path)):
            target = unit(imported)
            if target != importer and LAYER_OF[target] <= LAYER_OF[importer]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert upward == []


def test_each_subpackage_says_in_one_line_what_it_owns():
    for init in PACKAGE.glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert docstring and "\n" not in docstring and "TODO" not in docstring, init
