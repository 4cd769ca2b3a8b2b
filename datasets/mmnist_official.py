"""The official Moving MNIST archive of CW-VAE, beside our generated Moving MNIST (datasets/mmnist.py).

Official archive: https://archive.org/download/moving_mnist/moving_mnist_2digit.zip, the file
that the official builder datasets/moving_mnist/moving_mnist.py downloads: `train-seq100/*.mp4`
(100-frame videos) and `test-seq1000/*.mp4` (1000-frame videos), 64x64, one channel (decoded
as FFmpeg's gray). Importing it lets a run compare the two sets: `--dataset mmnist_official`.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets.base import register_dataset
from datasets.prepare import OfficialVideoArchive, PreparedConfig


@dataclass(frozen=True)
class OfficialMovingMNISTConfig(PreparedConfig):
    channels: int = 1  # gray
    test_length: int = 1000  # official eval_seq_len: the whole test video
    dec_std: float = 1.0  # official configs/mmnist.yml dec_stddev


@register_dataset("mmnist_official")
class OfficialMovingMNIST(OfficialVideoArchive):
    """Moving MNIST of the official CW-VAE archive (2 digits, 64x64)."""

    config_class = OfficialMovingMNISTConfig
    description = "Moving MNIST, official archive moving_mnist_2digit.zip (train 100 / test 1000 frames, 64x64 gray)"
    paper_name = "Moving MNIST"
    archive_names = ("moving_mnist_2digit.zip",)
    split_folders = {"train": "train-seq100", "test": "test-seq1000"}
    frames = {"train": 100, "test": 1000}
    stored_channels = 1
    layout = "train-seq100/*.mp4 (100 frames) and test-seq1000/*.mp4 (1000 frames), 64x64"
