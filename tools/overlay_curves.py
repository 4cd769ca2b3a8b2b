"""Overlay the per-horizon curves of several run directories in one figure (for docs/).

    python tools/overlay_curves.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--metrics ssim,psnr,lpips]

Reads each run's eval/curves.csv (rows `metric, aggregate, t, mean, ci_low, ci_high`) and draws
one panel per metric: per run the mean over test videos (best of the samples, as Table 1) and
its 95% interval as a band. Made docs/vta_context_before_after.png (the command is in
docs/models.md, VTA section). The report's curves (reports/curves.py) overlay models of a
results directory; this overlays any runs, e.g. one model before and after a change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for reports/

from reports.plotting import color_of, new_figure, save  # noqa: E402
from reports.reference import higher_is_better, metric_title  # noqa: E402


def read_runs(items: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """['LABEL=RUN_DIR', ...] -> [(label, that run's eval/curves.csv)]; ValueError names a bad item."""
    runs = []
    for item in items:
        label, _, run = item.partition("=")
        path = Path(run) / "eval" / "curves.csv"
        if not label or not path.is_file():
            raise ValueError(f"{item!r}: expected LABEL=RUN_DIR where RUN_DIR/eval/curves.csv exists")
        runs.append((label, pd.read_csv(path)))
    return runs


def plot_overlay(runs: list[tuple[str, pd.DataFrame]], metrics: list[str], title: str = ""):
    """One panel per metric, one line (mean) and band (95% interval) per run; returns the figure."""
    fig, axes = new_figure(5.0 * len(metrics), 3.4, ncols=len(metrics))
    for ax, metric in zip(axes[0], metrics):
        for i, (label, curves) in enumerate(runs):
            g = curves[(curves["metric"] == metric) & (curves["aggregate"] == "best")].sort_values("t")
            if g.empty:
                raise ValueError(
                    f"run {label!r} has no {metric!r} curve; pick --metrics from {sorted(curves.metric.unique())}"
                )
            ax.plot(g["t"], g["mean"], color=color_of(i), lw=1.3, label=label)
            ax.fill_between(g["t"], g["ci_low"], g["ci_high"], color=color_of(i), alpha=0.18, lw=0)
        ax.set_xlabel("predicted frame (frames after the context)")
        ax.set_ylabel(f"{metric_title(metric)} ({'higher' if higher_is_better(metric) else 'lower'} is better)")
        ax.grid(alpha=0.3)
    fig.legend(*axes[0][0].get_legend_handles_labels(), fontsize=8, loc="lower center", ncol=len(runs))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # room for the legend below the panels
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    parser.add_argument("--metrics", default="ssim,psnr,lpips")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    try:
        fig = plot_overlay(read_runs(args.runs), args.metrics.split(","), args.title)
    except ValueError as e:
        parser.error(str(e))
    save(fig, args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
