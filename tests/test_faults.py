"""Faults and bad input: each gives one clear line, a non-zero exit, and nothing written or lost.

The SIGKILL resume tests run real subprocesses and are marked `slow` (make test-slow).
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import rundir.atomic
from benchmarks import config as config_module
from benchmarks.cli import main
from benchmarks.config import resolve_config
from benchmarks.trainer import CHECKPOINT
from datasets import get_dataset

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["--preset", "smoke", "--no-progress"]


def run_cli(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def only_one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("error: ")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--model", "cwvea"], "unknown model 'cwvea'; valid:"),
        (["--model", "cwvae", "--dataset", "minst"], "unknown dataset 'minst'; valid:"),
        (["--model", "cwvae", "--preset", "tiny"], "unknown preset 'tiny'; valid:"),
        (["--model", "cwvae", "--set", "train.stesp=3"], "did you mean train.steps?"),
        (["--model", "cwvae", "--set", "modle.levels=2"], "keys look like section.key"),
        (["--model", "cwvae", "--set", "train.steps=three"], "train.steps: expected int, got 'three'"),
        (["--model", "cwvae", "--set", "eval.context=30"], "multiple of 36"),
        (["--model", "cwvae", "--set", "data.test_length=36"], "leave nothing to predict"),
        (["--model", "cwvae", "--set", "train.seq_len=50"], "lower train.seq_len"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(argv, expected, out_dir, capsys):
    code, err = run_cli([*SMOKE, *argv, "--out", str(out_dir)], capsys)
    assert code == 2 and expected in err and only_one_line(err), err
    assert not (out_dir / "runs").exists()


def test_malformed_yaml_names_file_and_line(tmp_path, monkeypatch, out_dir, capsys):
    configs = tmp_path / "configs"
    import shutil

    shutil.copytree(config_module.CONFIG_DIR, configs)
    (configs / "models" / "cwvae.yaml").write_text("model:\n  levels: 3\n  factor: [6\ntrain: {}\n")
    monkeypatch.setattr(config_module, "CONFIG_DIR", configs)
    code, err = run_cli(["--model", "cwvae", *SMOKE, "--out", str(out_dir)], capsys)
    assert code == 2 and "cwvae.yaml:" in err and "malformed YAML" in err and only_one_line(err)


def test_output_directory_not_writable(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, err = run_cli(["--model", "copy_last", *SMOKE, "--out", str(blocker / "results")], capsys)
    assert code == 2 and "not writable" in err and "--out" in err and only_one_line(err)


def test_corrupt_dataset_file_is_named(tmp_path, monkeypatch, out_dir, capsys):
    monkeypatch.setenv("CWBENCH_DATA", str(tmp_path / "data"))
    cfg = resolve_config("copy_last", "mmnist", "smoke")
    data = get_dataset(cfg.data)
    data.ensure_ready(progress=False)
    test_file = data.directory / "test.npy"
    raw = bytearray(test_file.read_bytes())
    raw[-10] ^= 0xFF  # one flipped byte: same size, wrong checksum
    test_file.write_bytes(bytes(raw))
    code, err = run_cli(["--model", "copy_last", *SMOKE, "--out", str(out_dir)], capsys)
    assert code == 2 and "test.npy" in err and "sha256" in err and "data prepare mmnist" in err and only_one_line(err)
    assert not (out_dir / "runs").exists()


def test_truncated_dataset_file_is_named(tmp_path, monkeypatch, out_dir, capsys):
    monkeypatch.setenv("CWBENCH_DATA", str(tmp_path / "data"))
    data = get_dataset(resolve_config("copy_last", "mmnist", "smoke").data)
    data.ensure_ready(progress=False)
    train_file = data.directory / "train.npy"
    train_file.write_bytes(train_file.read_bytes()[:-4096])
    code, err = run_cli(["--model", "copy_last", *SMOKE, "--out", str(out_dir)], capsys)
    assert code == 2 and "train.npy" in err and only_one_line(err)


def test_videos_of_the_wrong_size(tmp_path, monkeypatch, out_dir, capsys):
    monkeypatch.setenv("CWBENCH_DATA", str(tmp_path / "data"))
    code, err = run_cli(["--model", "copy_last", *SMOKE, "--out", str(out_dir), "--set", "data.size=32"], capsys)
    assert code == 2 and "64x64x1 but the config expects 32x32x1" in err and only_one_line(err)


@pytest.mark.parametrize(
    "error, shown",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "(No space left on device)"),
        (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"), "unexpected pos"),
    ],
)
def test_disk_full_during_checkpoint_keeps_the_previous_one(error, shown, out_dir, monkeypatch, capsys):
    """torch.save failing as a full disk makes it fail (tests/test_checkpoints.py fills a real tmpfs)."""
    model = f"{REPO / 'tests' / 'data' / 'conv_next_frame.py'}:ConvNextFrame"
    argv = ["--model", model, *SMOKE, "--out", str(out_dir), "--set", "train.ckpt_every=1"]
    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f):
        calls["n"] += 1
        if calls["n"] == 3:  # the third checkpoint: write a little, then the disk is full
            f.write(b"partial")
            raise error
        return real_save(obj, f)

    monkeypatch.setattr(torch, "save", full_disk)
    code, err = run_cli(argv, capsys)
    assert code == 2 and shown in err and "previous checkpoint is intact" in err
    directory = resolve_config(model, "mmnist", "smoke", sets=["train.ckpt_every=1"]).run_dir(out_dir)
    assert f"could not write {directory / CHECKPOINT} at step 3" in err and only_one_line(err)
    assert torch.load(directory / CHECKPOINT, weights_only=True)["step"] == 2
    assert sorted(p.name for p in (directory / "checkpoints").iterdir()) == ["last.pt", "prev.pt"]  # no temp left
    monkeypatch.setattr(torch, "save", real_save)
    assert main(argv) == 0  # re-running resumes and finishes
    assert torch.load(directory / CHECKPOINT, weights_only=True)["step"] == 4


def test_nonfinite_loss_exit_3_names_step_and_terms(out_dir, capsys):
    model = f"{REPO / 'tests' / 'data' / 'nan_model.py'}:NanAtStep3"
    code, err = run_cli(["--model", model, *SMOKE, "--out", str(out_dir), "--set", "train.ckpt_every=1"], capsys)
    assert code == 3 and "step 3" in err and "mse=nan" in err and only_one_line(err)
    ckpt = next((out_dir / "runs").rglob("last.pt"))
    assert torch.load(ckpt, weights_only=True)["step"] == 2  # the last good checkpoint


def test_skip_nonfinite_is_opt_in_and_logged(out_dir):
    model = f"{REPO / 'tests' / 'data' / 'nan_model.py'}:NanAtStep3"
    assert main(["--model", model, *SMOKE, "--out", str(out_dir), "--set", "train.skip_nonfinite=true"]) == 0
    log = next((out_dir / "runs").rglob("train.jsonl")).read_text().splitlines()
    skipped = [json.loads(line) for line in log if "skipped_nonfinite" in line]
    assert len(skipped) == 1 and skipped[0]["step"] == 3


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with rundir.atomic.atomic_open(target) as f:
            f.write("new, half-written")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_killed_evaluation_reruns_cleanly(out_dir, monkeypatch):
    import benchmarks.evaluate as ev

    real = ev.frame_scores
    calls = {"n": 0}

    def dies(*a, **k):
        calls["n"] += 1
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "frame_scores", dies)
    assert main(["--model", "copy_last", *SMOKE, "--out", str(out_dir)]) == 130  # interrupted
    run = next((out_dir / "runs").rglob("config.yaml")).parent
    assert not (run / "eval" / "summary.csv").exists()
    monkeypatch.setattr(ev, "frame_scores", real)
    assert main(["--model", "copy_last", *SMOKE, "--out", str(out_dir)]) == 0
    assert (run / "eval" / "summary.csv").exists()


# ---------------------------------------------------------------- SIGKILL and resume (slow)

TRAIN_ARGS = [
    "--model",
    "cwvae",
    "--preset",
    "smoke",
    "--no-progress",
    "--set",
    "train.steps=14",
    "--set",
    "train.ckpt_every=1",
    "--set",
    "train.batch_size=4",
]

# Runs the CLI; with KILL_IN_CKPT=n the n-th checkpoint write SIGKILLs the process halfway through the temp file.
DRIVER = r"""
import contextlib, os, signal, sys
import benchmarks.checkpoint as checkpoint
n_kill = int(os.environ.get("KILL_IN_CKPT", "0"))
if n_kill:
    real_open, calls = checkpoint.atomic_open, {"n": 0}
    @contextlib.contextmanager
    def dying_open(path, mode="w", before_rename=None):
        calls["n"] += 1
        with real_open(path, mode, before_rename) as f:
            if calls["n"] == n_kill:
                f.write(b"x" * 4096); f.flush(); os.kill(os.getpid(), signal.SIGKILL)
            yield f
    checkpoint.atomic_open = dying_open
from benchmarks.cli import main
sys.exit(main(sys.argv[1:]))
"""


def logged_step(out: Path) -> int:
    """The last step in the run's train.jsonl (0 before the first line)."""
    logs = list((out / "runs").rglob("train.jsonl")) if (out / "runs").exists() else []
    try:
        lines = logs[0].read_text().splitlines() if logs else []
        return json.loads(lines[-1])["step"] if lines else 0
    except (json.JSONDecodeError, KeyError, IndexError):
        return 0  # a line being written


def run_driver(out: Path, env_extra: dict | None = None, kill_at_step: int | None = None) -> int:
    """Run the CLI; with kill_at_step, SIGKILL it as soon as its log reaches that step."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, *TRAIN_ARGS, "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if kill_at_step is not None:
        while proc.poll() is None:
            if logged_step(out) >= kill_at_step:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    proc.wait()
    return proc.returncode


def final_weights(out: Path) -> dict:
    ckpt = next((out / "runs").rglob("last.pt"))
    return torch.load(ckpt, weights_only=True)["model"]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_bit_identical(tmp_path):
    assert run_driver(tmp_path / "clean") == 0
    reference = final_weights(tmp_path / "clean")
    out = tmp_path / "killed"
    rng = np.random.default_rng(0)
    assert run_driver(out, {"KILL_IN_CKPT": "4"}) == -signal.SIGKILL  # killed during a checkpoint write
    kills = 1
    for target in sorted(rng.choice(np.arange(5, 14), size=3, replace=False)):  # then at random steps
        kills += run_driver(out, kill_at_step=int(target)) == -signal.SIGKILL
    while run_driver(out) != 0:
        pass
    assert kills >= 3
    for (name, a), b in zip(reference.items(), final_weights(out).values()):
        assert torch.equal(a, b), name
    log = [json.loads(line)["step"] for line in next((out / "runs").rglob("train.jsonl")).read_text().splitlines()]
    assert log == list(range(1, 15))
    leftovers = [p for p in out.rglob("*.tmp")]
    assert not leftovers


def test_unknown_suite(out_dir, capsys):
    code, err = run_cli(["--suite", "nightly", "--out", str(out_dir), "--no-progress"], capsys)
    assert code == 2 and "unknown suite 'nightly'; valid:" in err and only_one_line(err)


def test_weights_with_a_bad_checksum_are_refused_before_anything_is_written(tmp_path, monkeypatch, out_dir, capsys):
    import importlib

    from safetensors.numpy import save_file

    lpips_module = importlib.import_module("benchmarks.metrics.lpips")
    weights_module = importlib.import_module("benchmarks.metrics.weights")
    cache = tmp_path / "cache"
    (cache / "weights").mkdir(parents=True)
    name = weights_module.WEIGHTS[lpips_module.WEIGHTS].name
    save_file({"lin0.weight": np.zeros((1, 64, 1, 1), np.float32)}, str(cache / "weights" / f"{name}.safetensors"))
    monkeypatch.setenv("CWBENCH_CACHE", str(cache))
    monkeypatch.setattr(lpips_module, "_models", {})  # no network already loaded in this process
    argv = ["--model", "copy_last", *SMOKE, "--out", str(out_dir), "--set", "eval.metrics=[ssim,lpips]"]
    code, err = run_cli(argv, capsys)
    assert code == 2 and "not the pinned" in err and "weights fetch --force" in err and only_one_line(err)
    assert not (out_dir / "runs").exists()
