"""Aggregation over seeds: one number (and a 95% interval) per (entry, dataset, preset, metric).

With two or more seeds the interval is a t-interval over the seeds' values; with one
seed it is that run's own interval over test videos (eval/summary.csv), and `ci_over`
says which. Each row carries what the run directory says of its run and metric: the
model's Table 1 label, the dataset's name in the paper, the metric's direction and its
official-mode twin (run.json).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rundir.run import Run, read_curves, read_summary
from rundir.stats import t_interval

GROUP = ["dataset", "preset", "entry"]
# per (dataset, preset, entry) or per metric, the same in every run of a group: carried through
RUN_COLUMNS = ["model", "variant", "reference", "paper_label", "paper_dataset", "paper_data"]
METRIC_COLUMNS = ["higher_is_better", "official_of"]


def run_columns(run: Run) -> dict:
    return dict(
        model=run.model,
        variant=run.variant,
        reference=run.is_reference,
        paper_label=run.paper_label or "",
        paper_dataset=run.paper_dataset or "",
        paper_data=run.paper_data,  # None: unknown (run.json before it recorded it)
    )


def metric_columns(run: Run, metric: str) -> dict:
    from rundir.stats import metric_info

    recorded = run.metrics.get(metric) or {}
    return dict(
        higher_is_better=run.higher_is_better(metric),
        official_of=recorded.get("official_of", metric_info(metric).official_of) or "",
    )


def run_rows(runs: list[Run], aggregate: str = "best") -> pd.DataFrame:
    """One row per (finished run, metric): the run's mean over predicted frames."""
    rows = []
    for run in runs:
        if not run.finished:
            continue
        summary = read_summary(run.directory)
        chosen = summary[summary["aggregate"] == aggregate]
        if chosen.empty:  # an evaluation with only one aggregate
            chosen = summary.drop_duplicates("metric")
        for _, r in chosen.iterrows():
            rows.append(
                dict(
                    dataset=run.dataset,
                    preset=run.preset,
                    entry=run.entry,
                    **run_columns(run),
                    seed=run.seed,
                    metric=r["metric"],
                    **metric_columns(run, r["metric"]),
                    value=float(r["value"]),
                    run_ci_low=float(r.get("ci_low", np.nan)),
                    run_ci_high=float(r.get("ci_high", np.nan)),
                    n_videos=int(r.get("n", 0)) if pd.notna(r.get("n", 0)) else 0,
                    notes=str(r["notes"]) if "notes" in r and pd.notna(r["notes"]) else "",
                )
            )
    cols = [
        *GROUP,
        *RUN_COLUMNS,
        "seed",
        "metric",
        *METRIC_COLUMNS,
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
        mean, low, high = (float(x) for x in t_interval(g["value"].to_numpy()))
        over = "seeds"
        if len(g) == 1:
            low, high, over = float(g["run_ci_low"].iloc[0]), float(g["run_ci_high"].iloc[0]), "videos"
        first = g.iloc[0]
        out.append(
            dict(
                zip([*GROUP, "metric"], key),
                **{c: first[c] for c in RUN_COLUMNS + METRIC_COLUMNS},
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
        *RUN_COLUMNS,
        *METRIC_COLUMNS,
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
        c = read_curves(run.directory)
        if c.empty:
            continue
        c = c[c["aggregate"] == aggregate] if (c["aggregate"] == aggregate).any() else c
        direction = {m: run.higher_is_better(m) for m in c["metric"].unique()}
        parts.append(
            c.assign(
                dataset=run.dataset,
                preset=run.preset,
                entry=run.entry,
                **run_columns(run),
                seed=run.seed,
                higher_is_better=c["metric"].map(direction),
            )
        )
    cols = [*GROUP, "metric", "t", "model", "reference", "higher_is_better"]
    cols += ["mean", "ci_low", "ci_high", "ci_over", "n_seeds"]
    if not parts:
        return pd.DataFrame(columns=cols)
    allc = pd.concat(parts, ignore_index=True)
    out = []
    for key, g in allc.groupby([*GROUP, "metric"], sort=True):
        seeds = sorted(g["seed"].unique())
        wide = g.pivot_table(index="t", columns="seed", values="mean")  # (T, n_seeds)
        first = g[g["seed"] == seeds[0]].set_index("t").reindex(wide.index)
        m, lo, hi = t_interval(wide.to_numpy(), axis=1)  # (T,) each: over the seeds at each t
        over = "seeds"
        if len(seeds) < 2:
            lo, hi, over = first["ci_low"].to_numpy(), first["ci_high"].to_numpy(), "videos"
        out.append(
            pd.DataFrame(
                {
                    **dict(zip([*GROUP, "metric"], key)),
                    "t": wide.index.to_numpy(),
                    "model": g["model"].iloc[0],
                    "reference": bool(g["reference"].iloc[0]),
                    "higher_is_better": bool(g["higher_is_better"].iloc[0]),
                    "mean": m,
                    "ci_low": lo,
                    "ci_high": hi,
                    "ci_over": over,
                    "n_seeds": len(seeds),
                }
            )
        )
    return pd.concat(out, ignore_index=True)[cols]
