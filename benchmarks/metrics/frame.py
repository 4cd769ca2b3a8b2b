"""SSIM and PSNR per frame, batched torch, on CPU or GPU.

Both equal scikit-image (`structural_similarity`, `peak_signal_noise_ratio`) with an
explicit data range; tests check it to 1e-4. SSIM uses skimage's defaults: a 7x7
uniform window, K1 = 0.01, K2 = 0.03, sample covariance (N / (N - 1)), the mean over
the window positions that fit inside the image (skimage's border crop), and the
mean over channels. The 7x7 box filter "valid" region is exactly skimage's
reflect-filtered image with (7 - 1) / 2 pixels cropped from every border.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"expected two (N, C, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, win_size: int = 7) -> Tensor:
    """x, y: (N, C, H, W) -> (N,) SSIM, averaged over channels and window positions."""
    _check(x, y)
    x, y = x.double(), y.double()  # float64 as skimage; cheap next to the models
    N, C, H, W = x.shape
    if min(H, W) < win_size:
        raise ValueError(f"frames of {H}x{W} are smaller than the SSIM window {win_size}")
    k1, k2 = 0.01, 0.03
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    npix = win_size * win_size
    cov_norm = npix / (npix - 1)  # skimage's use_sample_covariance=True

    def box(t: Tensor) -> Tensor:
        return F.avg_pool2d(t.reshape(N * C, 1, H, W), win_size, stride=1)  # (N*C, 1, H-6, W-6)

    ux, uy = box(x), box(y)
    uxx, uyy, uxy = box(x * x), box(y * y), box(x * y)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(N, C, -1).mean(-1).mean(-1).float()  # (N,)


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0, per_channel: bool = False) -> Tensor:
    """x, y: (N, C, H, W) -> (N,) PSNR in dB; inf for identical frames (as skimage).

    per_channel=True averages the PSNR of each channel instead of using the MSE over all
    channels (what the official CW-VAE evaluation does).
    """
    _check(x, y)
    diff = (x.double() - y.double()).pow(2)
    mse = diff.flatten(2).mean(-1) if per_channel else diff.flatten(1).mean(-1)  # (N, C) or (N,)
    value = 10 * torch.log10(data_range**2 / mse)
    return (value.mean(-1) if per_channel else value).float()


def ssim_official(x: Tensor, y: Tensor) -> Tensor:
    """The official CW-VAE evaluation (tools.compute_metrics): skimage SSIM per channel on
    float frames without a data range, so skimage assumed its float range of 2.0 (-1..1).
    Kept on purpose so numbers can be set beside the paper's."""
    return ssim(x, y, data_range=2.0)


def psnr_official(x: Tensor, y: Tensor) -> Tensor:
    """The official evaluation's PSNR: per channel, data range 1.0 (skimage infers 1.0 from
    a non-negative float ground truth), averaged over channels."""
    return psnr(x, y, data_range=1.0, per_channel=True)
