"""Metrics as pure functions on tensors: per frame (N, C, H, W) -> (N,).

`FRAME_METRICS` names each per-frame metric with its function; the evaluation picks the
ones listed in `eval.metrics` (their directions: rundir.stats.METRICS). `ssim_official` and
`psnr_official` are the official CW-VAE evaluation's (the paper's numbers): they score the
unclipped predictions (`raw`), beside the standard `ssim` and `psnr` on clipped ones. FVD is a set metric (benchmarks.metrics.fvd). LPIPS and
I3D load their pretrained weights on first call, not at import (weights.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from benchmarks.metrics.frame import psnr, psnr_official, ssim, ssim_official
from benchmarks.metrics.fvd import frechet_distance, fvd
from benchmarks.metrics.i3d import i3d_features
from benchmarks.metrics.lpips import lpips


@dataclass(frozen=True)
class FrameMetric:
    name: str
    fn: Callable[[Tensor, Tensor], Tensor]  # (pred, target) (N, C, H, W) in [0, 1] -> (N,)
    official: Callable[[Tensor, Tensor], Tensor] | None = None  # eval.mode=official variant
    raw: bool = False  # scores the unclipped predictions (models that have them: CW-VAE), as the official eval


FRAME_METRICS: dict[str, FrameMetric] = {
    "ssim": FrameMetric("ssim", ssim, ssim_official),
    "psnr": FrameMetric("psnr", psnr, psnr_official),
    "lpips": FrameMetric("lpips", lpips),
    "ssim_official": FrameMetric("ssim_official", ssim_official, raw=True),
    "psnr_official": FrameMetric("psnr_official", psnr_official, raw=True),
}

__all__ = [
    "ssim",
    "psnr",
    "ssim_official",
    "psnr_official",
    "lpips",
    "i3d_features",
    "frechet_distance",
    "fvd",
    "FRAME_METRICS",
    "FrameMetric",
]
