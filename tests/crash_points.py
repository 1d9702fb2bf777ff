"""Where a round-1 GitHub build can die, for the crash tests: the request that is answered by killing the service.

Each point names the GitHub call (method, path pattern) and how many model calls the whole story makes: a kill
before the commit is on GitHub costs a second generation, one after it reuses the commit found by its nonce.
"""

from __future__ import annotations

import pytest

GITHUB_CRASH_POINTS = [
    pytest.param("POST", r"/git/trees$", 2, id="after-generation"),
    pytest.param("POST", r"/git/commits$", 2, id="commit-written-ref-not-moved"),
    pytest.param("PATCH", r"/git/refs/", 1, id="ref-moved-answer-lost"),
    pytest.param("GET", r"/pages/builds/latest$", 1, id="after-commit-waiting-for-pages"),
    pytest.param("GET", r"^/pages/", 1, id="right-before-notifying"),
]
