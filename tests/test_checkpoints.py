"""Checkpoints: loaded without running code, damaged ones survived, disk full, signals, one process per run.

Each fault checks the exit code, that the message names the file, that there is no
traceback, and that no partial file is left behind. Signals and the run lock use real
subprocesses; the disk-full case a real tmpfs (skipped where mounting is not permitted).
"""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.checkpoint import PREV, CheckpointDamaged, CheckpointUnsafe, RunCheckpoints, read
from benchmarks.cli import main
from benchmarks.config import resolve_config
from benchmarks.trainer import CHECKPOINT, build_seeded, rng_state, set_rng_state, train
from datasets import get_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = f"{REPO / 'tests' / 'data' / 'conv_next_frame.py'}:ConvNextFrame"  # 26 parameters: 21 kB checkpoints
SMOKE = ["--preset", "smoke", "--no-progress"]


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def tiny_run(out: Path, sets=()) -> Path:
    return resolve_config(TINY, "mmnist", "smoke", sets=list(sets)).run_dir(out)


class MakesAFile:
    """Unpickling this calls open(path, "w"): a file appears if anything executes it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# ---------------------------------------------------------------- nothing executes on load


def test_rng_states_round_trip_through_a_weights_only_load(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.random(), np.random.normal(), torch.rand(1)  # a cached gaussian in numpy's state too
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.normal(size=3).tolist(), torch.rand(3).tolist())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.normal(size=3).tolist(), torch.rand(3).tolist()) == expected


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_malicious_checkpoint_is_refused_and_nothing_runs(how, tmp_path, out_dir, capsys):
    marker = tmp_path / "created-by-the-checkpoint"
    ckpt = tiny_run(out_dir) / CHECKPOINT
    ckpt.parent.mkdir(parents=True)
    if how == "pickle":
        ckpt.write_bytes(pickle.dumps({"model": MakesAFile(marker)}, protocol=2))
    else:
        torch.save({"model": MakesAFile(marker), "step": 1, "config_hash": "x"}, ckpt)
    code, _, err = run_cli(["--model", TINY, *SMOKE, "--out", str(out_dir)], capsys)
    assert code == 2 and one_error_line(err), err
    assert f"refusing to load {ckpt}: it imports" in err and "open" in err and "nothing was executed" in err
    assert not marker.exists()


def test_every_checkpoint_of_a_run_loads_with_weights_only(out_dir):
    assert main(["--model", TINY, *SMOKE, "--out", str(out_dir)]) == 0
    directory = tiny_run(out_dir)
    for path in (directory / CHECKPOINT, directory / PREV):
        state = read(path)  # torch.load(weights_only=True)
        assert {"model", "optimizer", "step", "rng", "sampler", "config_hash", "config", "train_time_s"} <= set(state)
    assert read(directory / CHECKPOINT)["step"] == 4 and read(directory / PREV)["step"] == 2


# ---------------------------------------------------------------- damaged checkpoints


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"not a checkpoint" * 64}[how])


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage"])
def test_damaged_last_falls_back_to_prev_and_resumes_bit_identically(how, tmp_path, capsys):
    cfg = resolve_config(TINY, "mmnist", "smoke", sets=["train.ckpt_every=1"])
    data = get_dataset(cfg.data)
    data.ensure_ready(progress=False)
    videos, cpu = data.load("train"), torch.device("cpu")
    reference = build_seeded(cfg)
    train(reference, cfg, videos, tmp_path / "a", cpu, progress=False)

    train(build_seeded(cfg), cfg, videos, tmp_path / "b", cpu, progress=False)
    last = tmp_path / "b" / CHECKPOINT
    damage(last, how)
    capsys.readouterr()
    resumed = build_seeded(cfg)
    result = train(resumed, cfg, videos, tmp_path / "b", cpu, progress=False)
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert (
        len(warning) == 1
        and str(last) in warning[0]
        and f"resuming from {tmp_path / 'b' / PREV} (step 3)" in warning[0]
    )
    assert "resuming from step 3 of 4" in captured.out
    assert result.resumed_from == 3
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert read(last)["step"] == 4 and read(tmp_path / "b" / PREV)["step"] == 3  # the damaged one was replaced
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt", "prev.pt"]


def test_no_readable_checkpoint_says_how_to_restart_and_force_does(out_dir, capsys):
    argv = ["--model", TINY, *SMOKE, "--out", str(out_dir)]
    assert main(argv) == 0
    directory = tiny_run(out_dir)
    (directory / "eval" / "summary.csv").unlink()  # not finished: a re-run must read the checkpoints
    damage(directory / CHECKPOINT, "truncated")
    damage(directory / PREV, "empty")
    capsys.readouterr()
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and one_error_line(err), err
    assert str(directory / CHECKPOINT) in err and str(directory / PREV) in err and "--force" in err
    code, out, err = run_cli([*argv, "--force"], capsys)
    assert code == 0 and "resuming" not in out, err
    assert read(directory / CHECKPOINT)["step"] == 4 and (directory / "eval" / "summary.csv").exists()


def test_store_distinguishes_damage_from_tampering(tmp_path):
    store = RunCheckpoints(tmp_path)
    assert store.load() is None
    store.last.parent.mkdir()
    store.last.write_bytes(b"")
    with pytest.raises(CheckpointDamaged, match="no readable checkpoint .*last.pt is empty.*--force"):
        store.load()
    store.last.write_bytes(pickle.dumps(MakesAFile(tmp_path / "x"), protocol=2))
    with pytest.raises(CheckpointUnsafe, match="imports"):
        store.load()
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- disk full, on a real filesystem


@pytest.fixture
def small_disk(tmp_path):
    """mount(size) -> a tmpfs of `size` bytes; skipped where the test may not mount one."""
    mounts = []

    def mount(size: int) -> Path:
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_disk_full_while_writing_a_checkpoint(tmp_path, small_disk, capsys):
    sets = ["--set", "train.ckpt_every=1", "--set", "train.steps=30"]
    assert main(["--model", TINY, *SMOKE, "--out", str(tmp_path / "sizing"), *sets]) == 0
    size = (tiny_run(tmp_path / "sizing", sets[1::2]) / CHECKPOINT).stat().st_size
    pages = -(-size // 4096)  # a tmpfs counts whole pages
    disk = small_disk((2 * pages + 8) * 4096)  # last.pt, prev.pt and the small files (< 6 pages) fit; a third never
    out = disk / "results"
    capsys.readouterr()
    code, _, err = run_cli(["--model", TINY, *SMOKE, "--out", str(out), *sets], capsys)
    directory = tiny_run(out, sets[1::2])
    assert code == 2 and one_error_line(err), err
    assert f"could not write {directory / CHECKPOINT} at step" in err and "No space left on device" in err
    assert "the previous checkpoint is intact" in err and "re-run the same command to resume" in err
    failed = int(err.split(" at step ")[1].split(" ")[0])
    assert failed >= 3
    assert read(directory / CHECKPOINT)["step"] == failed - 1 and read(directory / PREV)["step"] == failed - 2
    assert sorted(p.name for p in (directory / "checkpoints").iterdir()) == ["last.pt", "prev.pt"]  # no temp file


# ---------------------------------------------------------------- --force, --re-eval, messages


def test_finished_force_and_re_eval(out_dir, capsys):
    argv = ["--model", TINY, *SMOKE, "--out", str(out_dir)]
    assert main(argv) == 0
    directory = tiny_run(out_dir)
    summary = (directory / "eval" / "summary.csv").read_text()
    log = (directory / "train.jsonl").read_text()
    losses = [(r["step"], r["train/loss"]) for r in map(json.loads, log.splitlines())]
    capsys.readouterr()

    code, out, _ = run_cli(argv, capsys)
    assert code == 0 and f"already finished: {directory} (use --force to retrain, --re-eval to re-score)" in out

    ckpt = (directory / CHECKPOINT).read_bytes()
    (directory / "eval" / "summary.csv").write_text("stale")
    code, out, _ = run_cli([*argv, "--re-eval"], capsys)
    assert code == 0 and "resuming" not in out
    assert (directory / "eval" / "summary.csv").read_text() == summary  # scored again, the same
    assert (directory / CHECKPOINT).read_bytes() == ckpt and (directory / "train.jsonl").read_text() == log

    (directory / "train.jsonl").write_text('{"step": 99}\n')  # anything of the old training must go
    code, out, _ = run_cli([*argv, "--force"], capsys)
    assert code == 0 and "resuming" not in out
    again = [
        (r["step"], r["train/loss"]) for r in map(json.loads, (directory / "train.jsonl").read_text().splitlines())
    ]
    assert again == losses  # trained again from step 1, the same
    assert read(directory / CHECKPOINT)["step"] == 4

    code, _, err = run_cli([*argv, "--force", "--re-eval"], capsys)
    assert code == 2 and "give one of them" in err and one_error_line(err)


def test_re_eval_of_an_untrained_or_unfinished_run_is_refused(out_dir, capsys):
    argv = ["--model", TINY, *SMOKE, "--out", str(out_dir)]
    code, _, err = run_cli([*argv, "--re-eval"], capsys)
    assert code == 2 and "nothing to re-score" in err and "without --re-eval" in err and one_error_line(err)
    assert not (out_dir / "runs").exists()
    assert main(argv) == 0
    directory = tiny_run(out_dir)
    (directory / CHECKPOINT).unlink()  # prev.pt, at step 2 of 4, is what is left
    capsys.readouterr()
    code, _, err = run_cli([*argv, "--re-eval"], capsys)
    assert code == 2 and "step 2 of 4" in err and "has not finished" in err


def test_checkpoint_of_another_config_names_the_keys(out_dir, capsys):
    argv = ["--model", TINY, *SMOKE, "--out", str(out_dir)]
    assert main(argv) == 0
    directory = tiny_run(out_dir)
    state = read(directory / CHECKPOINT)
    state["config_hash"], state["config"]["train"]["lr"] = "deadbeef", 0.5
    torch.save(state, directory / CHECKPOINT)
    (directory / "eval" / "summary.csv").unlink()
    before = (directory / CHECKPOINT).read_bytes()
    capsys.readouterr()
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and one_error_line(err), err
    assert f"{directory / CHECKPOINT} was written under config deadbeef (train.lr=0.5 there" in err
    assert "--force to discard it and retrain from scratch" in err
    assert (directory / CHECKPOINT).read_bytes() == before


# ---------------------------------------------------------------- signals and the run lock (real processes)

LONG_SETS = ["train.steps=100000", "train.ckpt_every=100000"]  # runs until a signal stops it
LONG = ["--model", TINY, *SMOKE, *(a for s in LONG_SETS for a in ("--set", s))]


def log_step(directory: Path) -> int:
    try:
        return json.loads((directory / "train.jsonl").read_text().splitlines()[-1])["step"]
    except (OSError, IndexError, ValueError, KeyError):
        return 0


def start(out: Path, tag: str, *extra: str) -> tuple[subprocess.Popen, Path, Path]:
    """bench.py in a subprocess; its stdout and stderr go to files (read while it runs)."""
    stdout, stderr = out.parent / f"{tag}.out", out.parent / f"{tag}.err"
    proc = subprocess.Popen(
        [sys.executable, "bench.py", *LONG, "--out", str(out), *extra],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=stdout.open("w"),
        stderr=stderr.open("w"),
    )
    return proc, stdout, stderr


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 120, stderr: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            shown = stderr.read_text()[-4000:] if stderr is not None else ""
            raise AssertionError(f"gave up waiting for {what} (exit {proc.poll()})\n{shown}")
        time.sleep(0.05)


def stopped_at(err: str, name: str, directory: Path) -> int:
    """The step of 'error: interrupted by SIG... at step N of M: saved <last.pt>; re-run ...'."""
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: interrupted by {name} at step ") and "Traceback" not in err, err
    assert f"saved {directory / CHECKPOINT}; re-run the same command to resume" in line
    return int(line.split(" at step ")[1].split(" ")[0])


def test_sigint_saves_the_current_step_and_exits_130(tmp_path):
    out = tmp_path / "results"
    directory = resolve_config(TINY, "mmnist", "smoke", sets=LONG_SETS).run_dir(out)
    proc, _, stderr = start(out, "a")
    wait_for(lambda: log_step(directory) >= 2, proc, "two training steps")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    step = stopped_at(stderr.read_text(), "SIGINT", directory)
    assert step >= 2 and read(directory / CHECKPOINT)["step"] == step == log_step(directory)
    assert not list(directory.rglob("*.tmp"))


def test_one_process_per_run_directory_wait_then_resume_after_sigterm(tmp_path):
    out = tmp_path / "results"
    directory = resolve_config(TINY, "mmnist", "smoke", sets=LONG_SETS).run_dir(out)
    first, _, first_err = start(out, "first")
    wait_for(lambda: log_step(directory) >= 1, first, "the first process to train")

    second, _, second_err = start(out, "second")
    third, third_out, third_err = start(out, "third", "--wait")  # both start at once: they share the wait
    assert second.wait(timeout=120) == 2
    err = second_err.read_text()
    assert one_error_line(err) and f"{directory} is in use by process {first.pid} on " in err and "--wait" in err
    wait_for(lambda: f"waiting for process {first.pid}" in third_err.read_text(), third, "--wait to wait")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 143
    step = stopped_at(first_err.read_text(), "SIGTERM", directory)
    wait_for(lambda: log_step(directory) > step, third, "the waiting process to resume")
    third.send_signal(signal.SIGTERM)
    assert third.wait(timeout=60) == 143
    assert f"resuming from step {step} of 100000" in third_out.read_text()
    assert stopped_at(third_err.read_text(), "SIGTERM", directory) > step


@pytest.mark.slow
def test_sigterm_under_torchrun_stops_every_rank_at_the_same_step(tmp_path):
    out = tmp_path / "results"
    sets = [*LONG_SETS, "train.batch_size=4"]
    directory = resolve_config(TINY, "mmnist", "smoke", sets=sets).run_dir(out)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "bench.py"]
    stderr = tmp_path / "torchrun.err"
    proc = subprocess.Popen(
        [*torchrun, *LONG, "--set", "train.batch_size=4", "--out", str(out)],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=stderr.open("w"),
    )
    wait_for(lambda: log_step(directory) >= 2, proc, "two training steps under torchrun", timeout=300, stderr=stderr)
    proc.send_signal(signal.SIGTERM)  # the agent forwards it to both workers
    proc.wait(timeout=120)  # the agent itself exits 1 with torch's own SignalException
    lines = [line for line in stderr.read_text().splitlines() if line.startswith("error: interrupted by SIGTERM")]
    assert len(lines) == 2 and lines[0] == lines[1]  # both ranks, at the same step
    step = int(lines[0].split(" at step ")[1].split(" ")[0])
    assert read(directory / CHECKPOINT)["step"] == step == log_step(directory)
