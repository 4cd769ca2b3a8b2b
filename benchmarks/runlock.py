"""One process at a time per run directory: an exclusive `fcntl.flock` on `<run dir>/.lock`.

The kernel releases the lock when its process exits, however it exits (even `kill -9`),
so a lock file left behind never blocks anyone. The holder writes its pid, host and start
time into the file so that a second process can say who holds it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None

LOCK = ".lock"


class RunLocked(RuntimeError):
    """Another process holds the run directory."""


def holder(path: Path) -> str:
    """'process 123 on host since 12:00:01' from a lock file ('another process' if unreadable)."""
    try:
        pid, host, since = path.read_text().split("\n")[:3]
        return f"process {pid} on {host} (since {since})"
    except (OSError, ValueError):
        return "another process"


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, wait: bool = False) -> Iterator[None]:
    """Hold `directory`'s lock for the block; RunLocked if it is taken and not `wait`, else wait for it."""
    path = Path(directory) / LOCK
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise RunLocked(
                    f"{directory} is in use by {holder(path)}: the same run is already going; wait for it to "
                    "finish, or pass --wait to wait for it and then continue"
                ) from None
            print(f"waiting for {holder(path)}, which holds {directory}", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n{socket.gethostname()}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
