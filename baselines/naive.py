"""Naive references with nothing to train: they bound what "prediction" means.

- copy_last: repeats the last context frame for the whole horizon.
- random_frame: a random frame of the training set for each predicted frame
  (the "random frame" line of the paper's Fig 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.base import VideoModel, register_model


@dataclass(frozen=True)
class NaiveConfig:
    channels: int = 1  # image channels (filled from the dataset config)
    size: int = 64  # frame height and width
    dec_std: float = 1.0  # unused; accepted so dataset configs apply uniformly


@register_model("copy_last")
class CopyLast(VideoModel):
    """Predicts the last context frame forever."""

    config_class = NaiveConfig

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return video.new_zeros(()), {}

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, n_samples: int = 1) -> Tensor:
        last = context[:, -1]  # (B, C, H, W)
        return last[:, None, None].expand(-1, n_samples, horizon, -1, -1, -1).clone()


@dataclass(frozen=True)
class RandomFrameConfig(NaiveConfig):
    pool: int = 512  # training frames kept (a seeded uniform draw over the training set)


@register_model("random_frame")
class RandomFrame(VideoModel):
    """Predicts random training frames: the score of a model that has learned nothing of the context."""

    config_class = RandomFrameConfig

    def __init__(self, **hparams):
        super().__init__(**hparams)
        c = self.cfg
        self.register_buffer("frames", torch.zeros(c.pool, c.channels, c.size, c.size))
        self.register_buffer("filled", torch.zeros((), dtype=torch.bool))

    def observe_training_data(self, videos) -> None:
        """videos: array-like (N, T, H, W, C) uint8 of the training split."""
        rng = np.random.default_rng(0)
        n, t = videos.shape[:2]
        idx = rng.integers(0, n, self.cfg.pool)
        ts = rng.integers(0, t, self.cfg.pool)
        frames = np.stack([videos[i, j] for i, j in zip(idx, ts)])  # (pool, H, W, C)
        self.frames.copy_(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
        self.filled.fill_(True)

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return video.new_zeros(()), {}

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, n_samples: int = 1) -> Tensor:
        if not bool(self.filled):
            raise RuntimeError("random_frame has seen no training data: call observe_training_data(train_videos) first")
        B = context.shape[0]
        idx = torch.randint(0, self.cfg.pool, (B, n_samples, horizon))  # global RNG: seeded by the protocol
        return self.frames.to(context.device)[idx.to(context.device)]  # (B, n, horizon, C, H, W)
