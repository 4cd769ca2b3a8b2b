"""The paper's two aggregation rules, as pure functions on numbers.

- Bold (Table 1): the best value of a (dataset, metric) cell and every value within 5%
  of it: higher-better values >= 0.95 x best, lower-better values <= 1.05 x best.
- Mean rank (Table 1 "Rank" column, Figure 5): rank the models in every (dataset,
  metric) cell with ties sharing the best rank (1, 1, 3, ...), then average each model's
  ranks over the cells it appears in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WITHIN = 0.05  # the paper's "within 5% of the best"


def bold_mask(values, higher: bool) -> np.ndarray:
    """values (n,) -> bool (n,): the best and those within 5% of it. NaN is never bold.

    The 5% is relative to the best value itself, as the paper states it; for a best
    value <= 0 the bound is taken on |best| so that it still widens towards worse values.
    """
    v = np.asarray(values, dtype=float)
    out = np.zeros(v.shape, dtype=bool)
    finite = np.isfinite(v)
    if not finite.any():
        return out
    best = v[finite].max() if higher else v[finite].min()
    margin = WITHIN * abs(best)
    bound = best - margin if higher else best + margin
    out[finite] = v[finite] >= bound if higher else v[finite] <= bound
    return out


def competition_ranks(values, higher: bool) -> np.ndarray:
    """values (n,) -> ranks (n,) with ties sharing the best rank (1, 1, 3, ...); NaN -> NaN."""
    s = pd.Series(np.asarray(values, dtype=float))
    return s.rank(method="min", ascending=not higher).to_numpy()


def rank_cells(long: pd.DataFrame, higher_is_better) -> pd.DataFrame:
    """long: columns dataset, metric, model, value -> the same rows with a `rank` column.

    higher_is_better: callable metric -> bool. Each (dataset, metric) cell is ranked alone.
    """
    parts = []
    for (_, metric), cell in long.groupby(["dataset", "metric"], sort=True):
        parts.append(cell.assign(rank=competition_ranks(cell["value"], higher_is_better(metric))))
    if not parts:
        return long.assign(rank=pd.Series(dtype=float))
    return pd.concat(parts).sort_index()


def mean_rank(long: pd.DataFrame, higher_is_better) -> pd.DataFrame:
    """long (dataset, metric, model, value) -> model, mean_rank, cells; sorted best first.

    `cells` counts the (dataset, metric) cells a model was ranked in; a model missing
    from some cells is averaged over the cells it has (the report says so).
    """
    ranked = rank_cells(long.dropna(subset=["value"]), higher_is_better)
    if ranked.empty:
        return pd.DataFrame(columns=["model", "mean_rank", "cells"])
    table = ranked.groupby("model")["rank"].agg(mean_rank="mean", cells="count").reset_index()
    return table.sort_values(["mean_rank", "model"]).reset_index(drop=True)


def format_rank(x: float) -> str:
    """Two decimals, halves to even on the binary value: the paper prints 2.625 as 2.62."""
    return f"{x:.2f}"
