"""`bench.py data ...`: list, prepare, verify, and importing your own folder of videos (issue 11).

Fixtures are made here with PyAV and PIL: frame t of source video `seed` is flat at
level(t, seed) (tests/test_datasets_prepare.py), so every stored clip is matched by value to
the source video it came from.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_datasets_prepare import TOL, frame_means, level, make_official, ramp  # tests/ is on sys.path

import datasets.video
from benchmarks.cli import main
from datasets.video import write_video

SMOKE = ["--preset", "smoke", "--no-progress"]


@pytest.fixture
def root(tmp_path, monkeypatch):
    path = tmp_path / "data"
    monkeypatch.setenv("CWBENCH_DATA", str(path))
    return path


def png_frames(folder, frames):
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(folder / f"{t:04d}.png")


def make_folder(tmp_path):
    """6 videos of 4 kinds; returns (folder, {seed: frames})."""
    src = tmp_path / "mine"
    (src / "clips").mkdir(parents=True)
    write_video(src / "clips" / "a.mp4", ramp(60, seed=1, H=80, W=96))  # cropped to 80x80, resized to 64
    write_video(src / "clips" / "b.avi", ramp(52, seed=2))
    png_frames(src / "frames" / "v3", ramp(50, seed=3))
    png_frames(src / "frames" / "v4", ramp(55, seed=4))
    np.save(src / "arrays.npy", np.stack([ramp(48, seed=5, C=1)[..., 0], ramp(48, seed=6, C=1)[..., 0]]))
    (src / "README.txt").write_text("not a video: ignored")
    return src, {1: 60, 2: 52, 3: 50, 4: 55, 5: 48, 6: 48}


def match_source(clip, lengths) -> int:
    """The seed whose level sequence this clip (T, H, W, C) shows, from its start."""
    means = frame_means(clip)
    for seed, n in lengths.items():
        if len(means) <= n and np.abs(means - level(np.arange(len(means)), seed)).max() < TOL:
            return seed
    raise AssertionError(f"clip matches no source video: {means[:5]}")


def test_folder_import_is_usable_by_name_everywhere(tmp_path, root, capsys):
    src, lengths = make_folder(tmp_path)
    argv = ["data", "prepare", "folder", "--source", str(src), "--name", "mine", "--test-fraction", "0.34"]
    assert main([*argv, "--no-progress"]) == 0
    assert "use it as: python bench.py --model cwvae --dataset mine" in capsys.readouterr().out
    manifest = json.loads((root / "mine" / "default" / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "folder"
    train, test = (np.load(root / "mine" / "default" / f"{s}.npy") for s in ("train", "test"))
    # 6 items, round(0.34 * 6) = 2 in test; clips of the shortest video of each split; 3 channels (videos)
    assert len(train) == 4 and len(test) == 2 and train.shape[2:] == (64, 64, 3) and test.shape[2:] == (64, 64, 3)
    seeds = [match_source(c, lengths) for c in (*train, *test)]
    assert sorted(seeds) == [1, 2, 3, 4, 5, 6]  # every video once, in order, flat gray in all channels
    assert train.shape[1] == min(lengths[s] for s in seeds[:4]) and test.shape[1] == min(lengths[s] for s in seeds[4:])
    # found by name: --list, data list, a smoke run
    assert main(["--list"]) == 0 and "mine" in capsys.readouterr().out
    assert main(["data", "list"]) == 0
    assert "mine" in capsys.readouterr().out
    from benchmarks.commands.data import rows

    (row,) = [r for r in rows() if r["name"] == "mine"]
    assert (
        row["ready"]
        and row["command"]
        == f"python bench.py data prepare folder --source {src} --name mine --size 64 --test-fraction 0.34"
    )
    results = tmp_path / "results"
    assert main(["--model", "cwvae", "--dataset", "mine", "--out", str(results), *SMOKE]) == 0
    (run,) = (results / "runs" / "mine" / "cwvae").iterdir()
    config = (run / "config.yaml").read_text()
    assert f"test_length: {test.shape[1]}" in config and "channels: 3" in config
    assert (run / "eval" / "summary.csv").exists()


def test_folder_with_train_and_test_subfolders_stays_gray(tmp_path, root):
    src = tmp_path / "split"
    (src / "train").mkdir(parents=True)
    np.save(src / "train" / "a.npy", np.stack([ramp(40, seed=s, C=1) for s in (1, 2, 3)]))  # (3, 40, 64, 64, 1)
    png_frames(src / "test" / "v", ramp(45, seed=4, H=128, W=128, C=1))  # 128 -> 64: 2x2 block means
    np.savez(src / "test" / "b.npz", x=np.stack([ramp(90, seed=5, C=1)[..., 0]]))
    code = main(["data", "prepare", "folder", "--source", str(src), "--name", "gray", "--test-length", "40",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    train, test = (np.load(root / "gray" / "default" / f"{s}.npy") for s in ("train", "test"))
    assert train.shape == (3, 40, 64, 64, 1) and test.shape == (1 + 2, 40, 64, 64, 1)  # 90 frames: 2 clips of 40
    assert [match_source(c, {1: 40, 2: 40, 3: 40}) for c in train] == [1, 2, 3]
    assert np.abs(frame_means(test[1]) - level(np.arange(40, 80), 5)).max() < TOL  # second clip of b.npz
    from benchmarks.config import resolve_config

    cfg = resolve_config("cwvae", "gray", "smoke")
    assert (cfg.data.channels, cfg.data.size, cfg.data.test_length, cfg.data.n_train) == (1, 64, 40, 3)
    assert cfg.model.channels == 1


def test_folder_errors_name_each_file(tmp_path, root, capsys):
    src, _ = make_folder(tmp_path)
    np.save(src / "floats.npy", np.zeros((2, 10, 64, 64), np.float32))
    (src / "frames" / "v4" / "0010.png").write_bytes(b"\x89PNG broken")
    argv = ["data", "prepare", "folder", "--source", str(src), "--name", "mine", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "floats.npy: holds float32 [2, 10, 64, 64]; expected uint8" in err and "astype(np.uint8)" in err
    assert "0010.png: cannot be read as an image" in err and "--allow-skip" in err
    assert main([*argv, "--allow-skip"]) == 0
    manifest = json.loads((root / "mine" / "default" / "manifest.json").read_text())
    skipped = [b["file"] for split in manifest["source"]["skipped"].values() for b in split]
    assert len(skipped) == 2
    assert main(["data", "prepare", "folder", "--source", str(src), "--name", "kth"]) == 2
    assert "is a built-in dataset" in capsys.readouterr().err
    assert main(["data", "prepare", "folder", "--source", str(tmp_path / "nope"), "--name", "x"]) == 2
    assert main(["data", "prepare", "folder", "--name", "x"]) == 2


def test_unprepared_dataset_exits_2_with_the_prepare_command(tmp_path, root, capsys):
    out = tmp_path / "results"
    assert main(["--model", "cwvae", "--dataset", "kth", "--out", str(out), *SMOKE]) == 2
    err = capsys.readouterr().err
    assert "dataset 'kth' is not prepared" in err and "python bench.py data prepare kth --source" in err
    assert not (out / "runs").exists()
    assert main(["data", "prepare", "minerl"]) == 2  # no --source: the command says what to give
    assert "data prepare minerl --source /path/to/minerl_navigate.zip" in capsys.readouterr().err


def test_data_list_shows_state_size_location_and_command(tmp_path, root, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("kth", "minerl", "mazes", "mmnist", "mmnist_official"):
        assert name in out
    assert "gqn_mazes.zip" in out and "yes" not in out
    source = make_official(tmp_path, "mazes", n=(2, 1))
    assert main(["data", "prepare", "mazes", "--source", str(source), "--no-progress"]) == 0
    assert main(["data", "prepare", "mmnist", "--preset", "smoke", "--no-progress"]) == 0
    capsys.readouterr()
    from benchmarks.commands.data import rows

    table = {(r["name"], r["location"]): r for r in rows()}
    mazes = table[("mazes", str(root / "mazes" / "default"))]
    assert mazes["ready"] and mazes["train"] == "2 x 300 = 600" and mazes["test"] == "1 x 300 = 300"
    smoke = [r for (n, _), r in table.items() if n == "mmnist" and r["ready"]]
    assert len(smoke) == 1 and smoke[0]["train"] == "8 x 24 = 192"  # the smoke variant, found on disk


def test_verify_alias_and_interrupt(tmp_path, root, capsys, monkeypatch):
    source = make_official(tmp_path, "mmnist_official", n=(1, 1))
    assert main(["data", "prepare", "mmnist-official", "--source", str(source), "--no-progress"]) == 0
    assert main(["data", "verify", "mmnist_official"]) == 0
    path = root / "mmnist_official" / "default" / "train.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["data", "verify", "mmnist_official"]) == 2
    assert "does not match the manifest" in capsys.readouterr().err

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.video, "read_video", interrupted)
    code = main(["data", "prepare", "mazes", "--source", str(make_official(tmp_path, "mazes")), "--no-progress"])
    assert code == 130 and "run the same command again to resume" in capsys.readouterr().err.lower()
