"""Aggregation over seeds: one number (and a 95% interval) per (entry, dataset, preset, metric).

With two or more seeds the interval is a t-interval over the seeds' values; with one
seed it is that run's own interval over test videos (eval/summary.csv), and `ci_over`
says which.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.collect import Run, read_curves, read_summary

GROUP = ["dataset", "preset", "entry"]


def t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """values (n,) -> (mean, low, high) of a 95% t-interval; n == 1 gives (v, v, v)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def run_rows(runs: list[Run], aggregate: str = "best") -> pd.DataFrame:
    """One row per (finished run, metric): the run's mean over predicted frames."""
    rows = []
    for run in runs:
        if not run.finished:
            continue
        summary = read_summary(run)
        chosen = summary[summary["aggregate"] == aggregate]
        if chosen.empty:  # an evaluation with only one aggregate
            chosen = summary.drop_duplicates("metric")
        for _, r in chosen.iterrows():
            rows.append(
                dict(
                    dataset=run.dataset,
                    preset=run.preset,
                    entry=run.entry,
                    model=run.model,
                    variant=run.variant,
                    reference=run.is_reference,
                    seed=run.seed,
                    metric=r["metric"],
                    value=float(r["value"]),
                    run_ci_low=float(r.get("ci_low", np.nan)),
                    run_ci_high=float(r.get("ci_high", np.nan)),
                    n_videos=int(r.get("n", 0)) if pd.notna(r.get("n", 0)) else 0,
                    notes=str(r["notes"]) if "notes" in r and pd.notna(r["notes"]) else "",
                )
            )
    cols = [
        "dataset",
        "preset",
        "entry",
        "model",
        "variant",
        "reference",
        "seed",
        "metric",
        "value",
        "run_ci_low",
        "run_ci_high",
        "n_videos",
        "notes",
    ]
    return pd.DataFrame(rows, columns=cols)


def over_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """run_rows -> one row per (dataset, preset, entry, metric): value, ci_low, ci_high, ci_over, n_seeds."""
    out = []
    for key, g in rows.groupby([*GROUP, "metric"], sort=True):
        g = g.sort_values("seed")
        mean, low, high = t_interval(g["value"].to_numpy())
        over = "seeds"
        if len(g) == 1:
            low, high, over = float(g["run_ci_low"].iloc[0]), float(g["run_ci_high"].iloc[0]), "videos"
        first = g.iloc[0]
        out.append(
            dict(
                zip([*GROUP, "metric"], key),
                model=first["model"],
                variant=first["variant"],
                reference=bool(first["reference"]),
                value=mean,
                ci_low=low,
                ci_high=high,
                ci_over=over,
                n_seeds=len(g),
                seeds=" ".join(str(s) for s in g["seed"]),
                notes="; ".join(dict.fromkeys(n for n in g["notes"] if n)),  # e.g. FVD on fewer videos than the paper
            )
        )
    cols = [
        *GROUP,
        "metric",
        "model",
        "variant",
        "reference",
        "value",
        "ci_low",
        "ci_high",
        "ci_over",
        "n_seeds",
        "seeds",
        "notes",
    ]
    return pd.DataFrame(out, columns=cols)


def curves_over_seeds(runs: list[Run], aggregate: str = "best") -> pd.DataFrame:
    """Per (dataset, preset, entry, metric, t): mean over seeds and a 95% band.

    Band: t-interval over seeds with >= 2 seeds, else the run's interval over test videos.
    """
    parts = []
    for run in runs:
        if not run.finished:
            continue
        c = read_curves(run)
        if c.empty:
            continue
        c = c[c["aggregate"] == aggregate] if (c["aggregate"] == aggregate).any() else c
        parts.append(
            c.assign(
                dataset=run.dataset,
                preset=run.preset,
                entry=run.entry,
                model=run.model,
                reference=run.is_reference,
                seed=run.seed,
            )
        )
    cols = [*GROUP, "metric", "t", "model", "reference", "mean", "ci_low", "ci_high", "ci_over", "n_seeds"]
    if not parts:
        return pd.DataFrame(columns=cols)
    allc = pd.concat(parts, ignore_index=True)
    out = []
    for key, g in allc.groupby([*GROUP, "metric"], sort=True):
        seeds = sorted(g["seed"].unique())
        wide = g.pivot_table(index="t", columns="seed", values="mean")  # (T, n_seeds)
        first = g[g["seed"] == seeds[0]].set_index("t").reindex(wide.index)
        m = wide.mean(1).to_numpy()
        if len(seeds) >= 2:
            from scipy import stats

            n = wide.notna().sum(1).to_numpy()
            sd = wide.std(1, ddof=1).to_numpy()
            half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
            lo, hi, over = m - half, m + half, "seeds"
        else:
            lo, hi, over = first["ci_low"].to_numpy(), first["ci_high"].to_numpy(), "videos"
        out.append(
            pd.DataFrame(
                {
                    **dict(zip([*GROUP, "metric"], key)),
                    "t": wide.index.to_numpy(),
                    "model": g["model"].iloc[0],
                    "reference": bool(g["reference"].iloc[0]),
                    "mean": m,
                    "ci_low": lo,
                    "ci_high": hi,
                    "ci_over": over,
                    "n_seeds": len(seeds),
                }
            )
        )
    return pd.concat(out, ignore_index=True)[cols]
