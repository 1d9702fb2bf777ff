"""Serve an app's files from memory on 127.0.0.1 under ``/<repo>/``, the way GitHub Pages would.

Folders redirect to their slash, a missing file gets the site's own 404.html
(status 404) when it has one, and each file goes out with the Content-Type a
static host sends (``utils.content_types``). Only the keys of the mapping it is
given are ever served: it never reads from disk, never maps a filesystem path,
never logs request lines, and listens on loopback only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

from utils.content_types import content_type_for


class StaticSite:
    """The files, served from memory on 127.0.0.1 under ``/<repo>/`` like Pages; a context manager.

    Only keys of ``files`` are ever served; nothing is read from disk.
    """

    def __init__(self, repo_name: str, files: Mapping[str, bytes] | None = None) -> None:
        self.prefix = "/" + quote(repo_name) + "/"
        self.files: Mapping[str, bytes] = dict(files or {})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}{self.prefix}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> StaticSite:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()

    def resolve(self, raw_path: str) -> tuple[int, str]:
        """(200, file path) | (301, location) | (404, '') for a request path."""
        path = unquote(urlsplit(raw_path).path)
        if path == self.prefix.rstrip("/"):
            return 301, self.prefix
        if not path.startswith(self.prefix):
            return 404, ""
        name = path[len(self.prefix):]
        if name == "" or name.endswith("/"):
            name += "index.html"
        if name in self.files:
            return 200, name
        if name + "/index.html" in self.files:
            return 301, path + "/"
        return 404, ""


def _handler_for(site: StaticSite) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``site``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            """Send the file (or redirect, or 404)."""
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            """Send the headers only."""
            self._answer(send_body=False)

        def _answer(self, send_body: bool) -> None:
            """Answer like a static host: the file with its type, a folder redirect, or 404(.html)."""
            status, target = site.resolve(self.path)
            files = site.files
            if status == 404 and "404.html" in files:
                target = "404.html"
            body = files.get(target, b"404 Not Found\n") if status != 301 else b""
            self.send_response(status)
            if status == 301:
                self.send_header("Location", target)
            self.send_header("Content-Type", content_type_for(target) if target else "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Silent: request lines are not logged."""

    return Handler
