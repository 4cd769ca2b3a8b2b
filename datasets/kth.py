"""KTH Action (Schuldt, Laptev, Caputo 2004), as the video-prediction literature uses it.

Source: the six zips of https://www.csc.kth.se/cvap/actions/ (boxing.zip, handclapping.zip,
handwaving.zip, jogging.zip, running.zip, walking.zip) holding `personXX_<action>_dY_uncomp.avi`
(25 persons x 6 actions x 4 scenarios = 600 files, of which person13_handclapping_d3 is
missing from the official release: 599 files, 160x120, 25 fps). `--source` is the folder
holding the six zips, or the folder they were extracted into (any depth).

Split by person, as SVG (Denton & Fergus 2018) and MCnet (Villegas et al. 2017): persons
01-16 train (383 files), 17-25 test (216 files).

Frames: FFmpeg's gray (luma) 160x120 -> center crop 120x120 (columns 20..139) -> area
(box) resize to 64x64 -> uint8 (rounded). The CW-VAE paper gives no KTH preprocessing;
this is the standard 64x64 gray KTH of the literature.

Clips: the files have different lengths, the stored format needs one length per split,
so each file is cut into non-overlapping clips from its start (the official CW-VAE loaders
cut MineRL/Mazes the same way) and the remainder is dropped:
- train: 100-frame clips, the paper's training sequence length;
- test: 136-frame clips = 36 context + 100 predicted frames. The paper's KTH figure shows
  predictions over about 100 frames ("CW-VAE predicts accurately for 50 time steps"), and
  a KTH file holds four repetitions of its action (the paper counts 290k frames in 600
  videos, ~480 per file), so each file should give at least one clip; a file shorter than
  one clip is reported as unusable (--allow-skip leaves it out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from datasets.base import SPLITS, register_dataset
from datasets.prepare import PreparedConfig, PreparedDataset, PrepareError, SourceReader, SplitJob, check_count
from datasets.video import VideoError, read_video, to_square

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
PERSONS = range(1, 26)
SCENARIOS = (1, 2, 3, 4)
KNOWN_MISSING = frozenset({"person13_handclapping_d3_uncomp.avi"})  # absent from the official zips
TEST_PERSONS = frozenset(range(17, 26))  # persons 17-25 test, 1-16 train
FRAME_WH = (160, 120)  # width, height of every KTH file
SIZE = 64
CLIP = {"train": 100, "test": 136}  # stored frames per clip (see the module docstring)
NAME = re.compile(r"person(\d\d)_(" + "|".join(ACTIONS) + r")_d([1-4])_uncomp\.avi$", re.IGNORECASE)


def official_names(split: str) -> list[str]:
    persons = [p for p in PERSONS if (p in TEST_PERSONS) == (split == "test")]
    names = [f"person{p:02d}_{a}_d{d}_uncomp.avi" for p in persons for a in ACTIONS for d in SCENARIOS]
    return [n for n in names if n not in KNOWN_MISSING]


def split_of(name: str) -> str:
    return "test" if int(NAME.search(name).group(1)) in TEST_PERSONS else "train"


@dataclass(frozen=True)
class KTHConfig(PreparedConfig):
    channels: int = 1  # gray
    test_length: int = 136  # 36 context + 100 predicted frames = one stored test clip
    dec_std: float = 0.1  # no official value: the paper tunes baselines' dec std in [0.1, 1] (see kth.yaml)


@register_dataset("kth")
class KTHAction(PreparedDataset):
    """KTH Action: people walking, jogging, running, boxing, hand-waving, clapping (64x64 gray)."""

    config_class = KTHConfig
    description = "KTH Action, from the six official zips (persons 1-16 train, 17-25 test; 64x64 gray)"
    paper_name = "KTH Action"
    paper_data = True
    archive_names = tuple(f"{a}.zip" for a in ACTIONS)
    source_hint = "/path/to/kth  # the folder holding boxing.zip ... walking.zip"

    def preprocessing(self) -> dict:
        return {
            "frames": "FFmpeg gray 160x120 -> center crop 120x120 -> area resize 64x64 -> uint8",
            "split": "persons 01-16 train, 17-25 test",
            "clips": f"non-overlapping from each file's start: train {CLIP['train']}, test {CLIP['test']} frames",
        }

    def jobs(self, reader: SourceReader, allow_skip: bool) -> list[SplitJob]:
        found: dict[str, object] = {}
        for e in reader.entries:
            if NAME.search(e.name) and e.name.lower() not in found:
                found[e.name.lower()] = e
        if not found:
            raise PrepareError(
                f"{reader.source} holds no KTH videos (personXX_<action>_dY_uncomp.avi); give the folder holding "
                "boxing.zip, handclapping.zip, handwaving.zip, jogging.zip, running.zip and walking.zip, "
                "or the folder they were extracted into"
            )
        jobs = []
        for split in SPLITS:
            expected = official_names(split)
            entries = [found[n] for n in sorted(found) if split_of(n) == split]
            missing = [n for n in expected if n not in found]
            check_count(len(entries), len(expected), f"KTH {split}", allow_skip, missing)
            if not entries:
                raise PrepareError(f"{reader.source} holds no KTH {split} videos (persons {_persons(split)})")
            jobs.append(
                SplitJob(
                    split=split,
                    items=entries,
                    names=[e.key for e in entries],
                    decode=lambda e: self.decode(reader, e),
                    frame_shape=(SIZE, SIZE, 1),
                    clip_length=CLIP[split],
                )
            )
        return jobs

    @staticmethod
    def decode(reader: SourceReader, entry) -> np.ndarray:
        """(T, 64, 64, 1) uint8 from one KTH file."""
        video = read_video(reader.read(entry), 1, entry.key)  # (T, 120, 160, 1)
        T, H, W, _ = video.shape
        if (W, H) != FRAME_WH:
            raise VideoError(entry.key, f"has {W}x{H} frames, every KTH file is {FRAME_WH[0]}x{FRAME_WH[1]}")
        return to_square(video, SIZE)


def _persons(split: str) -> str:
    return "17-25" if split == "test" else "01-16"
