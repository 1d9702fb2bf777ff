"""Browser-side isolation headers: the service's own pages versus the apps the local publisher serves.

Generated apps are untrusted code served under ``/pages/`` on the service's
own host. Each of their responses carries a CSP ``sandbox`` without
``allow-same-origin``, so the app runs in an opaque origin: it cannot read the
dashboard, ``/metrics`` or the session cookie, nor script a dashboard window.
``Access-Control-Allow-Origin: *`` lets the app's own relative fetches (and
module scripts, fonts) still load from that opaque origin; they are public
files anyway. The service's own pages refuse to be framed (``frame-ancestors
'none'``, ``X-Frame-Options: DENY``) and are cut off from windows they did not
open (``Cross-Origin-Opener-Policy``). On Hugging Face Spaces, whose page shows
the app in a frame from ``https://huggingface.co``, that one origin may frame
them (``frame-ancestors https://huggingface.co``); ``X-Frame-Options`` is then
left out, since it cannot name one origin and browsers would let it win.

Never adds CORS headers to the service's own pages.
"""

from __future__ import annotations

from flask import Response

APP_SANDBOX = ("sandbox allow-scripts allow-forms allow-modals allow-popups allow-popups-to-escape-sandbox "
               "allow-downloads allow-pointer-lock allow-presentation")
SERVICE_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
APP_HEADERS = {
    "Content-Security-Policy": APP_SANDBOX,
    "Access-Control-Allow-Origin": "*",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_isolation_headers(response: Response, *, generated_app: bool, frame_ancestor: str = "") -> Response:
    """Set the headers for a generated app's file (``generated_app``) or for one of the service's own pages,
    which only ``frame_ancestor`` (an origin, or "" for none) may frame."""
    headers = APP_HEADERS if generated_app else service_headers(frame_ancestor)
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response


def service_headers(frame_ancestor: str = "") -> dict[str, str]:
    """The headers of the service's own pages: framed by nobody, or by ``frame_ancestor`` alone."""
    if not frame_ancestor:
        return SERVICE_HEADERS
    headers = {**SERVICE_HEADERS, "Content-Security-Policy": f"frame-ancestors {frame_ancestor}"}
    del headers["X-Frame-Options"]
    return headers
