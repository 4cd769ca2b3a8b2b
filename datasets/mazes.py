"""GQN Mazes (Eslami et al. 2018), as videos by Saxena et al. 2021.

Official archive: https://archive.org/download/gqn_mazes/gqn_mazes.zip, the file that the
official CW-VAE builder datasets/gqn_mazes/gqn_mazes.py downloads: `train/*.mp4` and
`test/*.mp4` at its top level, every video 300 frames of 64x64 RGB (the official loader's
_data_seq_len). The number of videos is not stated in the official code, so it is recorded
in the manifest but not checked against a reference count.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets.base import register_dataset
from datasets.prepare import OfficialVideoArchive, PreparedConfig


@dataclass(frozen=True)
class MazesConfig(PreparedConfig):
    channels: int = 3  # RGB
    test_length: int = 300  # official eval_seq_len: the whole test video
    dec_std: float = 0.1  # official configs/mazes.yml dec_stddev


@register_dataset("mazes")
class GQNMazes(OfficialVideoArchive):
    """GQN Mazes: 300-frame videos of a scripted walk through random 3D mazes."""

    config_class = MazesConfig
    description = "GQN Mazes, from gqn_mazes.zip (300-frame videos, 64x64 RGB)"
    paper_name = "GQN Mazes"
    archive_names = ("gqn_mazes.zip",)
    frames = {"train": 300, "test": 300}
    stored_channels = 3
    layout = "train/*.mp4 and test/*.mp4 (300 frames of 64x64 RGB each)"
