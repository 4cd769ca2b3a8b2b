"""Atomic file writes (temp file in the same directory, flush + fsync, rename) and file hashes.

A process killed at any point leaves either the old file or the new one, never a
half-written file that a later run would read as complete. Every file the project
writes for later reading goes through here: run directories, datasets, the weights
cache, reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; `locked` does not lock there
    fcntl = None

# The process's umask, read once at import (reading it means setting it, which is not safe
# while other threads create files). mkstemp makes its temp files 0600 whatever the umask;
# a written file gets the mode open() would have given it (0666 less the umask), so run
# directories, checkpoints and exported weights shared on a cluster are readable as usual.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", before_rename: Callable[[], None] | None = None
) -> Iterator[io.IOBase]:
    """Open a temp file beside `path`; on clean exit fsync it and rename it onto `path`.

    `before_rename` runs once the new content is safely on disk, just before the rename
    (checkpoints keep the file being replaced as their previous one there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make a finished temp file `path`: fsync it, rename it onto `path`, fsync the directory
    (for files written in place over time, e.g. a dataset split's memmap)."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete temp files that a killed process left behind in `directory` (not recursive)."""
    directory = Path(directory)
    stale = list(directory.glob(".*.tmp")) if directory.is_dir() else []
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stale


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV atomically."""
    with atomic_open(path, "w") as f:
        frame.to_csv(f, index=False)


def np_save(path: str | os.PathLike, array) -> None:
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.save(f, array)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    """Hex sha256 of a file's bytes, read in chunks (datasets of GBs, sdists, model files)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the block, across processes: `fcntl.flock` on a sidecar
    `.<name>.lock` beside it (the file itself is replaced by rename, so it cannot carry the lock).
    The kernel releases it when the holder exits, however it exits; a lock file left behind blocks nobody."""
    path = Path(path)
    if fcntl is None:
        yield
        return
    with open(path.parent / f".{path.name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def update_json(path: str | os.PathLike, change: Callable[[dict], bool], default: dict | None = None) -> dict:
    """Read-modify-write of a JSON file that several processes update (a dataset's manifest.json): under
    `locked(path)`, read it (`default` when it does not exist), let `change(data)` edit the dict in place
    and say whether it changed anything, and if so write it atomically. Returns the data as written (or read)."""
    path = Path(path)
    with locked(path):
        data = json.loads(path.read_text()) if path.exists() else json.loads(json.dumps(default or {}))
        if change(data):
            write_json(path, data)
    return data
