"""What the numbers of a run directory mean, defined once for the harness and the reports.

METRICS           each metric's direction, whether it has per-example values, its official twin
t_interval        mean and 95% t-interval (over test videos in a run, over seeds in a report)
best_sample       best-of-N: per video the sample with the best time-averaged score
reduce_samples    (N, n_samples, h) -> (N, h): that best sample, or the mean over samples
horizon_bands     the horizon split for reading results: all frames, then near a tenth and a half
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

AGGREGATES = ("best", "mean")  # over a video's samples: best-of-N (Table 1, as SVG and CW-VAE report), or the mean


@dataclass(frozen=True)
class MetricInfo:
    higher_is_better: bool
    per_example: bool = True  # False: one number per set of videos (FVD): no per-example values, never paired
    official_of: str = ""  # the standard metric this one is the official-mode twin of (the paper's evaluation)
    bounds: tuple[float, float] = (-math.inf, math.inf)  # the values it can take (plots clip intervals to them)

    def to_dict(self) -> dict:
        return {
            "higher_is_better": self.higher_is_better,
            "per_example": self.per_example,
            "official_of": self.official_of,
        }


# Every metric an evaluation can write. The pipeline copies the entries of a run's metrics into
# its run.json; reports read them from there (this table only for runs written before run.json).
METRICS: dict[str, MetricInfo] = {
    "ssim": MetricInfo(True, bounds=(-1.0, 1.0)),
    "psnr": MetricInfo(True, bounds=(0.0, math.inf)),
    "lpips": MetricInfo(False, bounds=(0.0, math.inf)),
    "fvd": MetricInfo(False, per_example=False, bounds=(0.0, math.inf)),
    # the official CW-VAE evaluation (unclipped predictions, skimage's float data range 2.0 for SSIM,
    # PSNR per channel): the setting of the paper's published SSIM and PSNR
    "ssim_official": MetricInfo(True, official_of="ssim", bounds=(-1.0, 1.0)),
    "psnr_official": MetricInfo(True, official_of="psnr", bounds=(0.0, math.inf)),
}
UNKNOWN_METRIC = MetricInfo(True)  # a metric this code does not know (a newer harness): higher is better


def metric_info(name: str) -> MetricInfo:
    return METRICS.get(name, UNKNOWN_METRIC)


def t_interval(values, axis: int = 0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and a `level` t-interval over `axis`, NaN ignored; with fewer than two values the
    interval is the mean itself. values (n,) give scalars, (n, k) over axis 0 give (k,) each."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    n = np.sum(~np.isnan(v), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(v, axis=axis) / n
        sd = np.sqrt(np.nansum((v - np.expand_dims(mean, axis)) ** 2, axis=axis) / np.maximum(n - 1, 1))
        half = np.where(n >= 2, stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n), 0.0)
    return mean, mean - half, mean + half


def best_sample(scores: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """scores (N, n_samples, h) -> (N,) index of each video's sample with the best time-averaged score."""
    per_sample = scores.mean(-1)  # (N, n)
    return per_sample.argmax(1) if higher_is_better else per_sample.argmin(1)


def reduce_samples(scores: np.ndarray, aggregate: str, higher_is_better: bool) -> np.ndarray:
    """(N, n_samples, h) -> (N, h): the best sample (`best`, Table 1) or the mean over samples (`mean`)."""
    if aggregate == "mean":
        return scores.mean(1)
    if aggregate != "best":
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    return scores[np.arange(len(scores)), best_sample(scores, higher_is_better)]  # (N, h)


def nice(x: float) -> int:
    """The nearest of 1, 2, 5 x 10^k to x (in log scale)."""
    if x <= 1:
        return 1
    k = math.floor(math.log10(x))
    candidates = [m * 10**e for e in (k - 1, k, k + 1) for m in (1, 2, 5)]
    return int(min(candidates, key=lambda c: abs(math.log(c / x))))


def horizon_bands(horizon: int) -> list[tuple[int, int]]:
    """[(first, last)] 1-based predicted frames: all of them, then up to three bands ending near a
    tenth and a half of the horizon, rounded to 1, 2 or 5 x 10^k. 964 (Moving MNIST, the paper):
    1-100, 101-500, 501-964; 100 (the quick preset): 1-10, 11-50, 51-100."""
    bands = [(1, horizon)]
    edges = sorted({nice(horizon / 10), nice(horizon / 2)})
    edges = [e for e in edges if 1 <= e < horizon]
    starts = [1] + [e + 1 for e in edges]
    ends = edges + [horizon]
    if len(starts) > 1:
        bands += list(zip(starts, ends))
    return bands
