"""When a page is quiet: no request in flight, no pending short timer, no DOM change for a while.

The self-check's browser polls a false check until its time runs out (15 s,
as graders do); on a quiet page nothing more will happen without a user, so a
false check there is taken as failing at once (``utils.checks.browser``). A
probe installed in the page before its scripts records the last DOM change
and the pending timers due within the check time; the browser's request
events count requests in flight.

Never changes what the page shows: the probe only observes (it wraps
``setTimeout``/``clearTimeout`` to count pending timers and defines one
non-enumerable function), and never blocks or delays a request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

QUIET_SECONDS = 1.5


# Installed in every page before its scripts: records when the DOM last changed and which short timers are
# pending (a timer due within the check time may still change the page), for the quiet-page test.
_QUIET_PROBE = """(() => {
  const limit = %d;
  let last = performance.now();
  const pending = new Set();
  const note = () => { last = performance.now(); };
  const observe = () => new MutationObserver(note).observe(document, {subtree: true, childList: true,
                                                                    attributes: true, characterData: true});
  try { observe(); } catch (e) { /* no document yet: nothing to watch */ }
  const set = window.setTimeout, clear = window.clearTimeout;
  window.setTimeout = function (fn, delay, ...args) {
    if (typeof fn !== 'function' || Number(delay || 0) > limit) return set.call(this, fn, delay, ...args);
    const id = set.call(this, function (...a) { pending.delete(id); return fn.apply(this, a); }, delay, ...args);
    pending.add(id);
    return id;
  };
  window.clearTimeout = function (id) { pending.delete(id); return clear.call(this, id); };
  Object.defineProperty(window, '__selfCheckQuiet', {enumerable: false, value: () =>
    pending.size ? 0 : (performance.now() - last) / 1000});
})()"""


@dataclass
class QuietPage:
    """Whether a page is quiet: no request in flight or pending short timer, no DOM change, for a while."""

    seconds: float
    in_flight: int = 0
    last_network: float = field(default_factory=time.monotonic)

    def on_request(self, _request: Any) -> None:
        """A request started."""
        self.in_flight += 1
        self.last_network = time.monotonic()

    def on_request_done(self, _request: Any) -> None:
        """A request finished or failed."""
        self.in_flight = max(0, self.in_flight - 1)
        self.last_network = time.monotonic()

    async def holds(self, page: Any) -> bool:
        """True when nothing has happened on ``page`` for ``seconds`` and nothing is about to."""
        if self.seconds <= 0 or self.in_flight or time.monotonic() - self.last_network < self.seconds:
            return False
        try:
            idle = await asyncio.wait_for(page.evaluate("window.__selfCheckQuiet ? window.__selfCheckQuiet() : 0"),
                                          timeout=1.0)
        except Exception:
            return False
        return isinstance(idle, (int, float)) and idle >= self.seconds


def quiet_probe(check_timeout: float) -> str:
    """The init script for a visit whose checks are polled ``check_timeout`` seconds."""
    return _QUIET_PROBE % int(check_timeout * 1000)
