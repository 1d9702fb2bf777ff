"""`python main.py` (gunicorn) as a subprocess in its own process group, so a test can crash all of it at once.

``kill()`` is a crash: SIGKILL to the master and every worker, no cleanup, as an
OOM kill or a container restart would do. Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """The service's real entry point running in ``cwd`` with exactly ``env``."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.port = int(env["PORT"])
        self.workers = int(env.get("WEB_CONCURRENCY", "1"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "service.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "main.py")], cwd=cwd, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_healthy(self) -> ServiceProcess:
        """Poll /health until it answers and every worker has booted; fail with the log otherwise."""
        until = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < until:
            assert self.process.poll() is None, f"the service exited early:\n{self.log()}"
            try:
                healthy = requests.get(f"{self.url}/health", timeout=1).status_code == 200
            except requests.ConnectionError:
                healthy = False
            if healthy and self.log().count("Booting worker") >= self.workers:
                return self
            time.sleep(0.05)
        pytest.fail(f"the service did not answer /health within {STARTUP_SECONDS} s:\n{self.log()}")

    def post(self, body: dict, timeout: float = 60) -> requests.Response:
        """POST ``body`` as JSON to /api-endpoint."""
        return requests.post(f"{self.url}/api-endpoint", json=body, timeout=timeout)

    def kill(self) -> None:
        """Crash: SIGKILL the whole process group (master and workers) and reap the master."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM the master (a graceful stop), then wait; SIGKILL everything if it hangs. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode
        finally:
            self._log.close()

    def log(self) -> str:
        """Everything the service printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def start_in_new_folder(tmp_path: Path, started: list[ServiceProcess], env: dict[str, str]) -> ServiceProcess:
    """Start `python main.py` with ``env`` from a fresh working folder, record it in ``started``, wait for /health."""
    cwd = tmp_path / f"run-{len(started)}"
    cwd.mkdir()
    service = ServiceProcess(cwd, env)
    started.append(service)
    return service.wait_until_healthy()


@contextmanager
def one_service(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[..., ServiceProcess]]:
    """``start(**extra)`` runs `python main.py` with ``env`` on one port and DATA_DIR (a restart is the same
    service); every process started is stopped on exit."""
    started: list[ServiceProcess] = []
    port = str(free_port())

    def start(**extra: str) -> ServiceProcess:
        return start_in_new_folder(tmp_path, started, {"PORT": port, "DATA_DIR": str(tmp_path / "data"),
                                                       **env, **extra})

    try:
        yield start
    finally:
        for service in started:
            service.stop()
