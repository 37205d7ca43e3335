"""Where a result came from, as the run records it."""

import subprocess

import pytest

from degradation.runs import provenance


@pytest.fixture
def fresh_git_record():
    provenance.git_commit.cache_clear()
    yield
    provenance.git_commit.cache_clear()  # later tests read the real repository again


def test_the_commit_recorded_is_the_one_the_process_started_with(fresh_git_record, monkeypatch):
    """Hydra's basic launcher trains every run of a sweep in one process, on the code it imported at the start: a
    commit made while the sweep trains must not be recorded by its later runs (each git call here sees a new HEAD)."""
    calls = []

    def git(args, **_):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, stdout=f"commit-{len(calls)}" if "rev-parse" in args else "")

    monkeypatch.setattr(provenance.subprocess, "run", git)
    first_run, later_run = provenance.git_commit(), provenance.git_commit()
    assert first_run == later_run == {"commit": "commit-1", "dirty": False}
