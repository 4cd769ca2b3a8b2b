"""MineRL Navigate (Saxena et al. 2021, from the demonstrations of Guss et al. 2019).

Official archive: https://archive.org/download/minerl_navigate/minerl_navigate.zip, the file
that the official CW-VAE code downloads through the `minerl_navigate` TFDS builder:
`minerl_navigate/train/*.mp4` (961 videos) and `minerl_navigate/test/*.mp4` (225 videos),
every video 500 frames of 64x64 RGB, plus a metadata.json of actions (not used here).
Stored as decoded: train (961, 500, 64, 64, 3), test (225, 500, 64, 64, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets.base import register_dataset
from datasets.prepare import OfficialVideoArchive, PreparedConfig


@dataclass(frozen=True)
class MineRLConfig(PreparedConfig):
    channels: int = 3  # RGB
    test_length: int = 500  # official eval_seq_len: the whole test video
    dec_std: float = 0.4  # official configs/minerl.yml dec_stddev


@register_dataset("minerl")
class MineRLNavigate(OfficialVideoArchive):
    """MineRL Navigate: 500-frame Minecraft navigation videos."""

    config_class = MineRLConfig
    description = "MineRL Navigate, from minerl_navigate.zip (961 + 225 videos x 500 frames, 64x64 RGB)"
    paper_name = "MineRL Navigate"
    archive_names = ("minerl_navigate.zip",)
    frames = {"train": 500, "test": 500}
    stored_channels = 3
    official_counts = {"train": 961, "test": 225}
    layout = "minerl_navigate/train/*.mp4 and minerl_navigate/test/*.mp4 (500 frames of 64x64 RGB each)"
