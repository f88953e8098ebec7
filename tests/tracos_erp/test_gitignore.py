"""What running the sync and its quick start leave in a clone is ignored by git, so it never
ends up in a commit."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import ROOT

LEFT_BEHIND = (
    "integration-state.db.lock",  # the worker's state lock, next to its state database
    "other-state.db.lock",  # a second sync's, under a name of its own
    "secantus-data/WiredTiger",  # SecantusDB started from the repository root, as is
    "data/secantus/WiredTiger",  # SecantusDB as the README's quick start starts it
    "data/inbound/1.json",  # the sync's default folders
    "data/outbound/1.json",
    "demo-20261122-120000/state.db",  # python run.py demo's folder
    "intempus-demo-20261122-120000/state.db",  # python run.py intempus demo's folder
    "intempus-state.db.intempus.pages",  # the Intempus sync's page journals
    "tracos-state.db",
)


@pytest.fixture(scope="module")
def git() -> str:
    found = shutil.which("git")
    if found is None:
        pytest.skip("git is not installed")
    inside = subprocess.run(
        [found, "-C", str(ROOT), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
    )
    if inside.returncode != 0:
        pytest.skip("not a git checkout")
    return found


@pytest.mark.parametrize("name", LEFT_BEHIND)
def test_what_a_run_leaves_behind_is_ignored_by_git(git: str, name: str) -> None:
    # --no-index: by the ignore rules alone, whether or not such a file exists or is tracked.
    result = subprocess.run(
        [git, "-C", str(ROOT), "check-ignore", "--no-index", "-q", name],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{name} is not ignored: {result.stderr}"
