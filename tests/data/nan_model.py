"""A model whose loss turns NaN at its third training step (for the non-finite-loss test)."""

import torch

from models import VideoModel


class NanAtStep3(VideoModel):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.calls = 0

    def loss(self, video):
        self.calls += 1
        loss = (video.mean() - self.w) ** 2
        if self.calls == 3:
            loss = loss * float("nan")
        return loss, {"mse": loss.detach()}

    def predict(self, context, horizon, n_samples=1):
        frame = context[:, -1:].clamp(0, 1)  # (B, 1, C, H, W)
        return frame[:, None].expand(-1, n_samples, horizon, -1, -1, -1).clone()
