"""`make mutants`: every promise in the mutation list has a test that fails when the promise is broken; a mutation
follows its code (tests/anchors.py) through renames, moves and reformatting, and says STALE when it cannot."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mutants
from anchors import Mutation, mutate
from conftest import COLLECTED


def test_every_mutation_names_a_test_that_exists():
    """Cheap, in the default suite. Where a mutation applies is `make mutants`' business (STALE there), so that a
    refactor which keeps behaviour never fails this suite."""
    tests = {mutation.test for mutation in mutants.MUTATIONS}
    if {test.split("::")[0] for test in tests} <= {test.split("::")[0] for test in COLLECTED}:
        assert not tests - COLLECTED, sorted(tests - COLLECTED)  # this session collected their files: look there
        return
    root = Path(mutants.__file__).resolve().parents[1]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *sorted(tests)],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert collected.returncode == 0 and f"{len(tests)} tests collected" in collected.stdout, collected.stdout[-2000:]


GUARDED = textwrap.dedent('''
    def warmup_steps(cfg, on):
        """The steps of the linear warm-up."""
        steps = cfg.optim.warmup_steps
        return min(steps, cfg.max_steps) if on else 0


    def other(cfg, on):
        return min(steps, cfg.max_steps) if on else 1
''')
MUTATION = Mutation(
    "loses its warm-up",
    "src/pkg/config.py",
    "warmup_steps",
    "min(steps, cfg.max_steps) if on",
    "0 if on",
    "tests/test_x.py::test_y",
)


def tree_with(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_mutation_applies_inside_its_function_only(tmp_path):
    tree = tree_with(tmp_path, {"src/pkg/config.py": GUARDED})
    assert mutate(tree, MUTATION) == "applied"
    assert (tree / "src/pkg/config.py").read_text() == GUARDED.replace("min(steps, cfg.max_steps) if on", "0 if on", 1)


@pytest.mark.parametrize("refactor", ["rename a local outside the pattern", "reformat", "move to another file"])
def test_a_mutation_follows_a_refactor_that_keeps_behaviour(tmp_path, refactor):
    code, files = GUARDED, {}
    if refactor == "rename a local outside the pattern":
        code = (
            code.replace("(cfg, on):", "(config, on):")
            .replace("= cfg.optim", "= config.optim")
            .replace("steps, cfg.max_steps) if", "steps, config.max_steps) if", 1)
        )
        mutation = Mutation(*[*vars(MUTATION).values()][:3], "min(steps, config.max_steps) if on", "0 if on", "t")
    else:
        mutation = MUTATION
    if refactor == "reformat":  # a formatter wraps the call, with a trailing comma
        code = code.replace(
            "min(steps, cfg.max_steps) if on", "min(\n        steps,\n        cfg.max_steps,\n    ) if on", 1
        )
    if refactor == "move to another file":
        files["src/pkg/schedule.py"], code = code, "from pkg.schedule import warmup_steps\n"
    tree = tree_with(tmp_path, {"src/pkg/config.py": code, **files})
    assert mutate(tree, mutation) == "applied"
    mutated = "".join(path.read_text() for path in sorted((tree / "src").rglob("*.py")))
    assert "return 0 if on else 0" in mutated and "min(steps, cfg.max_steps) if on else 1" in mutated


def test_a_mutation_whose_code_is_gone_is_stale_and_one_that_breaks_the_syntax_is_broken(tmp_path):
    tree = tree_with(tmp_path, {"src/pkg/config.py": GUARDED.replace("def warmup_steps", "def warmup_length")})
    assert mutate(tree, MUTATION) == "STALE: no warmup_steps in src/pkg/config.py or elsewhere"
    tree = tree_with(
        tmp_path, {"src/pkg/config.py": GUARDED.replace("steps, cfg.max_steps) if on", "cfg.max_steps, steps) if on")}
    )
    assert mutate(tree, MUTATION).startswith("STALE: pattern not once in warmup_steps")
    tree = tree_with(tmp_path, {"src/pkg/config.py": GUARDED})
    broken = Mutation(*[*vars(MUTATION).values()][:4], "(0 if on", MUTATION.test)
    assert mutate(tree, broken).startswith("BROKEN: the mutant is no valid Python")
    assert (tree / "src/pkg/config.py").read_text() == GUARDED  # nothing written


def test_a_pattern_matches_whole_words_and_a_leading_newline_only_at_a_line_start(tmp_path):
    tree = tree_with(tmp_path, {"conf.py": "warmup_lr: float = 1\nlr: float = 2\n\nregister()\ndef register(): pass\n"})
    assert mutate(tree, Mutation("p", "conf.py", None, "lr: float = 2", "lr: float = -2", "t")) == "applied"
    assert mutate(tree, Mutation("p", "conf.py", None, "\nregister()", "", "t")) == "applied"
    assert (tree / "conf.py").read_text() == "warmup_lr: float = 1\nlr: float = -2\n\n\ndef register(): pass\n"


@pytest.mark.slow
def test_every_listed_mutation_is_caught():
    """`make mutants` itself: every mutation applies (none STALE or BROKEN) and its test catches it."""
    result = subprocess.run([sys.executable, str(Path(mutants.__file__))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:]
