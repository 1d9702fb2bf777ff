"""utils/publishers/base.py: repository names and the nonce trailer of commit messages."""

from __future__ import annotations

import pytest

from utils.publishers.base import commit_message, nonce_of, repo_name_for


@pytest.mark.parametrize("task, round_number", [
    ("sales-summary", 1), ("Ünïcode task / with spaces", 3), ("x" * 300, 2), ("...", 1)])
def test_repo_names_are_valid_stable_and_bounded(task, round_number):
    name = repo_name_for(task, round_number)
    assert name == repo_name_for(task, round_number)
    assert len(name) <= 100 and name.endswith(f"-round-{round_number}")
    assert all(c.isalnum() or c in "._-" for c in name) and not name.startswith(".")


def test_long_task_names_stay_distinct():
    assert repo_name_for("a" * 200 + "1", 1) != repo_name_for("a" * 200 + "2", 1)


def test_nonce_trailer_round_trips():
    assert nonce_of(commit_message("Round 1: x", "task", 1, "n-123")) == "n-123"
    assert nonce_of("no trailer here") is None
