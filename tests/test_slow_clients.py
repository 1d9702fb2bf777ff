"""Slow clients cannot stop the real service (`python main.py` under gunicorn): issue 16, item 3; held bodies
share one budget per worker and only `POST /api-endpoint` may send a large one: issue 23, finding 4.

Twice `WEB_THREADS` connections send a request and then stall, half in their
headers, half in their body. `/health` and a build must still be answered: a
behaviour (an answer at all, within a generous timeout), not a speed; the
latency numbers are in bench/slow_clients.py. Also: a declared body over
MAX_REQUEST_BYTES is refused before it is read, and a body that stalls gets
408 rather than holding anything.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import MODEL_KEY, SECRET, task_request
from tests.sample_task import ROUND1_REPLY
from tests.service_process import ServiceProcess, free_port

THREADS = 4


@pytest.fixture
def served(tmp_path: Path, model) -> Iterator[ServiceProcess]:
    """`python main.py` with WEB_THREADS=4."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "SECRET": SECRET,
           "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": MODEL_KEY, "PORT": str(free_port()),
           "HOST": "127.0.0.1", "WEB_THREADS": str(THREADS), "MAX_CONCURRENT_BUILDS": "2",
           "MAX_REQUEST_BYTES": "1000000", "SELF_CHECK": "off"}
    service = ServiceProcess(tmp_path, env)
    try:
        yield service.wait_until_healthy()
    finally:
        service.stop()


def stalled_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each sent part of a request and then stopped."""
    opened = []
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = b"POST /api-endpoint HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        sock.sendall(head + (b"Content-Length: 5000\r\n\r\n{\"a\"" if index % 2 else b"X-Slow: a"))
        opened.append(sock)
    return opened


def test_stalled_clients_do_not_stop_health_or_builds(served: ServiceProcess, model):
    stalled = stalled_connections(served.port, 2 * THREADS)
    try:
        assert requests.get(f"{served.url}/health", timeout=20).json() == {"status": "healthy"}
        model.enqueue(ROUND1_REPLY)
        built = served.post(task_request(), timeout=60)
        assert built.status_code == 200 and built.json()["status"] == "success", built.text
    finally:
        for sock in stalled:
            sock.close()


def test_an_oversized_declared_body_is_refused_unread(served: ServiceProcess):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"POST /api-endpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than the limit of 1000000 bytes" in answer


def held_post(port: int, path: str, length: int) -> socket.socket:
    """A connection that declared a body of ``length`` bytes for ``path`` and sent none of it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
    return sock


def test_a_large_body_is_refused_anywhere_but_the_build_endpoint(served: ServiceProcess):
    with held_post(served.port, "/health", 500_000) as sock:  # under MAX_REQUEST_BYTES, but not a build
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"limit of 65536 bytes for requests other than POST /api-endpoint" in answer


def test_held_bodies_share_one_budget_per_worker(served: ServiceProcess):
    held = [held_post(served.port, "/api-endpoint", 1_000_000) for _ in range(4)]  # 4 x MAX_REQUEST_BYTES
    try:
        assert requests.get(f"{served.url}/health", timeout=20).json() == {"status": "healthy"}
        with held_post(served.port, "/api-endpoint", 1_000_000) as fifth:
            answer = fifth.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"retry-after: 5" in answer.lower() and b"too many request bodies" in answer
    finally:
        for sock in held:
            sock.close()
    for _attempt in range(50):  # the worker sees the closed connections on its next loop turns
        with held_post(served.port, "/api-endpoint", 1_000_000) as again:  # the budget is given back
            again.sendall(b"{" + b" " * 999_998 + b"}")
            answer = again.recv(4096)
        if b"too many request bodies" not in answer:
            break
        time.sleep(0.1)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]  # read whole and judged by the app (no secret)
