"""The allocator policy (benchmarks/memory.py): applied in this process by mallopt, handed to
every process started from it through the environment, and applied by training, evaluation
and `bench.py speed`'s workers. Each case runs in a fresh interpreter: the policy is per process.

The check is glibc's own count of mmapped blocks (mallinfo2().hblkhd) while a 64 MiB tensor is
alive: glibc's default serves such a block by mmap (and unmaps it on free, the page faults
the policy removes); under the policy it comes from the heap. Blocks above the policy's 1 GiB
mmap threshold are still mmapped (a 1.5 GiB tensor), so that they leave no holes in the heap."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.memory import POLICY, jemalloc_library, mmapped_bytes

ROOT = Path(__file__).resolve().parents[1]
# mmapped bytes that a new 64 MiB tensor adds (blocks mmapped before the policy may still be alive)
BIG = "import torch; from benchmarks.memory import mmapped_bytes; m0 = mmapped_bytes(); x = torch.ones(16 << 20)"
ADDED = "mmapped_bytes() - m0"
pytestmark = pytest.mark.skipif(mmapped_bytes() is None, reason="needs glibc >= 2.33 (mallinfo2)")


def python(code: str, env: dict | None = None, args: tuple = ()) -> dict:
    """Run `code` in a fresh interpreter that prints one JSON line; return it."""
    base = {k: v for k, v in os.environ.items() if k not in POLICY and k != "CWBENCH_MALLOC"}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **(env or {})},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def probe(setup: str) -> str:
    """Code that runs `setup`, then reports the mmapped bytes a 64 MiB tensor adds and the environment."""
    env = f"{{k: os.environ.get(k) for k in {list(POLICY)!r}}}"
    return f"import json, os\n{setup}\n{BIG}\nprint(json.dumps({{'mmapped': {ADDED}, 'env': {env}}}))"


SETUP = "from benchmarks.memory import apply_allocator_policy; applied = apply_allocator_policy()"


def test_without_the_policy_a_large_tensor_is_mmapped():
    got = python(probe(""))
    assert got["mmapped"] >= 64 << 20  # glibc's default: its own mmap, unmapped at free
    assert got["env"] == {"MALLOC_MMAP_THRESHOLD_": None, "MALLOC_TRIM_THRESHOLD_": None}


def test_the_policy_keeps_large_tensors_in_the_heap_and_sets_the_environment():
    got = python(probe(SETUP))
    assert got["mmapped"] == 0
    assert got["env"] == {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(64 << 30)}


@pytest.mark.parametrize("how", ["mallopt", "environment"])
def test_blocks_above_the_threshold_keep_their_own_mmap(how):
    """A 1.5 GiB tensor (VTA's batch-norm layers at the paper batch are 2.6 GB) is mmapped under the
    policy and given back at free, a 1 GiB - 1 MiB one is not."""
    code = (
        "import json, torch\n{setup}\nfrom benchmarks.memory import mmapped_bytes\nout = {{}}\n"
        "for mib in (1023, 1536):\n"
        "    m0 = mmapped_bytes(); x = torch.empty(mib << 20, dtype=torch.uint8); out[mib] = mmapped_bytes() - m0\n"
        "    del x\n"
        "out['after'] = mmapped_bytes()\nprint(json.dumps(out))"
    )
    if how == "mallopt":
        got = python(code.format(setup=SETUP))
    else:
        got = python(code.format(setup=""), env={k: str(v[2]) for k, v in POLICY.items()})
    assert got["1023"] == 0 and got["1536"] >= 1536 << 20
    assert got["after"] < 1 << 30  # unmapped at free


def test_processes_started_after_the_policy_inherit_it():
    """A child (a spawned suite or tuning worker, a `python -c` speed worker, a torchrun rank)
    gets the policy from the environment at start-up, before it runs any of our code."""
    code = f"""
import json, subprocess, sys
from benchmarks.memory import apply_allocator_policy
apply_allocator_policy()
child = "import json; {BIG}; print(json.dumps({ADDED}))"
print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout.strip())
"""
    assert python(code) == 0


def test_a_users_own_setting_and_the_opt_out_are_kept():
    got = python(probe(SETUP), env={"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert got["env"]["MALLOC_MMAP_THRESHOLD_"] == "131072"  # untouched; the trim threshold still set
    assert got["env"]["MALLOC_TRIM_THRESHOLD_"] == str(64 << 30)
    assert got["mmapped"] >= 64 << 20  # the user's threshold in effect
    got = python(probe(SETUP), env={"CWBENCH_MALLOC": "system"})
    assert got["mmapped"] >= 64 << 20 and got["env"]["MALLOC_MMAP_THRESHOLD_"] is None


def test_training_and_evaluation_apply_the_policy(tmp_path):
    """The trainer and the evaluation apply it themselves (a library caller, a suite worker, each DDP
    rank): a smoke-preset training, then an evaluation, each in a fresh process."""
    code = f"""
import json, os, sys, numpy as np, torch
from pathlib import Path
from benchmarks.config import resolve_config
from benchmarks.trainer import build_seeded, train
from benchmarks.evaluate import evaluate
cfg = resolve_config("cwvae", "mmnist", "smoke", sets=["train.steps=1", "eval.n_videos=2", "eval.metrics=[ssim]"])
model = build_seeded(cfg)
videos = np.zeros((2, cfg.data.test_length, 64, 64, 1), np.uint8)
step = train if sys.argv[-1] == "train" else evaluate
step(model, cfg, videos, Path(r"{tmp_path}") / sys.argv[-1], torch.device("cpu"), progress=False)
{BIG}
print(json.dumps({{"mmapped": {ADDED}, "env": os.environ.get("MALLOC_MMAP_THRESHOLD_")}}))
"""
    for where in ("train", "evaluate"):
        got = python(code, args=[where])
        assert got == {"mmapped": 0, "env": str(1 << 30)}, where


def test_speed_workers_run_under_the_policy_or_the_systems_defaults():
    from benchmarks.speed import worker_env

    assert worker_env("system")["CWBENCH_MALLOC"] == "system"
    assert not set(POLICY) & set(worker_env("system"))
    with pytest.raises(ValueError, match="allocator must be one of policy, system, jemalloc"):
        worker_env("tcmalloc")


def test_the_jemalloc_environment(monkeypatch):
    """`bench.py speed --allocator jemalloc` (VTA's paper batch): jemalloc preloaded before a user's own
    preload, told to keep freed pages, glibc's policy variables dropped; a clear error where it is missing."""
    import benchmarks.memory as memory

    monkeypatch.setattr(memory, "jemalloc_library", lambda: "libjemalloc.so.2")
    user = {"LD_PRELOAD": "libfoo.so", "MALLOC_MMAP_THRESHOLD_": "1", "HOME": "/home/x"}
    env = memory.jemalloc_env(user)
    assert env["LD_PRELOAD"] == "libjemalloc.so.2 libfoo.so"
    assert env["MALLOC_CONF"] == "dirty_decay_ms:-1,muzzy_decay_ms:-1" and env["CWBENCH_MALLOC"] == "system"
    assert "MALLOC_MMAP_THRESHOLD_" not in env and env["HOME"] == "/home/x"
    monkeypatch.setattr(memory, "jemalloc_library", lambda: None)
    with pytest.raises(memory.AllocatorUnavailable, match="apt install libjemalloc2"):
        memory.jemalloc_env(user)


def test_speed_refuses_jemalloc_where_it_is_not_installed(monkeypatch, capsys):
    import benchmarks.memory as memory
    from benchmarks.cli import main

    monkeypatch.setattr(memory, "jemalloc_library", lambda: None)
    assert main(["speed", "--model", "copy_last", "--allocator", "jemalloc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --allocator jemalloc: jemalloc is not installed") and err.count("\n") == 1


@pytest.mark.skipif(jemalloc_library() is None, reason="jemalloc not installed")
def test_a_process_started_with_the_jemalloc_environment_runs_on_it():
    from benchmarks.memory import jemalloc_env

    code = "import json; print(json.dumps('jemalloc' in open('/proc/self/maps').read()))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=jemalloc_env(), timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout) is True


# the heap's bytes from the system while a 256 MiB block at the top of the heap lives, and after it is
# freed (malloc and free called directly: a tensor's block need not be at the top, where a trim acts)
TRIM = (
    "import ctypes; from benchmarks.memory import heap_bytes, libc; lib = libc(); "
    "lib.malloc.restype = ctypes.c_void_p; lib.free.argtypes = [ctypes.c_void_p]; "
    "p = lib.malloc(256 << 20); ctypes.memset(p, 1, 256 << 20); alive = heap_bytes(); lib.free(p); "
    "print(json.dumps({'alive': alive, 'freed': heap_bytes()}))"
)


@pytest.mark.parametrize("how", ["mallopt", "environment"])
def test_the_policy_never_trims_the_heap(how):
    """Freed memory stays in the process, whether the policy came by mallopt (this process) or by
    the environment (a child). mallopt takes a C int: 64 GiB passed as is arrives as 0, which
    trims at every free (the heap falls back by the whole 256 MiB); the policy passes -1."""
    if how == "mallopt":
        got = python(f"import json\n{SETUP}\n{TRIM}")
    else:
        got = python(f"import json\n{TRIM}", env={k: str(v[2]) for k, v in POLICY.items()})
    assert got["alive"] >= 256 << 20
    assert got["freed"] >= got["alive"] - (1 << 20)
    # the controls: glibc's default trims what the top of the heap frees (mmap off, so the block is in
    # the heap), and so does mallopt given 64 GiB, the int it cannot hold
    got = python(f"import json\n{TRIM}", env={"MALLOC_MMAP_THRESHOLD_": str(1 << 30)})
    assert got["freed"] < got["alive"] - (200 << 20)
    truncated = f"from benchmarks.memory import libc; libc().mallopt({POLICY['MALLOC_TRIM_THRESHOLD_'][0]}, 64 << 30)"
    got = python(f"import json\n{truncated}\n{TRIM}", env={"MALLOC_MMAP_THRESHOLD_": str(1 << 30)})
    assert got["freed"] < got["alive"] - (200 << 20)
