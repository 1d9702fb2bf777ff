"""Who may see the dashboard's builds: a signed, HttpOnly, SameSite=Strict session opened with the secret.

Where the service's pages are shown in another site's frame (Hugging Face
Spaces), a SameSite=Strict cookie is never sent inside that frame, so there
the cookie is ``SameSite=None; Secure; Partitioned`` (CHIPS: kept per top-level
site, so browsers that block third-party cookies still send it in the frame).

Anonymous visitors of ``/`` see the service's status and the submit form; task
names, nonces, links and error texts appear only once the shared secret was
given at ``POST /sign-in`` (JSON ``{"secret": ...}`` whatever the Content-Type,
or a form field). The session cookie holds no secret: Flask signs
``{"dashboard": true}`` with a key derived from SECRET (so changing SECRET
signs everyone out, and every worker derives the same key). Wrong secrets count
towards the same per-address limit as /api-endpoint.

Never stores, logs or echoes the secret.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, jsonify, redirect, request, session
from flask.typing import ResponseReturnValue

from utils.errors import InvalidRequest, NotConfigured, SecretMismatch
from utils.intake.validation import check_secret, parse_body

if TYPE_CHECKING:
    from utils.jobs.runtime import Runtime

SESSION_HOURS = 12
# A secret is at most 1024 characters (utils/intake/validation.py), 3 bytes each percent-encoded. The bound keeps
# this unauthenticated body small: a 25 MB JSON or form body of tiny values is hundreds of MB of Python objects.
SIGN_IN_MAX_BYTES = 8192
_SESSION_FLAG = "dashboard"


def configure_sessions(app: Flask, secret: str, public_url: str, *, framed: bool = False) -> None:
    """Sign sessions with a key derived from ``secret``; cookies are HttpOnly, SameSite=Strict, Secure on https
    (``framed``: SameSite=None; Secure; Partitioned, so the session works in another site's frame)."""
    app.secret_key = hmac.new(secret.encode(), b"llm-deploy dashboard session", hashlib.sha256).digest() \
        if secret else None
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="None" if framed else "Strict",
                      SESSION_COOKIE_SECURE=framed or public_url.startswith("https://"),
                      SESSION_COOKIE_PARTITIONED=framed,
                      SESSION_COOKIE_NAME="llm_deploy_session",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))


def signed_in() -> bool:
    """True when this request carries a valid dashboard session."""
    return bool(session.get(_SESSION_FLAG))


def create_session_blueprint(runtime: Runtime) -> Blueprint:
    """``POST /sign-in`` (the secret opens a session) and ``POST /sign-out``."""
    bp = Blueprint("dashboard_session", __name__)

    @bp.post("/sign-in")
    def sign_in() -> ResponseReturnValue:

        if not runtime.config.secret:
            raise NotConfigured("the service is not configured: set SECRET", field="SECRET")
        request.max_content_length = SIGN_IN_MAX_BYTES  # larger bodies: 413 before any is parsed
        given, as_json = _sign_in_fields()
        if not isinstance(given, dict):
            raise InvalidRequest("send the secret as JSON {\"secret\": ...} or a form field", field="secret")
        try:
            check_secret(given, runtime.config.secret)
        except SecretMismatch:
            runtime.secret_failures.record(request.remote_addr or "unknown")
            raise
        session.clear()
        session.permanent = True
        session[_SESSION_FLAG] = True
        if as_json:
            return jsonify(status="signed in")
        return redirect("./", code=303)

    @bp.post("/sign-out")
    def sign_out() -> ResponseReturnValue:
        session.clear()
        return jsonify(status="signed out") if request.is_json else redirect("./", code=303)

    return bp


def _sign_in_fields() -> tuple[dict[str, Any] | None, bool]:
    """The sign-in's fields and whether they came as JSON: a JSON object whatever the Content-Type says (like
    /api-endpoint: `curl -d '{"secret": ...}'` sends a form type), else the form's fields (None: unreadable)."""
    if request.mimetype == "multipart/form-data":
        return request.form.to_dict(), False
    raw = request.get_data(cache=True)
    if raw.lstrip()[:1] in (b"{", b"[", b'"'):
        try:
            return parse_body(raw, SIGN_IN_MAX_BYTES), True
        except InvalidRequest:
            return None, True
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)), False
