"""Waiting for a GitHub Pages site: the legacy build of a commit, then the site itself answering.

Polls the latest Pages build (``GET .../pages/builds/latest``) until it is
``built`` for the commit, asking for one rebuild when it errored or never
started, then fetches the site with a cache-busting query until it answers
200. Moved out of ``github.py`` unchanged (issue 14), which also uses
``pause`` for workflow runs.

Never: send the token to the Pages host; sleep past the deadline.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from utils.deadline import Deadline
from utils.errors import GitHubCallFailed
from utils.publishers.github_api import Transport

log = logging.getLogger(__name__)


class PagesWatcher:
    """Polls Pages builds and sites for one transport, ``poll_interval`` apart."""

    def __init__(self, api: Transport, *, sleep: Callable[[float], None] = time.sleep,
                 poll_interval: float = 2.0, rebuild_after: float = 30.0):
        self._api = api
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._rebuild_after = rebuild_after

    def wait_for_build(self, full: str, sha: str, deadline: Deadline) -> bool:
        """Poll the latest build until it is ``built`` for ``sha``; one rebuild on error; False when out of time."""
        started, requested, rebuilt_from = time.monotonic(), False, None
        while True:
            build = self._latest_build(full)
            if build is not None and build.get("commit") == sha:
                if build.get("status") == "built":
                    return True
                if build.get("status") == "errored" and build.get("url") != rebuilt_from:
                    if rebuilt_from is not None:
                        error = (build.get("error") or {}).get("message")
                        log.warning("Pages build of %s failed twice: %s", full, error)
                        return False
                    if not self._request_build(full):
                        return False
                    rebuilt_from = build.get("url")
            elif not requested and time.monotonic() - started >= self._rebuild_after:
                self._request_build(full)
                requested = True
            if not self.pause(deadline):
                return False

    def _latest_build(self, full: str) -> dict[str, Any] | None:
        """The latest Pages build, or None when there is none yet or GitHub did not answer usefully."""
        try:
            build: dict[str, Any] | None = self._api.request("GET", f"/repos/{full}/pages/builds/latest",
                                                             what=f"read the Pages build of {full}", expect=()).data
            return build
        except GitHubCallFailed as err:
            if err.github_status == 401 or (err.github_status == 403 and not err.rate_limited):
                raise
            return None

    def _request_build(self, full: str) -> bool:
        """Ask for a Pages build; never repeated blindly (polling shows whether it started); False if refused."""
        try:
            self._api.request("POST", f"/repos/{full}/pages/builds", what=f"request a Pages build of {full}")
        except GitHubCallFailed as err:
            log.warning("could not request a Pages build: %s", err.message)
            return err.github_status is None or err.github_status >= 500  # polling shows if it started
        return True

    def wait_for_site(self, pages_url: str, sha: str, deadline: Deadline, paths: Sequence[str] = ("",)) -> bool:
        """GET the site (its root, else each of ``paths``: a workflow-deployed site may have no index.html) with a
        cache-busting query until one answers 200 (no token is sent there)."""
        for attempt in itertools.count(1):
            for path in paths or ("",):
                try:
                    answer = requests.get(pages_url + path, params={"v": f"{sha[:12]}-{attempt}"},
                                          headers={"Cache-Control": "no-cache"},
                                          timeout=max(0.5, min(10.0, deadline.remaining())))
                    if answer.status_code == 200:
                        return True
                except requests.RequestException as exc:
                    log.info("Pages site not reachable yet: %s", type(exc).__name__)
                    break
            if not self.pause(deadline):
                return False
        return False

    def pause(self, deadline: Deadline) -> bool:
        """Sleep one poll interval (never past the deadline); False once the deadline has passed."""
        wait = min(self._poll_interval, deadline.remaining())
        if wait <= 0:
            return False
        self._sleep(wait)
        return not deadline.expired()
