"""`make mutants`: every promise in the mutation list has a test that fails when the promise is broken."""

import subprocess
import sys
from pathlib import Path

import pytest

import mutants


def test_every_mutation_names_one_place_in_the_product_and_a_test_that_exists():
    """Cheap, in the default suite: a mutation whose line moved, or whose test was renamed, shows here first."""
    root = Path(mutants.__file__).resolve().parents[1]
    for mutation in mutants.MUTATIONS:
        assert (root / mutation.file).read_text().count(mutation.original) == 1, mutation.promise
    tests = sorted({mutation.test for mutation in mutants.MUTATIONS})
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *tests],
                               cwd=root, capture_output=True, text=True)
    assert collected.returncode == 0 and f"{len(tests)} tests collected" in collected.stdout, collected.stdout[-2000:]


@pytest.mark.slow
def test_every_listed_mutation_is_caught():
    result = subprocess.run([sys.executable, str(Path(mutants.__file__))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
