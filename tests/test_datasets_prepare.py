"""Official-archive datasets (KTH, MineRL, Mazes, official Moving MNIST) prepared end to end.

Every test builds tiny archives in the official layout with PyAV (datasets/video.write_video,
mpeg4 at qscale 2, so decoded values are within a few levels of what was encoded). Frame t of
video `seed` is a constant gray level `level(t, seed)`: a stored frame's mean says which
source frame it came from, so order, clipping and dropped frames are checked by value.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import datasets.prepare
import datasets.video
from benchmarks.cli import main
from benchmarks.config import resolve_config
from datasets import DatasetNotReady, get_dataset
from datasets.kth import CLIP, official_names
from datasets.prepare import PrepareError
from datasets.video import area_matrix, to_square, write_video

REPO = Path(__file__).resolve().parents[1]
TOL = 6.0  # gray levels: mpeg4 at qscale 2 on flat frames errs by <= 5; a frame off by one is off by >= 31


def level(t, seed: int = 0):
    """Gray level of frame t of video `seed`: consecutive frames differ by 37 levels (an encoder
    cannot skip them as unchanged), distinct for t < 211."""
    return 20 + (37 * np.asarray(t) + 7 * seed) % 211


def ramp(T: int, seed: int = 0, H: int = 64, W: int = 64, C: int = 3) -> np.ndarray:
    """(T, H, W, C) uint8 frames, frame t flat at level(t, seed)."""
    return np.broadcast_to(level(np.arange(T), seed)[:, None, None, None], (T, H, W, C)).astype(np.uint8)


def frame_means(arr: np.ndarray) -> np.ndarray:
    return np.asarray(arr, dtype=np.float64).mean(axis=(-3, -2, -1))  # (..., T)


# ---------------------------------------------------------------- official layouts

LAYOUTS = {  # dataset: (zip name, folder inside the zip, split folders, frames per split, channels)
    "minerl": ("minerl_navigate.zip", "minerl_navigate/", ("train", "test"), (500, 500), 3),
    "mazes": ("gqn_mazes.zip", "", ("train", "test"), (300, 300), 3),
    "mmnist_official": ("moving_mnist_2digit.zip", "", ("train-seq100", "test-seq1000"), (100, 1000), 1),
}


def make_official(tmp: Path, name: str, n=(2, 1), zipped=True, extra: dict | None = None) -> Path:
    """Tiny archive of `name` in its official layout; returns the zip (or the extracted folder)."""
    zip_name, prefix, folders, frames, C = LAYOUTS[name]
    tree = tmp / f"{name}_tree"
    for s, (folder, T, count) in enumerate(zip(folders, frames, n)):
        (tree / prefix / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_video(tree / prefix / folder / f"{i}.mp4", ramp(T, seed=10 * s + i, C=C))
    for rel, data in (extra or {}).items():
        (tree / prefix / rel).write_bytes(data)
    if not zipped:
        return tree
    path = tmp / zip_name
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(tree.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(tree).as_posix())
    return path


def make_kth(tmp: Path, videos: dict[str, int], zipped=True) -> Path:
    """KTH folder: {file name: frames}. 160x120 gray AVIs whose 16-pixel side bands are white
    (the center crop must remove them), packed into <action>.zip files at the zip root."""
    root = tmp / "kth"
    raw = tmp / "kth_raw"
    raw.mkdir(parents=True, exist_ok=True)
    for i, (name, T) in enumerate(sorted(videos.items())):
        frames = ramp(T, seed=i, H=120, W=160, C=1).copy()
        frames[:, :, :16] = 255  # outside the 120x120 center (columns 20..139), on 8-pixel
        frames[:, :, 144:] = 255  # DCT block edges so the codec does not ring into the center
        write_video(raw / name, frames)
    root.mkdir(exist_ok=True)
    if not zipped:
        return raw
    for action in {n.split("_")[1] for n in videos}:
        with zipfile.ZipFile(root / f"{action}.zip", "w") as z:
            for f in sorted(raw.glob(f"*_{action}_*.avi")):
                z.write(f, f.name)
    return root


KTH_SMALL = {  # persons 1-2 train, 17 test
    "person01_walking_d1_uncomp.avi": 230,  # 2 train clips of 100
    "person02_boxing_d1_uncomp.avi": 120,  # 1 train clip
    "person17_walking_d1_uncomp.avi": 150,  # 1 test clip of 136
    "person17_boxing_d2_uncomp.avi": 290,  # 2 test clips
}


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A fresh data root for this test."""
    path = tmp_path / "data"
    monkeypatch.setenv("CWBENCH_DATA", str(path))
    return path


def dataset(name: str, **kw):
    from benchmarks.config import resolve_data_config

    return get_dataset(resolve_data_config(name, **kw))


# ---------------------------------------------------------------- frames


def test_area_resize_is_exact_area_averaging():
    """120 -> 64 equals: repeat every pixel 8x8 (960 = 120*8), then average 15x15 blocks (960 = 64*15)."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (3, 120, 120, 1)).astype(np.uint8)
    fine = img.astype(np.float64).repeat(8, axis=1).repeat(8, axis=2)  # (3, 960, 960, 1)
    reference = fine.reshape(3, 64, 15, 64, 15, 1).mean(axis=(2, 4))
    out = to_square(img, 64)
    assert out.dtype == np.uint8 and np.abs(out - reference).max() <= 0.5 + 1e-3  # rounding only
    A = area_matrix(120, 64)
    assert np.allclose(A.sum(1), 1.0) and np.allclose(A.sum(0), 64 / 120)  # every input pixel counts equally
    # an integer factor is the block mean
    assert np.allclose(area_matrix(128, 64) @ np.arange(128.0), np.arange(128.0).reshape(64, 2).mean(1))


def test_to_square_crops_the_center():
    frames = np.zeros((2, 120, 160, 1), np.uint8)
    frames[:, :, 20:140] = 100  # the 120x120 center; the side bands (0) must go
    out = to_square(frames, 64)
    assert out.shape == (2, 64, 64, 1) and (out == 100).all()


# ---------------------------------------------------------------- official archives end to end


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_official_archive_prepares_with_values(name, tmp_path, root):
    source = make_official(tmp_path, name)
    ds = dataset(name)
    manifest = ds.prepare(source, allow_skip=name == "minerl", progress=False)  # minerl: 3 of 961+225 videos
    _, _, _, (t_train, t_test), C = LAYOUTS[name]
    train, test = ds.load("train"), ds.load("test")
    assert train.shape == (2, t_train, 64, 64, C) and test.shape == (1, t_test, 64, 64, C)
    for i in range(2):  # sorted 0.mp4, 1.mp4, every frame in order
        assert np.abs(frame_means(train[i]) - level(np.arange(t_train), i)).max() < TOL
    assert np.abs(frame_means(test[0]) - level(np.arange(t_test), 10)).max() < TOL
    assert manifest["source"]["kind"] == "archive" and manifest["source"]["files"] == {"train": 2, "test": 1}
    ds.verify("train")
    ds.verify("test")
    assert not list(root.rglob("*.partial")) and not list(root.rglob(".staging"))


def test_extracted_folder_gives_the_same_arrays(tmp_path, root, monkeypatch):
    ds = dataset("mazes")
    ds.prepare(make_official(tmp_path, "mazes"), progress=False)
    from_zip = np.array(ds.load("train"))
    monkeypatch.setenv("CWBENCH_DATA", str(tmp_path / "other"))
    ds2 = dataset("mazes")
    ds2.prepare(make_official(tmp_path / "x", "mazes", zipped=False), progress=False)
    assert np.array_equal(from_zip, ds2.load("train"))


def test_kth_person_split_crop_and_clips(tmp_path, root):
    source = make_kth(tmp_path, KTH_SMALL)
    ds = dataset("kth")
    with pytest.raises(PrepareError) as e:  # 4 of the 599 files: each missing file is named
        ds.prepare(source, progress=False)
    assert "KTH train: found 2 videos, the official archive has 383" in str(e.value)
    assert "person01_boxing_d1_uncomp.avi" in str(e.value) and "--allow-skip" in str(e.value)
    ds.prepare(source, allow_skip=True, progress=False)
    train, test = ds.load("train"), ds.load("test")
    assert train.shape == (3, CLIP["train"], 64, 64, 1) and test.shape == (3, CLIP["test"], 64, 64, 1)
    # sorted names: person01_walking (seed 1) -> 2 clips, person02_boxing (seed 2) -> 1 clip
    seeds = {n: i for i, n in enumerate(sorted(KTH_SMALL))}
    expect = [
        (seeds["person01_walking_d1_uncomp.avi"], 0),
        (seeds["person01_walking_d1_uncomp.avi"], 100),
        (seeds["person02_boxing_d1_uncomp.avi"], 0),
    ]
    for clip, (seed, start) in zip(train, expect):
        assert np.abs(frame_means(clip) - level(np.arange(start, start + 100), seed)).max() < TOL
    # the white side bands are cropped away: the outer columns hold the frame's level too (a resize
    # of the whole 160-pixel width would put the 255 band there, off by ~130 levels on average)
    edges = train[0][:, :, [0, -1], 0].astype(float).mean(axis=(1, 2))  # (100,)
    assert np.abs(edges - level(np.arange(100), expect[0][0])).mean() < TOL
    # test: person17_boxing_d2 (290 frames -> 2 clips of 136), person17_walking_d1 (150 -> 1)
    s = seeds["person17_boxing_d2_uncomp.avi"]
    assert np.abs(frame_means(test[1]) - level(np.arange(136, 272), s)).max() < TOL
    assert ds.manifest()["source"]["preprocessing"]["split"] == "persons 01-16 train, 17-25 test"


def test_kth_official_counts():
    train, test = official_names("train"), official_names("test")
    assert len(train) == 383 and len(test) == 216  # 599 files: person13_handclapping_d3 is missing
    assert "person16_running_d4_uncomp.avi" in train and "person17_boxing_d1_uncomp.avi" in test


def test_kth_extracted_folder(tmp_path, root):
    source = make_kth(tmp_path, KTH_SMALL, zipped=False)
    ds = dataset("kth")
    ds.prepare(source, allow_skip=True, progress=False)
    assert ds.load("train").shape[0] == 3 and ds.is_ready()


# ---------------------------------------------------------------- clear errors


def test_corrupt_truncated_and_short_files_are_named(tmp_path, root):
    good = make_official(tmp_path / "g", "mazes", zipped=False)
    video = (good / "train" / "0.mp4").read_bytes()
    extra = {"train/2.mp4": b"not a video at all", "train/3.mp4": video[: len(video) // 3]}
    source = make_official(tmp_path, "mazes", extra=extra)
    short = tmp_path / "short.mp4"
    write_video(short, ramp(120, C=3))
    with zipfile.ZipFile(source, "a") as z:
        z.write(short, "train/4.mp4")
    ds = dataset("mazes")
    with pytest.raises(PrepareError) as e:
        ds.prepare(source, progress=False)
    msg = str(e.value)
    assert "3 train file(s) of gqn_mazes.zip cannot be used" in msg
    assert "gqn_mazes.zip:train/2.mp4: cannot be decoded" in msg
    assert "gqn_mazes.zip:train/3.mp4:" in msg and "truncated" in msg
    assert "gqn_mazes.zip:train/4.mp4: has 120 frames, expected 300" in msg
    assert not ds.is_ready() and "train" not in (ds.manifest() or {}).get("splits", {})
    with pytest.raises(DatasetNotReady, match="data prepare mazes --source"):
        ds.ensure_ready()
    # --allow-skip: the good videos, the skipped ones in the manifest (and no second decode)
    manifest = ds.prepare(source, allow_skip=True, progress=False)
    assert ds.load("train").shape[0] == 2
    assert sorted(b["file"] for b in manifest["source"]["skipped"]["train"]) == [
        "gqn_mazes.zip:train/2.mp4",
        "gqn_mazes.zip:train/3.mp4",
        "gqn_mazes.zip:train/4.mp4",
    ]
    assert np.abs(frame_means(ds.load("train")[1]) - level(np.arange(300), 1)).max() < TOL


def test_wrong_size_truncated_zip_missing_source_and_layout(tmp_path, root):
    ds = dataset("mazes")
    tree = make_official(tmp_path / "a", "mazes", zipped=False)
    write_video(tree / "train" / "0.mp4", ramp(300, H=32, W=48, C=3))
    with pytest.raises(
        PrepareError, match=r"train/0.mp4: has 48x32x3 frames \(width x height x channels\), expected 64x64x3"
    ):
        ds.prepare(tree, progress=False)
    archive = make_official(tmp_path / "b", "mazes")
    cut = tmp_path / "cut" / "gqn_mazes.zip"
    cut.parent.mkdir()
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(PrepareError, match="is not a readable zip archive .* download it again"):
        ds.prepare(cut, progress=False)
    with pytest.raises(PrepareError, match="does not exist"):
        ds.prepare(tmp_path / "nowhere.zip", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match=r"holds no train/\*.mp4 videos; the official gqn_mazes.zip holds"):
        ds.prepare(tmp_path / "empty", progress=False)
    minerl = make_official(tmp_path / "c", "minerl")
    with pytest.raises(PrepareError, match="found 2 videos, the official archive has 961"):
        dataset("minerl").prepare(minerl, progress=False)


def test_a_second_source_needs_force(tmp_path, root):
    ds = dataset("mazes")
    ds.prepare(make_official(tmp_path / "a", "mazes", n=(2, 1)), progress=False)
    other = make_official(tmp_path / "b", "mazes", n=(3, 1))
    assert ds.prepare(make_official(tmp_path / "a2", "mazes", n=(2, 1)), progress=False)  # same files: nothing to do
    with pytest.raises(PrepareError, match="already prepared .* pass --force"):
        ds.prepare(other, progress=False)
    ds.prepare(other, force=True, progress=False)
    assert ds.load("train").shape[0] == 3


# ---------------------------------------------------------------- killed preparations


class Boom(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def count_and_kill(monkeypatch, kill_at: int | None):
    """Wrap read_video: count calls, raise Boom on call number `kill_at`."""
    real = datasets.video.read_video
    calls = []

    def wrapped(*a, **k):
        calls.append(1)
        if kill_at is not None and len(calls) == kill_at:
            raise Boom()
        return real(*a, **k)

    monkeypatch.setattr(datasets.video, "read_video", wrapped)
    monkeypatch.setattr("datasets.kth.read_video", wrapped)
    return calls


def test_killed_direct_preparation_is_detected_and_resumed(tmp_path, root, monkeypatch):
    monkeypatch.setattr(datasets.prepare, "CHECKPOINT_SECONDS", 0.0)  # record progress after every video
    source = make_official(tmp_path, "mazes", n=(4, 1))
    ds = dataset("mazes")
    calls = count_and_kill(monkeypatch, kill_at=3)
    with pytest.raises(Boom):
        ds.prepare(source, progress=False)
    assert not ds.is_ready() and not (ds.directory / "train.npy").exists()
    assert (ds.directory / ".train.npy.partial").exists()
    with pytest.raises(DatasetNotReady):
        ds.ensure_ready()
    calls = count_and_kill(monkeypatch, kill_at=None)
    ds.prepare(source, progress=False)
    assert len(calls) == 2 + 1  # train videos 2 and 3 (0 and 1 were recorded), then the test video
    assert ds.is_ready() and not (ds.directory / ".train.npy.partial").exists()
    for i in range(4):
        assert np.abs(frame_means(ds.load("train")[i]) - level(np.arange(300), i)).max() < TOL


def test_killed_between_splits_keeps_the_finished_split(tmp_path, root, monkeypatch):
    source = make_official(tmp_path, "mmnist_official", n=(2, 1))
    ds = dataset("mmnist_official")
    count_and_kill(monkeypatch, kill_at=3)  # the test video
    with pytest.raises(Boom):
        ds.prepare(source, progress=False)
    assert "train" in ds.manifest()["splits"] and not ds.is_ready()
    calls = count_and_kill(monkeypatch, kill_at=None)
    ds.prepare(source, progress=False)
    assert len(calls) == 1 and ds.is_ready()


def test_killed_staged_preparation_resumes(tmp_path, root, monkeypatch):
    source = make_kth(tmp_path, KTH_SMALL)
    ds = dataset("kth")
    count_and_kill(monkeypatch, kill_at=2)
    with pytest.raises(Boom):
        ds.prepare(source, allow_skip=True, progress=False)
    assert not ds.is_ready() and ds.manifest() is None
    calls = count_and_kill(monkeypatch, kill_at=None)
    ds.prepare(source, allow_skip=True, progress=False)
    assert len(calls) == 3  # the first video was staged before the kill
    assert ds.load("train").shape == (3, 100, 64, 64, 1) and not (ds.directory / ".staging").exists()


KILL_SCRIPT = """
import sys, time
import datasets.video
real = datasets.video.read_video
def slow(*a, **k):
    time.sleep(0.4)
    return real(*a, **k)
datasets.video.read_video = slow
import datasets.prepare
datasets.prepare.CHECKPOINT_SECONDS = 0.0
from benchmarks.cli import main
sys.exit(main(["data", "prepare", "mazes", "--source", sys.argv[1], "--no-progress"]))
"""


@pytest.mark.slow
def test_sigkill_mid_preparation_then_rerun(tmp_path, root):
    """A real process killed with SIGKILL mid-split: nothing looks complete, the rerun finishes it."""
    source = make_official(tmp_path, "mazes", n=(8, 2))
    env = {**os.environ, "CWBENCH_DATA": str(root), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(source)], cwd=REPO, env=env)
    progress = root / "mazes" / "default" / ".train.progress.json"
    deadline = time.time() + 60
    while time.time() < deadline and not (progress.exists() and json.loads(progress.read_text())["next"] >= 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ds = dataset("mazes")
    assert not ds.is_ready() and (ds.directory / ".train.npy.partial").exists()
    assert main(["data", "prepare", "mazes", "--source", str(source), "--no-progress"]) == 0
    assert ds.is_ready() and ds.load("train").shape[0] == 8
    for i in range(8):
        assert np.abs(frame_means(ds.load("train")[i]) - level(np.arange(300), i)).max() < TOL
    ds.verify("train")


# ---------------------------------------------------------------- configs and runs


def test_train_count_comes_from_the_manifest(tmp_path, root):
    dataset("minerl").prepare(make_official(tmp_path, "minerl", n=(3, 1)), allow_skip=True, progress=False)
    cfg = resolve_config("cwvae", "minerl", "paper")
    assert (cfg.data.n_train, cfg.data.train_length, cfg.data.test_length, cfg.data.dec_std) == (3, 500, 500, 0.4)
    assert cfg.total_steps == round(600 * 3 * (500 // 100) / 50)  # 600 epochs (official) of 100-frame windows
    few = resolve_config("cwvae", "minerl", "smoke", sets=["data.n_train=2"])
    assert get_dataset(few.data).load("train").shape[0] == 2


@pytest.mark.parametrize("name", ["kth", "minerl", "mazes", "mmnist_official"])
def test_prepared_dataset_trains_and_evaluates_at_smoke(name, tmp_path, root, capsys):
    if name == "kth":
        source = make_kth(tmp_path, KTH_SMALL)
    else:
        source = make_official(tmp_path, name)
    assert main(["data", "prepare", name, "--source", str(source), "--allow-skip", "--no-progress"]) == 0
    out = tmp_path / "results"
    argv = ["--model", "cwvae", "--dataset", name, "--preset", "smoke", "--out", str(out), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    (run,) = (out / "runs" / name / "cwvae").iterdir()
    curves = (run / "eval" / "curves.csv").read_text().splitlines()
    assert (run / "eval" / "summary.csv").exists() and curves[0].startswith("metric")
    import pandas as pd

    frame = pd.read_csv(run / "eval" / "curves.csv")
    assert frame.t.max() == 48 - 36  # smoke test_length 48: 12 predicted frames
    shutil.rmtree(out)
