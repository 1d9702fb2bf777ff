"""utils/logs.py: one JSON object a line, with secrets redacted in messages and fields."""

from __future__ import annotations

import io
import json
import logging

from utils.logs import JsonFormatter


def test_json_formatter_redacts_secrets_in_messages_and_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(["hunter2-secret", 'quo"te']))
    logger = logging.getLogger("redaction-test")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("token hunter2-secret leaked", extra={"detail": {"key": 'quo"te'}, "stage": "x"})
    line = json.loads(stream.getvalue())
    assert "hunter2-secret" not in stream.getvalue() and 'quo\\"te' not in stream.getvalue()
    assert line["message"] == "token [REDACTED] leaked" and line["stage"] == "x"
