"""Per-horizon curves (like the paper's Fig E.1): per preset, dataset and metric, every model in one plot.

Input: `aggregate.curves_over_seeds`. Lines are means over seeds; bands are 95%
t-intervals over seeds (>= 2 seeds) or, for a single seed, the run's interval over test
videos, clipped in the plot to the values the metric can take (SSIM within [-1, 1], PSNR,
LPIPS and FVD >= 0; curves.csv keeps the intervals as computed). Naive references are dashed.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from reports.plotting import new_figure, save
from reports.reference import dataset_title, metric_title
from rundir.atomic import write_csv
from rundir.stats import metric_info


def plot_curves(curves: pd.DataFrame, title: str, metric: str, path: Path, colors: dict[str, int]) -> Path:
    """curves: rows of one (preset, dataset, metric): entry, t, mean, ci_low, ci_high, reference, ci_over."""
    from reports.plotting import color_of

    fig, axes = new_figure(6.4, 3.8)
    ax = axes[0][0]
    low, high = metric_info(metric).bounds
    for entry, g in curves.groupby("entry", sort=True):
        g = g.sort_values("t")
        ref = bool(g["reference"].iloc[0])
        color = color_of(colors.get(entry, 0))
        label = f"{entry} ({int(g['n_seeds'].iloc[0])} seed{'s' if g['n_seeds'].iloc[0] != 1 else ''})"
        ax.plot(g["t"], g["mean"], color=color, lw=1.4, ls="--" if ref else "-", label=label)
        band = g["ci_low"].clip(low, high), g["ci_high"].clip(low, high)  # a t-interval can leave the range
        ax.fill_between(g["t"], *band, color=color, alpha=0.18, lw=0)
    over = sorted(curves["ci_over"].unique())
    ax.set_xlabel("predicted frame (frames after the context)")
    higher = bool(curves["higher_is_better"].iloc[0])  # as the run directories recorded it
    ax.set_ylabel(f"{metric_title(metric)} ({'higher' if higher else 'lower'} is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.text(
        1.0,
        -0.2,
        f"bands: 95% t-interval of the mean over {' / '.join(over)}{range_note(low, high)}",
        transform=ax.transAxes,
        ha="right",
        fontsize=7,
        color="0.4",
    )
    return save(fig, path)


def range_note(low: float, high: float) -> str:
    """', clipped to [-1, 1]' / ', clipped to >= 0' / '' (no bounds)."""
    if math.isfinite(low) and math.isfinite(high):
        return f", clipped to [{low:g}, {high:g}]"
    if math.isfinite(low):
        return f", clipped to >= {low:g}"
    return f", clipped to <= {high:g}" if math.isfinite(high) else ""


def write_curves(
    curves: pd.DataFrame, out: Path, colors: dict[str, int], dataset_names: dict[str, str] | None = None
) -> list[Path]:
    """curves/curves.csv and curves/<preset>/<dataset>_<metric>.png; returns the files written."""
    if curves.empty:
        return []
    files = [out / "curves" / "curves.csv"]
    write_csv(files[0], curves)
    for (preset, dataset, metric), g in curves.groupby(["preset", "dataset", "metric"], sort=True):
        name = dataset_title(dataset, (dataset_names or {}).get(dataset))
        title = f"{name}: {metric_title(metric)} per horizon (preset {preset})"
        files.append(plot_curves(g, title, metric, out / "curves" / preset / f"{dataset}_{metric}.png", colors))
    return files
