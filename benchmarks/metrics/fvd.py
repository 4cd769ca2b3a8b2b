"""Fréchet distance and FVD (Unterthiner et al. 2018).

`frechet_distance(a, b)` is the Fréchet distance between Gaussians fitted to two sets of
activations: ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), in float64,
covariances with ddof=1, as tensorflow-gan's `frechet_classifier_distance_from_activations`
(which the FVD reference calls). The trace of the matrix square root is taken from the
eigenvalues of the symmetric matrix S_a^1/2 S_b S_a^1/2 (as tfgan's `trace_sqrt_product`,
which uses an SVD) rather than from `scipy.linalg.sqrtm(S_a @ S_b)`. With fewer videos
than 400 features both covariances are singular; then it is the nuclear norm of the
product of the centred samples (see `frechet_distance`), which is exact where tfgan's
value carries ~1e-7 relative error from square roots of round-off.

`fvd(real, fake)` embeds both sets of videos with I3D (benchmarks.metrics.i3d) and
returns their Fréchet distance. `FVDStream` does the same batch by batch for several
growing subsequence lengths (FVD per horizon), keeping only (N, 400) features per length.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

MIN_VIDEOS = 2  # a covariance with ddof=1 needs two samples


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    from scipy import linalg

    w, v = linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_from_moments(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), float64."""
    from scipy import linalg

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"moment shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    root1 = _sqrt_psd(sigma1)
    inner = linalg.eigvalsh(root1 @ sigma2 @ root1)  # eigenvalues of S1^1/2 S2 S1^1/2, all >= 0 up to round-off
    trace_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def frechet_distance(a, b) -> float:
    """a: (N, D), b: (M, D) activations (numpy or torch), N, M >= 2 -> Fréchet distance, float64."""
    a = np.asarray(a.cpu() if isinstance(a, Tensor) else a, dtype=np.float64)
    b = np.asarray(b.cpu() if isinstance(b, Tensor) else b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected (N, D) and (M, D) activations, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < MIN_VIDEOS:
        raise ValueError(f"the Fréchet distance needs at least {MIN_VIDEOS} samples per set, got {len(a)} and {len(b)}")
    if min(len(a), len(b)) > a.shape[1]:  # full-rank covariances: the moments formula
        return frechet_distance_from_moments(
            a.mean(0), np.cov(a, rowvar=False, ddof=1), b.mean(0), np.cov(b, rowvar=False, ddof=1)
        )
    # Fewer samples than features (FVD with < 400 videos): with S_a = A^T A and S_b = B^T B,
    # A = (a - mean) / sqrt(N - 1), the nonzero eigenvalues of S_a S_b are the squared singular
    # values of A B^T (N x M), so Tr (S_a^1/2 S_b S_a^1/2)^1/2 is the nuclear norm of A B^T:
    # exact, without square roots of the round-off in the null space of S_a.
    from scipy import linalg

    A = (a - a.mean(0)) / np.sqrt(len(a) - 1)  # (N, D)
    B = (b - b.mean(0)) / np.sqrt(len(b) - 1)  # (M, D)
    diff = a.mean(0) - b.mean(0)
    trace_sqrt = linalg.svdvals(A @ B.T).sum()
    return float(diff @ diff + (A * A).sum() + (B * B).sum() - 2 * trace_sqrt)


def fvd(real: Tensor, fake: Tensor, max_frames: int = 256) -> float:
    """real (N, T, C, H, W), fake (M, T', C, H, W) in [0, 1], T, T' >= 9 -> FVD (lower is better)."""
    from benchmarks.metrics.i3d import i3d_features

    return frechet_distance(i3d_features(real, max_frames), i3d_features(fake, max_frames))


def fvd_lengths(requested: tuple[int, ...] | list[int], horizon: int) -> list[int]:
    """The subsequence lengths FVD is computed on: the requested ones that fit, plus the whole horizon."""
    from benchmarks.metrics.i3d import MIN_FRAMES

    return sorted({n for n in requested if MIN_FRAMES <= n < horizon} | ({horizon} if horizon >= MIN_FRAMES else set()))


class FVDStream:
    """FVD on growing subsequences, fed one batch of videos at a time.

    `update(real, fake)` takes real (B, h, C, H, W) and fake (B, n, h, C, H, W) predicted
    frames of the next B videos (only the first `max_videos` videos are used, 0 = all)
    and stores their I3D features for each length L (frames [0, L) of the prediction).
    `result(best)` returns {L: (fvd_all, fvd_best)}: fvd_all pools every sample of every
    video; fvd_best uses one sample per video, `best[i]` (default sample 0).
    """

    def __init__(self, lengths: list[int], max_videos: int = 0, max_frames: int = 256):
        self.lengths = list(lengths)
        self.max_videos = max_videos
        self.max_frames = max_frames
        self.real: dict[int, list[np.ndarray]] = {n: [] for n in self.lengths}
        self.fake: dict[int, list[np.ndarray]] = {n: [] for n in self.lengths}
        self.n_videos = 0

    def update(self, real: Tensor, fake: Tensor) -> None:
        from benchmarks.metrics.i3d import i3d_features

        take = len(real) if self.max_videos <= 0 else min(len(real), self.max_videos - self.n_videos)
        if take <= 0:
            return
        self.n_videos += take
        real, fake = real[:take], fake[:take]
        B, n = fake.shape[:2]
        for length in self.lengths:
            self.real[length].append(i3d_features(real[:, :length], self.max_frames).numpy())  # (B, 400)
            feats = i3d_features(fake[:, :, :length].flatten(0, 1), self.max_frames)  # (B*n, 400)
            self.fake[length].append(feats.reshape(B, n, -1).numpy())  # (B, n, 400)

    def result(self, best: np.ndarray | None = None) -> dict[int, tuple[float, float]]:
        if self.n_videos < MIN_VIDEOS:
            raise ValueError(f"FVD needs at least {MIN_VIDEOS} videos, got {self.n_videos}")
        out = {}
        for length in self.lengths:
            real = np.concatenate(self.real[length])  # (N, 400)
            fake = np.concatenate(self.fake[length])  # (N, n, 400)
            idx = np.zeros(len(fake), dtype=int) if best is None else np.asarray(best)[: len(fake)]
            out[length] = (
                frechet_distance(real, fake.reshape(-1, fake.shape[-1])),
                frechet_distance(real, fake[np.arange(len(fake)), idx]),
            )
        return out
