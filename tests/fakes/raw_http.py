"""A hostile HTTP server on loopback that answers every connection with scripted raw bytes, optionally dripped.

``RawHTTPServer(answer, drip_seconds)`` accepts connections on 127.0.0.1, reads
the request head, then writes ``answer`` (status line, headers and body exactly
as given, so a reason phrase of any length or a header that never ends is
possible) one byte every ``drip_seconds``. It counts connections and stops
dripping as soon as the client closes the socket; ``longest_seconds`` is how long
the longest connection stayed open.

Never reaches the internet (binds to 127.0.0.1); a well-behaved client never needs it.
"""

from __future__ import annotations

import socket
import threading
import time


class RawHTTPServer:
    """Answers each connection with ``answer`` (bytes), one byte per ``drip_seconds`` (0: all at once)."""

    def __init__(self, answer: bytes, drip_seconds: float = 0.0):
        self.answer = answer
        self.drip_seconds = drip_seconds
        self.connections = 0
        self.longest_seconds = 0.0
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = [threading.Thread(target=self._accept, daemon=True)]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            thread = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _answer(self, conn: socket.socket) -> None:
        started = time.monotonic()
        try:
            conn.settimeout(5)
            conn.recv(65536)  # the request head (small requests arrive whole)
            if not self.drip_seconds:
                conn.sendall(self.answer)
            for index in range(len(self.answer) if self.drip_seconds else 0):
                if self._stop.wait(self.drip_seconds):
                    break
                conn.sendall(self.answer[index:index + 1])
        except OSError:
            pass  # the client closed the connection: what a bounded client does
        finally:
            self.longest_seconds = max(self.longest_seconds, time.monotonic() - started)
            conn.close()

    def __enter__(self) -> RawHTTPServer:
        self._threads[0].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._socket.close()
