"""utils/jobs/notify.py: exactly seven keys, backoff 1, 2, 4... until the deadline, one try even when late."""

from __future__ import annotations

import time

from tests.fakes.evaluation_server import EvaluationReceiver
from tests.fakes.faults import Fail
from utils.deadline import Deadline
from utils.jobs.notify import NOTIFICATION_KEYS, notification_payload, notify


def test_notification_payload_has_exactly_seven_keys():
    values = {k: k for k in NOTIFICATION_KEYS} | {"secret": "never", "timings": {}}
    assert list(notification_payload(values)) == list(NOTIFICATION_KEYS)


def test_notify_backs_off_1_2_4_and_stops_at_the_deadline():
    with EvaluationReceiver([Fail(500)] * 100) as down:
        started = time.monotonic()
        result = notify(down.notify_url, {"a": 1}, Deadline(5.0))
        elapsed = time.monotonic() - started
    assert result.ok is False and result.last_error == "HTTP 500"
    assert down.attempts == 3  # at 0 s, 1 s and 3 s; the next (at 7 s) is past the deadline
    assert elapsed < 5.5


def test_notify_tries_once_even_with_no_time_left():
    with EvaluationReceiver() as up:
        assert notify(up.notify_url, {"a": 1}, Deadline(0.0)).ok is True
