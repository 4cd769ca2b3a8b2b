"""One allocator policy for every cwbench process: training, evaluation, `bench.py speed`'s
workers, suite and tuning workers, DDP ranks.

glibc's malloc serves blocks above its mmap threshold with their own mmap and gives them
back at every free; it also trims the top of the heap whenever more than
M_TRIM_THRESHOLD is free there. A training step of the paper-size CW-VAE allocates and
frees gigabytes of activations, so the same pages were faulted in again at every step:
~4.8 million minor page faults and ~10 s of system time in a 17.6 s step on this 2-core
CPU (issue 18). The policy turns both off for blocks up to 1 GiB — the mmap threshold
raised to 1 GiB (M_MMAP_THRESHOLD), no trimming (M_TRIM_THRESHOLD = 64 GiB) — so freed
memory stays in the process and is reused. Blocks above 1 GiB (VTA's batch-norm layers at
the paper batch: 2.6 GB tensors; CW-VAE's largest is 615 MB) still get their own mmap, given
back at free: kept in the heap, blocks that large left holes that later blocks of other sizes
did not fit, and VTA's paper batch outgrew a 24 GiB machine (docs/performance.md). It
replaces the 1 MiB mmap threshold the evaluation used to set for flat memory:
docs/performance.md has the measurements of both (speed, and peak memory over a
1000-frame horizon).

It is applied twice: in this process by `mallopt`, and for every process started from it
through the environment (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_), which glibc reads when
a process starts — spawned workers, `python -c` speed workers, torchrun's ranks. A user who
sets either variable keeps their own setting (CWBENCH_MALLOC=system keeps glibc's defaults).
Elsewhere than glibc (macOS, musl) it does nothing.

jemalloc, keeping its freed pages, is the opt-in alternative for VTA's paper batch on a CPU
(`jemalloc_env`, `bench.py speed --allocator jemalloc`): a system package, preloaded at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # bytes: larger blocks are mmapped (and unmapped at free); fits mallopt's int
TRIM_THRESHOLD = 64 << 30  # bytes: never trim in practice (the environment variable is a size_t)
# mallopt's value is a C int: 64 GiB would arrive as its low 32 bits, 0, i.e. trim at every free
# (the bug this replaces: training ran with it until 2026-12-01). glibc stores M_TRIM_THRESHOLD's
# int in a size_t, so -1 becomes SIZE_MAX: never trim, the environment's setting in effect.
NEVER_TRIM = -1
# {variable: (mallopt parameter, mallopt value, environment value)}
POLICY = {
    "MALLOC_MMAP_THRESHOLD_": (M_MMAP_THRESHOLD, MMAP_THRESHOLD, MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": (M_TRIM_THRESHOLD, NEVER_TRIM, TRIM_THRESHOLD),
}
OPT_OUT = "CWBENCH_MALLOC"  # =system: leave glibc's defaults alone

_applied: dict[str, int] | None = None


@functools.cache
def libc() -> ctypes.CDLL | None:
    """glibc, or None where there is none. Loaded once: find_library runs ldconfig in a subprocess,
    which is no work for every `mallinfo2` call (a sampling thread, a probe between malloc and free)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        lib.mallopt  # noqa: B018 - musl has no mallopt
        lib.gnu_get_libc_version  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return lib


def apply_allocator_policy() -> dict[str, int]:
    """Apply the policy to this process and (by the environment) to every process it starts.
    Idempotent. Returns {variable: value} of what this call set (empty where the user set their
    own, opted out, or the C library is not glibc)."""
    global _applied
    if _applied is not None:
        return _applied
    lib = libc()
    _applied = {}
    if lib is None or os.environ.get(OPT_OUT, "").lower() == "system":
        return _applied
    for name, (param, mallopt_value, env_value) in POLICY.items():
        if name in os.environ:  # the user's choice; glibc already applied it at start-up
            continue
        if lib.mallopt(param, ctypes.c_int(mallopt_value)):
            os.environ[name] = str(env_value)
            _applied[name] = env_value
    return _applied


# jemalloc with freed pages kept for reuse (never purged to the OS): the allocator for VTA's paper
# batch on a CPU, whose 2.6 GB blocks glibc can neither keep (the heap outgrows the machine) nor reuse
# (mmapped, faulted in at every allocation). docs/performance.md has the measurements.
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"


class AllocatorUnavailable(RuntimeError):
    """An allocator asked for by name is not installed on this machine."""


def jemalloc_library() -> str | None:
    """The jemalloc shared library's name for LD_PRELOAD (found by the dynamic linker's search), or None."""
    return ctypes.util.find_library("jemalloc") if sys.platform.startswith("linux") else None


def system_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process's) for a process to start on glibc's defaults: the policy's
    variables dropped, and the opt-out set so that the process does not apply the policy itself."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k not in POLICY} | {OPT_OUT: "system"}


def jemalloc_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process's) with jemalloc preloaded and configured to keep freed pages,
    for a process to start with: glibc's malloc is then unused, so the policy's variables are dropped."""
    library = jemalloc_library()
    if library is None:
        raise AllocatorUnavailable(
            "jemalloc is not installed (Debian/Ubuntu: apt install libjemalloc2; Fedora: dnf install jemalloc)"
        )
    env = system_env(environ)  # glibc's malloc unused: its policy has nothing to do
    preload = " ".join(x for x in (library, env.get("LD_PRELOAD", "")) if x)
    return env | {"LD_PRELOAD": preload, "MALLOC_CONF": JEMALLOC_CONF}


class MallInfo2(ctypes.Structure):
    """glibc >= 2.33 `struct mallinfo2` (all size_t)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def heap_bytes() -> int | None:
    """Bytes this process's malloc heaps hold from the system (mallinfo2().arena, free space
    included: what a trim would give back), None without glibc >= 2.33."""
    info = mallinfo2()
    return None if info is None else int(info.arena)


def mallinfo2() -> MallInfo2 | None:
    lib = libc()
    if lib is None or not hasattr(lib, "mallinfo2"):
        return None
    lib.mallinfo2.restype = MallInfo2
    return lib.mallinfo2()


def mmapped_bytes() -> int | None:
    """Bytes this process holds in mmapped malloc blocks (mallinfo2().hblkhd), None without glibc >= 2.33."""
    info = mallinfo2()
    return None if info is None else int(info.hblkhd)
