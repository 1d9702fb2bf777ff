"""The real service as a subprocess (`python main.py`, gunicorn) for the benchmarks, and its sample builds.

Starts the Docker image's entry point with only the variables a user would set,
pointed at the local fakes (scripted model, evaluation receiver); it binds to
127.0.0.1 only and everything it writes goes to a temporary directory removed on
stop. Also reads the resident memory of the gunicorn workers from /proc (Linux).
Never reaches the internet and never decides pass or fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import MODEL_KEY, SECRET
from tests.sample_task import request_body

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 60


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample_build(index: int, round_number: int, notify_url: str | None) -> dict:
    """The sample task's round ``round_number`` as task ``bench-task-<index>`` with its own nonce."""
    body = request_body(round_number, notify_url, nonce=f"bench-{index}-r{round_number}")
    body["task"] = f"bench-task-{index}"
    return body


class ServedProcess:
    """`python main.py` running under gunicorn in its own temporary working directory."""

    def __init__(self, model_url: str, **extra: str):
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-service-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir),
               "SECRET": SECRET, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_BASE_URL": model_url,
               "LLM_MODEL": "scripted-model", "PORT": str(self.port), "HOST": "127.0.0.1",
               "DATA_DIR": str(self.workdir / "data"), "SELF_CHECK": "off", **extra}
        self.workers = int(env.get("WEB_CONCURRENCY", "1"))
        self.log_path = self.workdir / "service.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen([sys.executable, str(ROOT / "main.py")], cwd=self.workdir, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def wait_until_healthy(self) -> ServedProcess:
        """Poll /health until it answers and every worker has booted; raise with the log otherwise."""
        until = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited early:\n{self.log()}")
            try:
                healthy = requests.get(f"{self.url}/health", timeout=1).status_code == 200
            except requests.ConnectionError:
                healthy = False
            if healthy and len(self.worker_pids()) >= self.workers:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"the service did not answer /health within {STARTUP_SECONDS} s:\n{self.log()}")

    def post(self, body: dict, headers: Mapping[str, str] | None = None, timeout: float = 120) -> requests.Response:
        """POST a build to /api-endpoint on a new connection."""
        return requests.post(f"{self.url}/api-endpoint", json=body, timeout=timeout,
                             headers={"Connection": "close", **(headers or {})})

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the live children of the master process."""
        return children(self.process.pid)

    def log(self) -> str:
        """Everything the service printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then wait (kill only if it hangs); remove the working directory."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        finally:
            self._log.close()
            shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def served(model_url: str, **extra: str) -> Iterator[ServedProcess]:
    """The service running with the scripted model at ``model_url`` and ``extra`` variables; stopped after."""
    service = ServedProcess(model_url, **extra)
    try:
        yield service.wait_until_healthy()
    finally:
        service.stop()


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc/<pid>/stat of every process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
