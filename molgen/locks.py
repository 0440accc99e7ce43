"""Exclusive use of a run directory or an output path by one molgen process at a time.

A lock is a small file created atomically (``O_CREAT | O_EXCL``) holding the
owner's PID, host and start time. A second process that finds it refuses with
one line naming the owner. A lock left by a process that died (same host, PID
no longer running, e.g. after ``kill -9``) is taken over with a warning; a lock
from another host cannot be checked and is reported with the file to delete
once that process is known to be gone. Two processes taking over the same stale
lock in the same instant could both proceed; a lock is a guard against mistakes
(a second command on the same folder), not against a race of that precision.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["LockedError", "exclusive_lock"]


class LockedError(RuntimeError):
    """The path is in use by another molgen process."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _owner(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}  # being written, or garbage: treated as a live owner of unknown identity


def _try_create(lock: Path, owner: dict) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(owner, f)
    return True


@contextmanager
def exclusive_lock(lock: str | os.PathLike, what: str, hint: str) -> Iterator[Path]:
    """Hold the lock file ``lock`` for the block.

    Args:
        lock: the lock file's path (its folder must exist).
        what: the locked thing, as the error names it (``"run directory runs/x"``).
        hint: what the user can do instead, appended to the error.
    Raises:
        LockedError: another live process (or one on another host) holds it.
    """
    lock = Path(lock)
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    while not _try_create(lock, owner):
        held = _owner(lock)
        pid, host = held.get("pid"), held.get("host")
        if isinstance(pid, int) and host == owner["host"] and not _alive(pid):
            log.warning("taking over the stale lock %s of process %s, which is no longer running", lock, pid)
            lock.unlink(missing_ok=True)
            continue
        who = f"process {pid} on {host} since {held.get('since')}" if pid else "another process"
        raise LockedError(
            f"{what} is in use by {who} (lock file {lock}); {hint}, or delete the lock file if that process is gone"
        )
    try:
        yield lock
    finally:
        if _owner(lock).get("pid") == owner["pid"]:
            lock.unlink(missing_ok=True)
