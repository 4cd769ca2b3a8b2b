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
    assert not out_dir.exists()  # nothing written, not even --out


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
    assert not out_dir.exists()  # nothing written, not even --out


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
    assert not out_dir.exists()  # nothing written, not even --out


# ---------------------------------------------------------------- everything checked before the first step


@pytest.mark.parametrize(
    "item, expected",
    [
        ("train.steps=-5", "train.steps=-5 is out of range; valid: >= 0"),
        ("train.epochs=0", "train.epochs=0.0 is out of range; valid: > 0"),
        ("train.batch_size=0", "train.batch_size=0 is out of range; valid: >= 1"),
        ("train.lr=-1", "train.lr=-1.0 is out of range; valid: > 0"),
        ("train.lr=.nan", "train.lr=nan is out of range; valid: > 0"),
        ("train.clip_grad=-1", "train.clip_grad=-1.0 is out of range; valid: >= 0"),
        ("train.seq_len=0", "train.seq_len=0 is out of range; valid: >= 1"),
        ("train.log_every=0", "train.log_every=0 is out of range; valid: >= 1"),
        ("train.ckpt_every=-2", "train.ckpt_every=-2 is out of range; valid: >= 1"),
        ("train.amp=fp16", "train.amp=fp16 is not a valid choice; valid: off, bf16"),
        ("eval.context=0", "eval.context=0 is out of range; valid: >= 1"),
        ("eval.n_samples=0", "eval.n_samples=0 is out of range; valid: >= 1"),
        ("eval.n_videos=-1", "eval.n_videos=-1 is out of range; valid: >= 0"),
        ("eval.chunk=0", "eval.chunk=0 is out of range; valid: >= 1"),
        ("eval.metrics=[ssim,foo]", "eval.metrics=[ssim,foo]: foo is not a valid choice; valid: ssim, psnr, lpips"),
        ("eval.metrics=[ssim,ssim]", "eval.metrics=[ssim,ssim] names ssim twice"),
        ("eval.fvd_lengths=[16,4]", "eval.fvd_lengths=[16,4]: 4 is out of range; valid: each >= 9 (I3D"),
        ("eval.fvd_videos=1", "eval.fvd_videos=1 is out of range; valid: 0 or >= 2"),
        ("eval.fvd_frames=3", "eval.fvd_frames=3 is out of range; valid: 0 or >= 9"),
        ("data.speed=4", "data.speed=4.0 is out of range; valid: in (0, 3.0]"),
        ("data.channels=2", "data.channels=2 is not a valid choice; valid: 1, 3"),
        ("data.n_test=0", "data.n_test=0 is out of range; valid: >= 1"),
        ("model.stoch=0", "model.stoch=0 is out of range; valid: >= 1"),
        ("model.min_std=-1", "model.min_std=-1.0 is out of range; valid: >= 0"),
    ],
)
def test_every_key_is_checked_against_its_range_before_anything(item, expected, out_dir, capsys):
    code, err = run_cli(["--model", "cwvae", *SMOKE, "--out", str(out_dir), "--set", item], capsys)
    assert code == 2 and expected in err and only_one_line(err), err
    assert not out_dir.exists()  # refused while the config is built: not even --out is made


def test_the_declared_ranges_hold_for_every_default_and_preset():
    import dataclasses

    from benchmarks.config import EvalConfig, TrainConfig, check_ranges, describe_range
    from datasets import dataset_names, get_dataset_class
    from models import get_model_class, model_names

    assert describe_range({"min": 9, "or": 0}) == "0 or >= 9"
    assert describe_range({"above": 0, "max": 3}) == "in (0, 3]"
    assert describe_range({"min": 1, "why": "x"}) == ">= 1 (x)"
    classes = [TrainConfig, EvalConfig] + [get_dataset_class(d).config_class for d in dataset_names()]
    classes += [c for c in (get_model_class(m).config_class for m in model_names()) if c is not None]
    for cls in classes:  # every default of every config class is inside its own range
        defaults = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls) if f.name != "name"}
        check_ranges(cls, defaults, cls.__name__)
    for model in model_names():  # and every model at every preset resolves (the ranges are checked there)
        for preset in ("smoke", "quick", "paper"):
            resolve_config(model, "mmnist", preset)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0"])
def test_a_device_that_is_none_names_the_choices_and_this_machine(device, out_dir, capsys):
    code, err = run_cli(["--model", "copy_last", *SMOKE, "--out", str(out_dir), "--device", device], capsys)
    assert code == 2 and f"--device {device}" in err and "valid: cpu, cuda, cuda:N, auto" in err, err
    assert "this machine has cpu" in err and only_one_line(err)
    assert not out_dir.exists()  # nothing written, not even --out


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_cuda_on_a_machine_without_it(out_dir, capsys):
    code, err = run_cli(["--model", "copy_last", *SMOKE, "--out", str(out_dir), "--device", "cuda:1"], capsys)
    assert code == 2 and "CUDA is not available" in err and "--device cpu" in err and only_one_line(err)


def test_a_negative_seed_names_seed(out_dir, capsys):
    code, err = run_cli(["--model", "copy_last", *SMOKE, "--out", str(out_dir), "--seed", "-1"], capsys)
    assert code == 2 and "--seed -1: a seed is an integer in [0, 4294967295]" in err and only_one_line(err)
    assert not out_dir.exists()


@pytest.mark.parametrize(
    "sets, expected",
    [
        (["eval.metrics=[ssim,fvd]", "eval.n_videos=1"], "FVD would cover 1 video(s)"),
        (["eval.metrics=[ssim,fvd]", "data.test_length=44"], "FVD would cover 8 predicted frame(s)"),
        (["eval.use_obs=[true,false]"], "eval.use_obs=[true,false]: one flag per level is needed"),
        (["data.n_train=20"], "data.n_train=20 but mmnist has"),
    ],
)
def test_evaluation_settings_are_checked_before_training(sets, expected, out_dir, capsys, monkeypatch):
    import benchmarks.pipeline as pipeline

    monkeypatch.setattr(pipeline, "train", lambda *a, **k: pytest.fail("trained before the check"))
    # nor a first use's download of LPIPS / I3D weights (which also prints): the cheap checks come first
    monkeypatch.setattr(pipeline, "load_metric_networks", lambda *a: pytest.fail("weights fetched before the check"))
    if sets[0].startswith("data.n_train"):  # a prepared set holds fewer videos than asked for
        monkeypatch.setattr(pipeline, "load_checked", lambda ds, split, cfg: ds.load(split)[:5])
    argv = ["--model", "cwvae", *SMOKE, "--out", str(out_dir)] + [a for s in sets for a in ("--set", s)]
    code, err = run_cli(argv, capsys)
    assert code == 2 and expected in err and only_one_line(err), err
    assert not out_dir.exists()  # nothing written, not even --out


def test_more_test_videos_asked_for_than_there_are_says_so(out_dir, capsys):
    code = main(["--model", "copy_last", *SMOKE, "--out", str(out_dir), "--set", "eval.n_videos=1000"])
    err = capsys.readouterr().err
    assert code == 0 and "warning: eval.n_videos=1000 but mmnist has 2 test videos: all 2 are evaluated" in err
    import pandas as pd

    summary = pd.read_csv(next((out_dir / "runs").rglob("summary.csv")))
    assert (summary["n"] == 2).all()  # the videos evaluated


# ---------------------------------------------------------------- damaged run files


@pytest.fixture(scope="module")
def three_finished_runs(tmp_path_factory):
    """Finished runs of the naive references (nothing trained): copy_last seeds 0 and 1, random_frame seed 0."""
    out = tmp_path_factory.mktemp("three") / "results"
    for model, seed in (("copy_last", "0"), ("copy_last", "1"), ("random_frame", "0")):
        assert main(["--model", model, *SMOKE, "--out", str(out), "--seed", seed]) == 0
    return out


@pytest.fixture
def three_runs(three_finished_runs, out_dir):
    """A fresh copy of them in `out_dir`: {(model, 's<seed>'): run directory}."""
    import shutil

    shutil.copytree(three_finished_runs, out_dir)
    return {(p.parent.parent.name, p.parent.name.split("-")[1]): p.parent for p in out_dir.rglob("config.yaml")}


DAMAGES = {
    "truncated status.json": ("status.json", lambda p: p.write_text(p.read_text()[:20]), "truncated or empty"),
    "empty status.json": ("status.json", lambda p: p.write_text(""), "truncated or empty"),
    "bad YAML config.yaml": ("config.yaml", lambda p: p.write_text("model_name: [copy_last\n"), "not YAML: expected"),
    "binary config.yaml": ("config.yaml", lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "not text"),
    "truncated run.json": ("run.json", lambda p: p.write_text("{"), "truncated or empty"),
    "empty summary.csv": ("eval/summary.csv", lambda p: p.write_text(""), "No columns to parse"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_run_is_skipped_by_readers_and_refused_on_rerun(damage, three_runs, out_dir, capsys):
    from rundir.run import collect

    name, spoil, expected = DAMAGES[damage]
    bad = three_runs[("copy_last", "s1")]
    spoil(bad / name)
    capsys.readouterr()
    skipped = []
    runs = collect(out_dir, skipped)
    assert len(runs) == 2 and [s.directory for s in skipped] == [bad] and str(bad / name) in skipped[0].reason
    err = capsys.readouterr().err
    assert f"warning: skipped run {bad}: {bad / name} is damaged ({expected}" in err and err.count("\n") == 1, err
    before = (bad / name).read_bytes()
    code, err = run_cli(["--model", "copy_last", *SMOKE, "--out", str(out_dir), "--seed", "1"], capsys)
    assert code == 2 and f"{bad / name} is damaged ({expected}" in err and only_one_line(err), err
    assert "--force to redo the run from scratch, or delete" in err
    assert (bad / name).read_bytes() == before  # nothing touched


def test_report_leaderboard_and_compare_go_on_past_a_damaged_run(three_runs, out_dir, capsys):
    from reports.leaderboard import write_leaderboard
    from rundir.run import check_run_files

    bad = three_runs[("copy_last", "s1")]
    (bad / "status.json").write_text('{"params": 0, "steps"')
    assert main(["report", "--runs", str(out_dir)]) == 0
    err = capsys.readouterr().err
    assert f"skipped run {bad}: {bad / 'status.json'} is damaged" in err and "Traceback" not in err
    index = (out_dir / "report" / "index.md").read_text()
    assert f"run `{bad.relative_to(out_dir).as_posix()}` left out: {bad / 'status.json'} is damaged" in index
    assert write_leaderboard(out_dir)["seeds"].tolist() == [1, 1]  # copy_last: seed 0 only; random_frame
    args = ["compare", "copy_last", "random_frame", "--out", str(out_dir), "--format", "csv", "--resamples", "200"]
    assert main(args) == 0
    # --force redoes the run, which repairs it
    assert main(["--model", "copy_last", *SMOKE, "--out", str(out_dir), "--seed", "1", "--force"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {bad / 'status.json'} is damaged" in err and "removed it (--force redoes it)" in err
    check_run_files(bad)


def test_a_suite_with_a_damaged_run_is_refused_before_anything_runs(three_runs, out_dir, tmp_path, capsys):
    import yaml

    spec = tmp_path / "refs.yaml"
    spec.write_text(yaml.safe_dump({"preset": "smoke", "seeds": 2, "grid": {"models": ["copy_last"]}}))
    bad = three_runs[("copy_last", "s1")] / "status.json"
    bad.write_text('{"params": 0')
    code, err = run_cli(["--suite", str(spec), "--out", str(out_dir), "--no-progress"], capsys)
    assert code == 2 and f"{bad} is damaged" in err and "mmnist/copy_last/s1" in err and only_one_line(err), err
    assert not (out_dir / "suites").exists()


# ---------------------------------------------------------------- suites and options that go together


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"runs": [{"model": "cwvae"}, {"model": "cwvea"}]}, "suite bad runs[1] (cwvea): unknown model 'cwvea'"),
        ({"grid": {"models": ["copy_last", "nope"]}}, "suite bad grid.models: nope: unknown model 'nope'"),
        ({"grid": {"models": ["copy_last"], "datasets": ["mmnist", "mnist"]}}, "grid.datasets: mnist: unknown dataset"),
        ({"runs": [{"model": "cwvae", "set": ["train.lr=-1"]}]}, "run mmnist/cwvae/s0: train.lr=-1.0 is out of range"),
    ],
)
def test_a_suite_naming_what_does_not_exist_is_refused(spec, expected, tmp_path, out_dir, capsys):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"preset": "smoke", **spec}))
    code, err = run_cli(["--suite", str(path), "--out", str(out_dir), "--no-progress"], capsys)
    assert code == 2 and expected in err and only_one_line(err), err
    assert not out_dir.exists()  # nothing written, not even --out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--model", "copy_last", "--seeds", "2"], "--seeds goes with --suite NAME"),
        (
            ["--model", "copy_last", "--jobs", "2", "--launcher", "slurm"],
            "--launcher and --jobs go with --suite NAME (a suite of runs)\n",
        ),
        (
            ["--model", "copy_last", "--seeds", "2", "--jobs", "2"],
            "--seeds and --jobs go with --suite NAME (a suite of runs); a single run (--model) takes --seed N",
        ),
        (["--suite", "smoke", "--model", "cwvae"], "--suite does not go with --model:"),
        (["--suite", "smoke", "--seed", "1", "--dataset", "kth"], "--suite does not go with --dataset and --seed"),
        (["--suite", "smoke", "--partition", "gpu"], "--partition goes with --suite --launcher slurm"),
        (["--suite", "smoke", "--launcher", "slurm", "--jobs", "2"], "--jobs goes with --launcher local"),
        (["--suite", "smoke", "--launcher", "k8s"], "--launcher k8s: valid: local, slurm"),
        (["--suite", "smoke", "--jobs", "0"], "--jobs 0: must be >= 1"),
    ],
)
def test_options_that_do_not_go_together(argv, expected, out_dir, capsys):
    code, err = run_cli([*argv, "--out", str(out_dir), "--no-progress"], capsys)
    assert code == 2 and expected in err and only_one_line(err), err
    assert not out_dir.exists()


def test_a_suite_prints_runs_done_of_total_and_an_eta(monkeypatch, capsys):
    from types import SimpleNamespace

    import benchmarks.commands.run as run_command

    clock = iter([0.0, 0.0, 100.0, 250.0, 300.0, 300.0])  # made and planned at 0 s, three runs done, planned again
    monkeypatch.setattr(run_command.time, "monotonic", lambda: next(clock))
    progress = run_command.SuiteProgress()
    plan = SimpleNamespace(suite="s", preset="smoke", seeds=1, chains=[[1, 2], [3]], finished=["x"])
    progress.plan(SimpleNamespace(**vars(plan), missing_datasets=[], substitutes=[]), "three runs")
    progress.result({"run": "mmnist/cwvae/s0", "status": "done", "seconds": 100})
    progress.result({"run": "mmnist/rssm/s0", "status": "failed", "error": "ValueError: x"})
    progress.result({"run": "mmnist/vta/s0", "status": "done", "seconds": 50})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "suite s (three runs): preset smoke, 1 seed(s); 3 run(s) to do, 1 already finished"
    assert out[1] == "  [1/3; ETA 3.3 min] done    mmnist/cwvae/s0  (100 s)"  # 100 s per run so far, 2 left
    assert out[2] == "  [2/3; ETA 2.1 min] FAILED  mmnist/rssm/s0: ValueError: x"
    assert out[3] == "  [3/3] done    mmnist/vta/s0  (50 s)"
    progress.plan(SimpleNamespace(**vars(plan), missing_datasets=[], substitutes=[]), "")
    assert capsys.readouterr().out.startswith("suite s: preset smoke")  # no description, no empty brackets


# ---------------------------------------------------------------- your own data


def short_clips(folder: Path, frames: int, n: int = 3) -> Path:
    """A folder of `n` gray videos of `frames` frames (one .npy), a bright square moving right."""
    folder.mkdir(parents=True)
    videos = np.zeros((n, frames, 64, 64), np.uint8)
    for t in range(frames):
        videos[:, t, 20:36, t % 48 : t % 48 + 16] = 255
    np.save(folder / "videos.npy", videos)
    return folder


@pytest.mark.parametrize(
    "frames, expected",
    [
        (30, "the test clips of short have 30 frames: the protocol's 36 context frames leave nothing to predict "
         "(longest usable horizon: 0 frames)"),
        (40, "the test clips of short have 40 frames: after the 36 context frames the longest usable horizon is 4 "
         "predicted frame(s), too short for FVD (it needs 9)"),
    ],
)  # fmt: skip
def test_own_videos_too_short_for_the_protocol_are_said_at_preparation(frames, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CWBENCH_DATA", str(tmp_path / "data"))
    src = short_clips(tmp_path / "src", frames)
    assert main(["data", "prepare", "folder", "--source", str(src), "--name", "short", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {expected}" in err, err
    out = tmp_path / "results"
    code, err = run_cli(["--model", "copy_last", *SMOKE, "--dataset", "short", "--out", str(out)], capsys)
    if frames <= 36:  # a run says what can be done: not "raise data.test_length", which is impossible
        assert code == 2 and "nothing is left to predict" in err and "data prepare folder --source" in err, err
        assert "raise data.test_length" not in err and only_one_line(err) and not (out / "runs").exists()
    else:
        assert code == 0


def test_long_enough_own_videos_say_their_horizon(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CWBENCH_DATA", str(tmp_path / "data"))
    src = short_clips(tmp_path / "src", 50)
    assert main(["data", "prepare", "folder", "--source", str(src), "--name", "fifty", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert "the test clips of fifty have 50 frames: 36 context frames, then up to 14 predicted" in captured.out


def test_a_bad_file_in_your_own_folder_is_not_an_archive_to_download_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CWBENCH_DATA", str(tmp_path / "data"))
    src = short_clips(tmp_path / "src", 50)
    np.save(src / "floats.npy", np.zeros((1, 50, 64, 64), np.float32))
    code, err = run_cli(["data", "prepare", "folder", "--source", str(src), "--name", "mixed", "--no-progress"], capsys)
    assert code == 2 and "floats.npy: holds float32" in err, err
    assert f"fix, convert or remove them in {src} or pass --allow-skip" in err and "download" not in err


# ---------------------------------------------------------------- what the user sees


def test_training_in_a_log_prints_plain_lines_with_step_loss_speed_and_eta(out_dir, capsys):
    from benchmarks.progress import TrainProgress

    argv = ["--model", "cwvae", "--preset", "smoke", "--out", str(out_dir), "--set", "train.log_every=2"]
    assert main(argv) == 0  # progress on, stdout captured: not a terminal
    out = capsys.readouterr().out
    assert "\n\n" not in out.split("run directory:")[0]  # no empty line left behind by a bar (evaluation's)
    lines = [x for x in out.splitlines() if x.startswith("train cwvae:")]
    assert [x.split("  ")[0] for x in lines] == ["train cwvae: step 2/4 (50%)", "train cwvae: step 4/4 (100%)"]
    assert "loss=" in lines[0] and "frames/s" in lines[0] and "ETA" in lines[0] and "ETA" not in lines[1]
    p = TrainProgress("m", total=100, start=40, plain=True)
    p.t0 -= 30.0  # 30 s for the 20 steps since the resume: 1.5 s per step, 40 to go
    assert p.line(60, "loss=1.00") == "train m: step 60/100 (60%)  loss=1.00  ETA 60 s"


def test_the_leaderboard_on_a_narrow_console_cuts_no_name(capsys):
    import pandas as pd

    from reports.leaderboard import print_leaderboard

    name, variant = "a_model_with_a_rather_long_registry_name", "model.levels=2, model.factor=4, train.lr=0.001"
    row = dict(model=name, variant=variant, dataset="mmnist", preset="smoke", seeds=1, params=0, train_time_s=0.0)
    row.update(ssim=0.5, ssim_ci_low=0.4, ssim_ci_high=0.6, psnr=11.0, psnr_ci_low=10.0, psnr_ci_high=12.0)
    print_leaderboard(pd.DataFrame([{**row, "ci_over": "videos"}]))  # captured: an 80-column console
    out = capsys.readouterr().out
    assert name in out and variant in out and "0.500 ± 0.100†" in out and "11.00 ± 1.00†" in out and "…" not in out


@pytest.fixture
def figures(monkeypatch):
    """Every figure the reports save, kept open for inspection: [(path name, figure)]."""
    import reports.curves
    import reports.table1
    import reports.training

    kept = []
    for module in (reports.curves, reports.table1, reports.training):
        monkeypatch.setattr(module, "save", lambda fig, path: kept.append((Path(path).name, fig)) or Path(path))
    return kept


def test_curve_bands_stay_in_the_metrics_range_and_say_what_they_are(figures):
    import pandas as pd

    from reports.curves import plot_curves

    t = np.arange(1, 6)
    for metric, (low, high), level in (("ssim", (-1, 1), 0.95), ("psnr", (0, np.inf), 1.0)):
        curves = pd.DataFrame(dict(entry="m", t=t, mean=level, ci_low=level - 3, ci_high=level + 3, reference=False))
        curves = curves.assign(ci_over="videos", n_seeds=1, higher_is_better=True)
        plot_curves(curves, "title", metric, Path(f"{metric}.png"), {"m": 0})
        ax = figures[-1][1].axes[0]
        (band,) = ax.collections
        ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        assert ys.min() == max(level - 3, low) and ys.max() == min(level + 3, high)
        note = " ".join(x.get_text() for x in ax.texts)
        shown = "[-1, 1]" if metric == "ssim" else ">= 0"
        assert f"bands: 95% t-interval of the mean over videos, clipped to {shown}" in note


def test_mean_rank_figure_shows_cells_and_marks_a_model_ranked_on_fewer(figures):
    import pandas as pd

    from reports.table1 import mean_rank_plot

    frame = pd.DataFrame(
        dict(source="ours:quick", model=["CW-VAE", "RSSM", "VTA"], mean_rank=[1.5, 2.0, 1.0], cells=[4, 4, 2])
    ).assign(total_cells=4)
    mean_rank_plot(frame, Path("mean_rank.png"))
    ax = figures[-1][1].axes[0]
    labels = [x.get_text() for x in ax.get_yticklabels()]
    texts = [x.get_text() for x in ax.texts]
    assert labels == ["RSSM", "CW-VAE", "VTA *"]  # best at the top; VTA ranked on 2 of 4 cells only
    assert texts[:3] == [" 2.00 (4/4 cells)", " 1.50 (4/4 cells)", " 1.00 (2/4 cells)"]
    assert "ranked on fewer (dataset, metric) cells" in texts[3]
    assert [bool(b.get_hatch()) for b in ax.patches] == [False, False, True]


def test_every_panel_of_the_training_curves_has_labelled_axes(figures, tmp_path):
    from test_reports import write_fake_run  # tests/ is on sys.path

    from reports.training import write_training
    from rundir.run import collect

    write_fake_run(tmp_path, "cwvae", levels={"ssim": 0.5}, kl=[3.0, 1.0, 0.5])
    write_training(collect(tmp_path), tmp_path / "report", {})
    axes = figures[-1][1].axes
    assert len(axes) == 4  # loss, then KL of levels 1-3
    assert all(ax.get_xlabel() == "optimizer step" and ax.get_ylabel() for ax in axes)
    assert axes[3].get_ylabel() == "KL of level 3\n(nats per sequence)"
    for ax in axes:  # KL over one decade stays linear, with ticks to read it by (symlog showed none)
        low, high = ax.get_ylim()
        assert ax.get_yscale() == "linear" and sum(low <= t <= high for t in ax.get_yticks()) >= 2
    import pandas as pd

    from reports.training import spans_decades

    assert spans_decades([pd.Series([0.01, 5.0])]) and not spans_decades([pd.Series([0.0, 0.83, 0.86])])


def test_a_finished_run_has_its_own_sample_strip(out_dir, monkeypatch):
    from PIL import Image

    import reports.samples

    drawn = []
    real = reports.samples.strip_png
    monkeypatch.setattr(reports.samples, "strip_png", lambda *a, **k: drawn.append(a) or real(*a, **k))
    argv = ["--model", "copy_last", *SMOKE, "--out", str(out_dir), "--set", "eval.n_samples=2"]
    assert main(argv) == 0
    run = next((out_dir / "runs").rglob("config.yaml")).parent
    with Image.open(run / "samples" / "strip.png") as png:
        assert png.format == "PNG" and png.width > png.height > 0
    saved = np.load(run / "samples" / "samples.npz")
    ((gt, rows, context, title, path),) = drawn
    assert np.array_equal(gt, saved["gt"][0]) and context == 36 and [n for n, _ in rows] == ["sample 1", "sample 2"]
    assert np.array_equal(rows[1][1], saved["pred"][0, 1])
    assert title == "copy_last on mmnist (preset smoke, seed 0): test video 1, open loop after 36 frames"


def test_sample_gifs_wrap_long_names_instead_of_cutting_them(tmp_path):
    from PIL import Image

    from reports.samples import GIF_SCALE, LINE, strip_gif

    gt = np.zeros((40, 16, 16, 1), np.uint8)
    name = "CW-VAE [model.levels=2, model.factor=4, train.lr=0.001] (s0)"  # 60 characters, panels of 5
    strip_gif(gt, [(name, gt[36:])], 36, tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as gif:
        lines = -(-len(name) // (16 * GIF_SCALE // 6))  # the whole name, 5 characters a line
        assert gif.height >= 16 * GIF_SCALE + LINE * (lines + 1) - LINE  # header grown to hold it
