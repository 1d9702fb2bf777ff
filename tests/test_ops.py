"""Running it anywhere: gunicorn from `python main.py`, build slots, early answers, /metrics, packaging files.

The serving tests start the real entry point as a subprocess (the Docker image's
CMD) with only the variables a new user sets; the Docker engine itself does not
run here, so the Dockerfile is checked as text and its HEALTHCHECK command is
run against that subprocess. Everything talks to loopback fakes only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import main
from tests.conftest import MODEL_KEY, SECRET, task_request
from tests.fakes.faults import Delay
from tests.sample_task import ROUND1_REPLY, ROUND2_REPLY, request_body
from tests.service_process import ROOT, ServiceProcess, free_port
from utils import metrics
from utils.config import SETTINGS_BY_NAME
from utils.errors import BuildsSaturated
from utils.jobs.slots import create_slots
from utils.web.serving import gunicorn_options

# --- helpers -----------------------------------------------------------------------------------------------------


@pytest.fixture
def serve_main(tmp_path: Path, model) -> Iterator:
    """Start `python main.py` with the minimal environment plus extras; stopped after the test."""
    started: list[ServiceProcess] = []

    def start(**extra: str) -> ServiceProcess:
        env = {"SECRET": SECRET, "OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": MODEL_KEY,
               "PORT": str(free_port()), **extra}
        cwd = tmp_path / f"service-{len(started)}"
        cwd.mkdir()
        served = ServiceProcess(cwd, env)
        started.append(served)
        served.wait_until_healthy()
        return served

    yield start
    for served in started:
        served.stop()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def scrape(url: str) -> str:
    """GET /metrics."""
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def signed_in_dashboard(url: str) -> str:
    """The dashboard as a visitor who gave the secret sees it (builds are hidden from anonymous ones, issue 16)."""
    visitor = requests.Session()
    assert visitor.post(f"{url}/sign-in", json={"secret": SECRET}, timeout=5).status_code == 200
    return visitor.get(f"{url}/", timeout=5).text


def wait_until(predicate, seconds: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is truthy or ``seconds`` pass."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def post_in_thread(url: str, body: dict, results: list, headers: dict | None = None) -> threading.Thread:
    """POST ``body`` to /api-endpoint in a thread, appending the response to ``results``."""
    def send() -> None:
        results.append(requests.post(f"{url}/api-endpoint", json=body, headers=headers or {}, timeout=120))

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def dockerfile_healthcheck() -> list[str]:
    """The exec-form command of the Dockerfile's HEALTHCHECK."""
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])", text)
    assert match, "the Dockerfile has no exec-form HEALTHCHECK"
    return json.loads(match.group(1))


# --- the entry point under gunicorn ------------------------------------------------------------------------------


def test_python_main_serves_long_builds_and_health_stays_fast(serve_main, model, receiver):
    served = serve_main()
    model.enqueue(Delay(3.0, ROUND1_REPLY))
    results: list[requests.Response] = []
    build = post_in_thread(served.url, request_body(1, receiver.notify_url), results)
    assert wait_until(lambda: len(model.history) == 1), "the build never reached the model"

    for _ in range(5):  # the build holds one thread; the others answer at once
        assert requests.get(f"{served.url}/health", timeout=5).json() == {"status": "healthy"}
    assert build.is_alive(), "/health must have been answered while the build was still running"

    build.join(60)
    one = results[0].json()
    assert results[0].status_code == 200 and one["status"] == "success" and one["notified"] is True
    assert requests.get(one["pages_url"], timeout=10).status_code == 200

    model.enqueue(ROUND2_REPLY)
    second = requests.post(f"{served.url}/api-endpoint", json=request_body(2, receiver.notify_url), timeout=60)
    two = second.json()
    assert second.status_code == 200 and two["status"] == "success", second.text
    assert two["repo_url"] != one["repo_url"] and "product-sales" in requests.get(two["pages_url"], timeout=10).text
    assert [p["round"] for p in receiver.payloads] == [1, 2]

    exposition = scrape(served.url)
    assert metric_value(exposition, "llm_deploy_builds_total", outcome="success", stage="complete") == 2
    assert metric_value(exposition, "llm_deploy_stage_seconds_count", stage="generation") == 2
    assert metric_value(exposition, "llm_deploy_provider_tokens_total", provider="openai", kind="completion") > 0

    assert subprocess.run(dockerfile_healthcheck(), env={**os.environ, "PORT": str(served.port)},
                          timeout=30).returncode == 0, "the Dockerfile's HEALTHCHECK fails against the service"
    assert served.stop() == 0
    log = served.log()
    assert SECRET not in log and MODEL_KEY not in log
    assert "asgi" in log.lower() or "serving" in log


def test_sigterm_lets_a_running_build_finish(serve_main, model):
    served = serve_main()
    model.enqueue(Delay(2.0, ROUND1_REPLY))
    results: list[requests.Response] = []
    build = post_in_thread(served.url, task_request(nonce="graceful"), results)
    assert wait_until(lambda: len(model.history) == 1)

    served.process.send_signal(signal.SIGTERM)
    build.join(60)
    assert results and results[0].status_code == 200, served.log()
    assert results[0].json()["status"] == "success"
    assert served.process.wait(timeout=30) == 0


def test_metrics_add_up_across_gunicorn_workers(serve_main):
    served = serve_main(WEB_CONCURRENCY="2", WEB_THREADS="4")
    for index in range(6):
        response = requests.post(f"{served.url}/api-endpoint", json=task_request(nonce=f"w{index}", secret="wrong"),
                                 timeout=10, headers={"Connection": "close"})
        assert response.status_code == 403
    for _ in range(4):  # whichever worker answers, the sum is the same
        exposition = scrape(served.url)
        assert metric_value(exposition, "llm_deploy_builds_total", outcome="rejected", stage="validate") == 6
    assert list((served.log_path.parent / "data" / "prometheus").glob("*.db")), "workers share one metrics folder"


# --- gunicorn settings -------------------------------------------------------------------------------------------


def test_gunicorn_options_fit_long_builds(make_config):
    config = make_config(DEADLINE_SECONDS="600", WEB_CONCURRENCY="3", WEB_THREADS="12", PORT="8080", HOST="::")
    options = gunicorn_options(main.app, config)
    assert options["worker_class"] == "asgi"  # issue 16: the asyncio front keeps slow clients off the threads
    assert options["workers"] == 3 and "threads" not in options
    assert options["timeout"] > 600 and options["graceful_timeout"] >= 600
    assert options["bind"] == ["[::]:8080"]
    assert options["control_socket_disable"] is True


# --- build slots -------------------------------------------------------------------------------------------------


def test_extra_build_waits_then_gets_503_with_retry_after(start_service, model):
    service = start_service(MAX_CONCURRENT_BUILDS="1", BUILD_QUEUE_SECONDS="0.5")
    model.enqueue(Delay(3.0, ROUND1_REPLY))
    results: list[requests.Response] = []
    first = post_in_thread(service.url, task_request(nonce="slot-1"), results)
    assert wait_until(lambda: len(model.history) == 1)

    started = time.monotonic()
    second = service.post(task_request(nonce="slot-2"))
    waited = time.monotonic() - started
    assert second.status_code == 503 and second.headers["Retry-After"] == str(BuildsSaturated.retry_after)
    assert second.json()["error"]["stage"] == "queue" and "MAX_CONCURRENT_BUILDS" in second.json()["error"]["message"]
    assert waited >= 0.4, "an extra request waits for a slot before giving up"
    first.join(60)
    assert results[0].status_code == 200
    assert len(model.history) == 1


def test_extra_build_gets_a_slot_that_frees_up_in_time(start_service, model):
    service = start_service(MAX_CONCURRENT_BUILDS="1", BUILD_QUEUE_SECONDS="30")
    model.enqueue(Delay(1.0, ROUND1_REPLY), ROUND1_REPLY)
    results: list[requests.Response] = []
    first = post_in_thread(service.url, task_request(nonce="queued-1"), results)
    assert wait_until(lambda: len(model.history) == 1)
    second = service.post(task_request(nonce="queued-2"))
    first.join(60)
    assert second.status_code == 200 and results[0].status_code == 200


def test_full_queue_is_refused_at_once(make_config):
    slots = create_slots(make_config(MAX_CONCURRENT_BUILDS="1", WEB_THREADS="2", BUILD_QUEUE_SECONDS="30"))
    assert slots.max_waiting == 0, "the last thread is kept for /health"
    slots.acquire()
    with pytest.raises(BuildsSaturated):  # at once: max_waiting 0 leaves no place to wait
        slots.acquire()
    slots.release()
    slots.acquire()
    slots.release()


# --- early answers -----------------------------------------------------------------------------------------------


def test_early_mode_answers_at_once_and_builds_in_the_background(start_service, model, receiver):
    service = start_service(RESPONSE_MODE="early")
    model.enqueue(Delay(1.5, ROUND1_REPLY))
    body = task_request(nonce="early-1", evaluation_url=receiver.notify_url)
    response = service.post(body)
    assert response.status_code == 200
    accepted = response.json()
    assert accepted["status"] == "accepted"
    assert {k: accepted[k] for k in ("task", "round", "nonce")} == {"task": body["task"], "round": 1,
                                                                    "nonce": "early-1"}
    assert not receiver.payloads, "the answer comes before the build"

    assert wait_until(lambda: receiver.payloads), "the background build never notified"
    ledger_row = service.app.extensions["deploy"].services().store.get("early-1")
    assert wait_until(lambda: service.app.extensions["deploy"].services().store.get("early-1").status == "success")
    assert ledger_row is not None
    pages_url = receiver.payloads[0]["pages_url"]
    assert pages_url in signed_in_dashboard(service.url)
    again = service.post(body)
    assert again.json()["status"] == "accepted" and len(model.history) == 1


def test_prefer_respond_async_header_answers_early(service, model, receiver):
    model.enqueue(ROUND1_REPLY)
    response = service.post(task_request(nonce="prefer-1", evaluation_url=receiver.notify_url),
                            headers={"Prefer": "respond-async, wait=5"})
    assert response.json()["status"] == "accepted"
    assert response.headers["Preference-Applied"] == "respond-async"
    assert wait_until(lambda: receiver.payloads)


@pytest.mark.parametrize("body, status", [(task_request(secret="wrong"), 403), (task_request(round=0), 400)])
def test_early_mode_still_validates_first(start_service, model, body, status):
    service = start_service(RESPONSE_MODE="early")
    response = service.post(body)
    assert response.status_code == status and response.json()["status"] == "error"
    assert not model.history


def test_early_build_failure_lands_in_the_ledger(start_service, model):
    service = start_service(RESPONSE_MODE="early", DEADLINE_SECONDS="5")
    model.default_reply = lambda body: "no files here at all"
    assert service.post(task_request(nonce="early-fail")).json()["status"] == "accepted"
    store = service.app.extensions["deploy"].services().store
    assert wait_until(lambda: store.get("early-fail") and store.get("early-fail").status == "error")
    page = signed_in_dashboard(service.url)
    assert "generation" in page


# --- metrics -----------------------------------------------------------------------------------------------------


def test_metrics_count_builds_stages_tokens_and_notifications(service, model, receiver):
    before = scrape(service.url)
    model.enqueue(ROUND1_REPLY)
    body = service.post(task_request(nonce="metrics-1", evaluation_url=receiver.notify_url)).json()
    service.post(task_request(nonce="metrics-1", evaluation_url=receiver.notify_url))
    service.post(task_request(nonce="metrics-2", secret="wrong"))
    after = scrape(service.url)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("llm_deploy_builds_total", outcome="success", stage="complete") == 1
    assert delta("llm_deploy_builds_total", outcome="replayed", stage="complete") == 1
    assert delta("llm_deploy_builds_total", outcome="rejected", stage="validate") == 1
    assert delta("llm_deploy_stage_seconds_count", stage="generation") == 1
    assert delta("llm_deploy_provider_tokens_total", provider="openai", kind="prompt") == body["model"]["prompt_tokens"]
    assert delta("llm_deploy_notifications_total", result="accepted") == 1
    assert delta("llm_deploy_http_requests_total", endpoint="api_endpoint", method="POST", status="200") == 2
    assert "nonce" not in after and "metrics-1" not in after and SECRET not in after


def test_record_functions_for_the_pipeline_modules(service):
    before = scrape(service.url)
    metrics.record_provider_call("aipipe", "http_429", 0.4)
    metrics.record_github_call("create_repo", 201)
    metrics.record_notification_attempt("http_503")
    after = scrape(service.url)
    assert metric_value(after, "llm_deploy_provider_calls_total", provider="aipipe", outcome="http_429") == \
        metric_value(before, "llm_deploy_provider_calls_total", provider="aipipe", outcome="http_429") + 1
    assert metric_value(after, "llm_deploy_github_calls_total", operation="create_repo", status="201") >= 1
    assert metric_value(after, "llm_deploy_notification_attempts_total", outcome="http_503") >= 1


def test_a_broken_metric_never_breaks_a_request(monkeypatch, service, model):
    model.enqueue(ROUND1_REPLY)
    monkeypatch.setattr(metrics, "_get", lambda: (_ for _ in ()).throw(RuntimeError("broken registry")))
    assert requests.get(f"{service.url}/health", timeout=5).status_code == 200
    assert service.post(task_request(nonce="broken-metrics")).status_code == 200


def test_ready_reports_the_response_mode(start_service):
    service = start_service(RESPONSE_MODE="early")
    ready = requests.get(f"{service.url}/ready", timeout=5).json()
    store = ready.pop("store")
    assert ready == {"status": "ready", "publisher": "local", "response_mode": "early"}
    assert store == {"backend": "sqlite", "stopping": False,
                     "queued": 0, "running": 0, "expired": 0}


# --- platforms and packaging -------------------------------------------------------------------------------------


VERCEL_DEADLINE_SECONDS = SETTINGS_BY_NAME["DEADLINE_SECONDS"].on_vercel


def test_vercel_defaults_data_dir_and_deadline(make_config):
    on_vercel = make_config(DATA_DIR=None, DEADLINE_SECONDS=None, VERCEL="1")
    assert on_vercel.data_dir == Path("/tmp/data") and on_vercel.deadline_seconds == VERCEL_DEADLINE_SECONDS
    kept = make_config(VERCEL="1", DATA_DIR="/mnt/x", DEADLINE_SECONDS="100")
    assert kept == make_config(DATA_DIR="/mnt/x", DEADLINE_SECONDS="100")
    elsewhere = make_config(DATA_DIR=None, DEADLINE_SECONDS=None)
    assert (elsewhere.data_dir, elsewhere.deadline_seconds) == (Path("data"), 600.0)


def test_vercel_json_fits_the_deadline():
    settings = json.loads((ROOT / "vercel.json").read_text())["functions"]["main.py"]
    assert VERCEL_DEADLINE_SECONDS + 10 <= settings["maxDuration"] <= 800
    assert "tests/**" in settings["excludeFiles"] and "data/**" in settings["excludeFiles"]


def test_dockerfile_follows_the_deployment_contract():
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines() if line and not line.startswith(("#", " "))]
    keywords = {k: v for k, v in (pair for pair in instructions if len(pair) == 2)}
    assert keywords["FROM"].startswith("python:3.11-slim")
    assert "uv sync --locked --no-dev" in text
    assert keywords["USER"] == "1000" and "--uid 1000" in text
    assert keywords["EXPOSE"] == "5000" and "PORT=5000" in text
    assert json.loads(keywords["CMD"]) == ["python", "main.py"]
    assert "/health" in " ".join(dockerfile_healthcheck())
    assert not re.search(r"^(COPY|ADD)\s.*\.env", text, re.MULTILINE)
    assert not re.search(r"^ENV\s.*(SECRET|TOKEN|API_KEY)", text, re.MULTILINE)
    assert "chown 1000:1000 /app/data" in text and "DATA_DIR=/app/data" in text


def test_dockerignore_keeps_secrets_and_state_out():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".env.*", "data/", ".git/", ".venv/", "node_modules/", "tests/"} <= ignored


def test_early_mode_refuses_a_reused_nonce_at_once(start_service, model):
    service = start_service(RESPONSE_MODE="early")
    model.enqueue(ROUND1_REPLY)
    assert service.post(task_request(nonce="early-reused")).json()["status"] == "accepted"
    store = service.app.extensions["deploy"].services().store
    assert wait_until(lambda: store.get("early-reused") and store.get("early-reused").status == "success")
    response = service.post(task_request(nonce="early-reused", round=2))
    assert response.status_code == 409 and response.json()["error"]["field"] == "nonce"
    assert service.app.extensions["deploy"].slots._slots._value == service.config.max_concurrent_builds


def test_sigterm_lets_a_background_build_finish(serve_main, model, receiver):
    served = serve_main(RESPONSE_MODE="early")
    model.enqueue(Delay(2.0, ROUND1_REPLY))
    response = requests.post(f"{served.url}/api-endpoint", timeout=10,
                             json=task_request(nonce="graceful-early", evaluation_url=receiver.notify_url))
    assert response.json()["status"] == "accepted"
    assert wait_until(lambda: len(model.history) == 1)
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=60) == 0
    assert [p["nonce"] for p in receiver.payloads] == ["graceful-early"], served.log()
