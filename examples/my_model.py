"""A small video model that lives outside the cwbench packages: copy this file to start your own.

    python bench.py check-model examples/my_model.py:TinyConvGRU
    python bench.py --model examples/my_model.py:TinyConvGRU --preset smoke

Each frame is encoded at 1/4 resolution, a convolutional GRU carries the state, and the
next frame is decoded from it. Gaussian noise channels enter the cell at every step, so
samples differ (drawn from torch's global RNG, which the protocol seeds). Hyperparameters
are the fields of TinyConvGRUConfig: set them in examples/my_model.yaml or with
`--set model.hidden=64`. The frame size must be a multiple of 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import VideoModel


@dataclass(frozen=True)
class TinyConvGRUConfig:
    hidden: int = 32  # channels of the recurrent state (at 1/4 of the frame size)
    noise: int = 4  # Gaussian noise channels fed to the cell at each step (0 = deterministic)
    channels: int = 1  # image channels (filled from the dataset config)


class TinyConvGRU(VideoModel):
    """Next-frame prediction with a convolutional GRU; trained by teacher forcing, predicts open loop."""

    config_class = TinyConvGRUConfig

    def __init__(self, **hparams):
        super().__init__(**hparams)
        c, h, n = self.cfg.channels, self.cfg.hidden, self.cfg.noise
        self.encode = nn.Sequential(nn.Conv2d(c, h, 4, 2, 1), nn.ReLU(), nn.Conv2d(h, h, 4, 2, 1), nn.ReLU())
        self.gates = nn.Conv2d(2 * h + n, 2 * h, 3, padding=1)  # update and reset gates
        self.candidate = nn.Conv2d(2 * h + n, h, 3, padding=1)
        self.decode = nn.Sequential(nn.ConvTranspose2d(h, h, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(h, c, 4, 2, 1))

    def step(self, frame: Tensor, state: Tensor | None) -> Tensor:
        """frame (N, C, H, W), state (N, hidden, H/4, W/4) or None -> next state."""
        x = self.encode(frame)  # (N, hidden, H/4, W/4)
        state = torch.zeros_like(x) if state is None else state
        noise = torch.randn(x.shape[0], self.cfg.noise, *x.shape[2:], device=x.device)
        update, reset = torch.sigmoid(self.gates(torch.cat([x, noise, state], 1))).chunk(2, 1)
        cand = torch.tanh(self.candidate(torch.cat([x, noise, reset * state], 1)))
        return (1 - update) * state + update * cand

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """video (B, T, C, H, W) -> mean binary cross-entropy of each next frame given the frames before it."""
        state, losses = None, []
        for t in range(video.shape[1] - 1):
            state = self.step(video[:, t], state)
            losses.append(F.binary_cross_entropy_with_logits(self.decode(state), video[:, t + 1]))
        loss = torch.stack(losses).mean()
        return loss, {"bce": loss.detach()}

    def predict(self, context: Tensor, horizon: int, n_samples: int = 1) -> Tensor:
        """context (B, Tc, C, H, W) -> (B, n_samples, horizon, C, H, W) in [0, 1]."""
        B, Tc, C, H, W = context.shape
        frames = context.repeat_interleave(n_samples, 0)  # (B*n, Tc, C, H, W): one row per sample
        state = None
        for t in range(Tc):
            state = self.step(frames[:, t], state)
        preds = []
        for _ in range(horizon):
            frame = torch.sigmoid(self.decode(state))  # (B*n, C, H, W)
            preds.append(frame)
            state = self.step(frame, state)
        return torch.stack(preds, 1).reshape(B, n_samples, horizon, C, H, W)
