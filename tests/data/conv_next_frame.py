"""A deterministic model (no sampling): next frame = sigmoid(conv(previous frame)).

Used by the DDP test, where 2 processes on half batches must equal 1 process on the
global batch; a model that samples noise would draw different noise in each case.
"""

import torch
from torch import nn

from models import VideoModel


class ConvNextFrame(VideoModel):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 5, padding=2)

    def step(self, frames):  # (N, 1, H, W) -> (N, 1, H, W)
        return torch.sigmoid(self.conv(frames))

    def loss(self, video):
        B, T = video.shape[:2]
        pred = self.step(video[:, :-1].flatten(0, 1)).unflatten(0, (B, T - 1))
        mse = (pred - video[:, 1:]).pow(2).mean()  # a batch mean, as DDP's gradient averaging assumes
        return mse, {"mse": mse.detach()}

    def predict(self, context, horizon, n_samples=1):
        frame, out = context[:, -1], []
        for _ in range(horizon):
            frame = self.step(frame)
            out.append(frame)
        return torch.stack(out, 1)[:, None].expand(-1, n_samples, -1, -1, -1, -1).clone()
