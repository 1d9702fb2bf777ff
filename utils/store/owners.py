"""Which process holds a build: a token naming the process, and whether a token's process is gone.

Used by both store backends. Only Linux (/proc) can check a process; elsewhere
(and for other machines or containers) the lease decides. Never reads anything
but /proc and the hostname.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from pathlib import Path

_FALLBACK = uuid.uuid4().hex[:12]


# --- which process holds a build ----------------------------------------------------------------------------------
# A pid alone is not enough: a restarted container numbers its processes from 1 again. The
# token adds the process's start time, and the hostname, boot id and pid namespace that say
# whether the pid can be looked up from here. Only Linux (/proc) can check; elsewhere the lease decides.


def process_token(pid: int | None = None) -> str | None:
    """``hostname|boot-id|pid-namespace|pid|start-time`` of a live process (default: this one), or None."""
    scope = _host_scope()
    started = _start_time(pid or os.getpid())
    return "|".join([*scope, str(pid or os.getpid()), started]) if scope and started else None


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` ran under this hostname and is gone; False when it lives or cannot be checked."""
    parts = (owner or "").split("|")
    scope = _host_scope()
    if len(parts) != 5 or scope is None or parts[0] != scope[0] or not parts[3].isdigit():
        return False  # another machine or container: its processes cannot be seen from here
    if tuple(parts[:3]) != scope:
        return True  # this machine rebooted or this container restarted since: everything it ran is gone
    return process_token(int(parts[3])) != owner


@functools.cache
def _host_scope() -> tuple[str, str, str] | None:
    """This hostname, kernel boot and pid namespace, or None where /proc cannot tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return socket.gethostname(), boot, os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def owner_token() -> str:
    """This process's owner token: ``process_token()``, or (without /proc) the hostname, pid and a random id."""
    return process_token() or f"{socket.gethostname()}|-|-|{os.getpid()}|{_FALLBACK}-{os.getpid()}"
