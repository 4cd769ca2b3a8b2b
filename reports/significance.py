"""Which Table 1 cells differ significantly from the best of their cell group.

A cell group is one (preset, dataset, metric) of our runs. Its *best* is the entry with
the best Table 1 value among the ranked (non-reference) entries, exactly the value the
bold rule starts from. Every other entry of the group (naive references included) is
paired with it on the same test examples, as `bench.py compare` pairs two models
(reports/compare.py):

    per run      eval/per_example.* {metric: (N, n_samples, horizon)} -> best-of-n sample
                 (or the mean, as the report's --aggregate) -> time average: (N,)
    per entry    the mean over the seeds both entries have (each its own seeds if none)
    d            other - best, (N,) paired differences
    interval     95% percentile bootstrap of mean(d) over examples (N_RESAMPLES, seed SEED)
    p_value      two-sided Wilcoxon signed-rank p of d

A cell whose interval includes zero is *not significantly different from the best*
(`not_significant`, marked MARK in table1.md). The numbers are those of
`bench.py compare OTHER BEST --bands 1-H` on the same runs. A cell is left unmarked,
with a note saying why, when a side has no per-example file, when the two were not
evaluated on the same test set (`compare.check_same_test_set`) or hold different
numbers of examples or frames. Set-level metrics (FVD) have no per-example values and
are never tested.

Deterministic: the bootstrap is seeded and the groups are visited in sorted order.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from reports import markdown
from reports.compare import CompareError, Side, bootstrap_ci, check_same_test_set, wilcoxon_p
from reports.reference import metric_title
from rundir.run import Run, has_per_example, read_per_example
from rundir.stats import reduce_samples

N_RESAMPLES = 10_000  # as `bench.py compare`, so both give the same interval
SEED = 0
LEVEL = 0.95
MARK = "≈"
KEYS = ["preset", "dataset", "metric", "entry"]
COLUMNS = ["not_significant", "p_value", "diff", "diff_ci_low", "diff_ci_high", "significance_notes"]
NO_PER_EXAMPLE = "no eval/per_example file (evaluated before per-example results existed: re-score with --re-eval)"


def legend(aggregate: str = "best", n_resamples: int = N_RESAMPLES) -> str:
    """The line under Table 1 that explains MARK."""
    per_video = (
        "the time-averaged score of the best sample" if aggregate == "best" else "the time-averaged mean over samples"
    )
    return (
        f"{MARK} after a number: not significantly different from the best trained model of its dataset and metric "
        f"(the {LEVEL:.0%} paired bootstrap interval of the difference includes zero; same test videos, per video "
        f"{per_video}, mean over the seeds both models have; "
        f"{n_resamples:,} resamples, seed {SEED}; the interval and Wilcoxon p are in table1.csv). "
        "FVD is a set-level metric (one number per run, no per-video values): never tested."
    )


class Scores:
    """Per-run (N,) time-averaged scores, each per-example file read once."""

    def __init__(self, aggregate: str):
        self.aggregate = aggregate
        self._cache: dict[str, dict[str, np.ndarray]] = {}

    def of_run(self, run: Run) -> dict[str, np.ndarray]:
        """{metric: (N,)}: per example, the chosen sample reduction, then the mean over predicted frames."""
        key = str(run.directory)
        if key not in self._cache:
            try:
                arrays = read_per_example(run.directory)  # {metric: (N, n_samples, horizon)}
            except (OSError, ValueError, KeyError) as e:  # a cut or corrupt file: that cell is not tested
                raise CompareError(f"unreadable per-example file in {run.rel}/eval ({type(e).__name__})") from e
            self._cache[key] = {
                m: reduce_samples(v, self.aggregate, run.higher_is_better(m)).mean(1) for m, v in arrays.items()
            }
        return self._cache[key]

    def of_entry(self, runs: dict[int, Run], seeds: list[int], metric: str) -> np.ndarray:
        """(N,): the per-example mean over `seeds`; raises CompareError when they disagree in shape."""
        per_seed = [self.of_run(runs[s])[metric] for s in seeds]
        shapes = sorted({x.shape for x in per_seed})
        if len(shapes) > 1:
            raise CompareError(f"its seeds {seeds} hold different numbers of test examples {shapes}")
        return np.mean(per_seed, axis=0)


def group_runs(runs: list[Run]) -> tuple[dict[tuple[str, str, str], dict[int, Run]], dict[tuple[str, str, str], str]]:
    """(preset, dataset, entry) -> {seed: run} of the finished runs, and a note per group where a seed has
    two runs (configs that differ only in settings that change no number): the first by path is used."""
    groups: dict[tuple[str, str, str], dict[int, Run]] = {}
    notes: dict[tuple[str, str, str], str] = {}
    for run in sorted(runs, key=lambda r: (r.preset, r.dataset, r.entry, r.seed, r.rel)):
        if not run.finished:
            continue
        key = (run.preset, run.dataset, run.entry)
        seeds = groups.setdefault(key, {})
        if run.seed in seeds:
            notes[key] = f"seed {run.seed} has two runs; the test uses {seeds[run.seed].rel}"
            continue
        seeds[run.seed] = run
    return groups, notes


def side_of(entry: str, runs: dict[int, Run]) -> Side:
    side = Side(entry, entry)
    for r in runs.values():
        side.add(r.directory, r.cfg, r.info)
    return side


def against_best(
    best: tuple[str, dict[int, Run]],
    other: tuple[str, dict[int, Run]],
    metric: str,
    scores: Scores,
    n_resamples: int,
    seed: int,
) -> dict:
    """One cell against the best of its group: the COLUMNS of that cell (notes say why when not tested)."""
    (best_entry, best_runs), (entry, runs) = best, other
    untested = dict(not_significant=False, p_value=math.nan, diff=math.nan, diff_ci_low=math.nan, diff_ci_high=math.nan)
    for name, side in ((best_entry, best_runs), (entry, runs)):
        lacking = [r for r in side.values() if not has_per_example(r.directory)]
        if lacking:
            who = "" if name == entry else f"the best ({name}): "
            return {**untested, "significance_notes": f"not tested: {who}{NO_PER_EXAMPLE}"}
    try:
        check_same_test_set(side_of(best_entry, best_runs), side_of(entry, runs))
    except CompareError as e:
        found = re.search(r"same test set \((.*)\); ", str(e))
        reason = (found.group(1) if found else str(e)).replace("; ", ", ")  # notes are joined with "; "
        return {
            **untested,
            "significance_notes": f"not tested: another test set than the best (best vs this: {reason})",
        }
    common = sorted(set(best_runs) & set(runs))
    seeds_best, seeds_other = (common, common) if common else (sorted(best_runs), sorted(runs))
    notes = []
    if not common:
        notes.append("no seed in common with the best: each side's own seed mean")
    elif len(common) < max(len(best_runs), len(runs)):
        notes.append(f"tested on the seeds both have ({', '.join(map(str, common))})")
    try:
        if not all(metric in scores.of_run(r) for r in [*best_runs.values(), *runs.values()]):
            return {**untested, "significance_notes": f"not tested: no per-example {metric_title(metric)} values"}
        xb = scores.of_entry(best_runs, seeds_best, metric)  # (N,)
        xo = scores.of_entry(runs, seeds_other, metric)  # (N,)
    except CompareError as e:
        return {**untested, "significance_notes": f"not tested: {str(e).replace('; ', ', ')}"}
    if xb.shape != xo.shape:
        return {
            **untested,
            "significance_notes": f"not tested: {len(xo)} test examples against the best's {len(xb)}",
        }
    d = xo - xb  # (N,)
    if not np.all(np.isfinite(d)):
        return {**untested, "significance_notes": "not tested: non-finite per-example scores"}
    lo, hi = bootstrap_ci(d, n_resamples, seed, LEVEL)
    if len(d) < 10:
        notes.append(f"only {len(d)} test examples: the interval is unreliable")
    return dict(
        not_significant=bool(lo <= 0 <= hi),
        p_value=wilcoxon_p(d),
        diff=float(d.mean()),
        diff_ci_low=lo,
        diff_ci_high=hi,
        significance_notes="; ".join(notes),
    )


def significance_frame(
    runs: list[Run],
    over_seeds: pd.DataFrame | None,
    aggregate: str = "best",
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> pd.DataFrame:
    """KEYS + COLUMNS, one row per tested cell of our runs (the best of each group and set-level
    metrics have no row). over_seeds: reports.aggregate.over_seeds of the same runs (Table 1's values)."""
    if over_seeds is None or not len(over_seeds):
        return pd.DataFrame(columns=KEYS + COLUMNS)
    groups, dup_notes = group_runs(runs)
    scores = Scores(aggregate)
    rows = []
    for (preset, dataset, metric), cell in over_seeds.groupby(["preset", "dataset", "metric"], sort=True):
        if not per_example(runs, metric):
            continue
        cell = cell[np.isfinite(cell["value"].astype(float))].sort_values("entry", kind="stable")
        ranked = cell[~cell["reference"].astype(bool)]
        if ranked.empty:
            continue
        values = ranked["value"].astype(float)
        higher = bool(ranked["higher_is_better"].iloc[0])  # as the runs recorded it
        best_entry = ranked.loc[values.idxmax() if higher else values.idxmin(), "entry"]
        best = (best_entry, groups.get((preset, dataset, best_entry), {}))
        for entry in cell["entry"]:
            if entry == best_entry:
                continue
            other = (entry, groups.get((preset, dataset, entry), {}))
            if not best[1] or not other[1]:
                continue  # no finished run behind the value: cannot happen for rows of over_seeds
            result = against_best(best, other, metric, scores, n_resamples, seed)
            extra = [dup_notes[(preset, dataset, e)] for e in (best_entry, entry) if (preset, dataset, e) in dup_notes]
            if extra and math.isfinite(result["diff"]):  # tested
                result["significance_notes"] = "; ".join(n for n in [result["significance_notes"], *extra] if n)
            rows.append(dict(preset=preset, dataset=dataset, metric=metric, entry=entry, **result))
    return pd.DataFrame(rows, columns=KEYS + COLUMNS)


def per_example(runs: list[Run], metric: str) -> bool:
    """Whether the runs recorded `metric` as one with per-example values (FVD: one number per set)."""
    from rundir.stats import metric_info

    recorded = [r.metrics[metric].get("per_example") for r in runs if metric in r.metrics]
    return bool(recorded[0]) if recorded else metric_info(metric).per_example


def with_significance(table1: pd.DataFrame, significance: pd.DataFrame | None) -> pd.DataFrame:
    """Table 1's long frame + COLUMNS (our tested cells; unmarked defaults elsewhere)."""
    out = table1.drop(columns=[c for c in COLUMNS if c in table1], errors="ignore")
    sig = significance if significance is not None else pd.DataFrame(columns=KEYS + COLUMNS)
    sig = sig.assign(source="ours")
    out = out.merge(sig, how="left", on=["source", *KEYS], validate="many_to_one")
    out["not_significant"] = out["not_significant"].eq(True)  # NaN (untested, paper rows) -> False
    out["significance_notes"] = out["significance_notes"].fillna("").astype(str)
    for c in ("p_value", "diff", "diff_ci_low", "diff_ci_high"):
        out[c] = out[c].astype(float)
    return out


def notes_lines(frame: pd.DataFrame) -> list[str]:
    """Markdown lines under one preset's tables: why cells were not tested (or how), once per reason."""
    notes = [
        (r.significance_notes, f"{r.entry}/{r.dataset}/{metric_title(r.metric)}")
        for r in frame.fillna({"significance_notes": ""}).itertuples()
    ]
    return markdown.notes_list("Significance against the best:", notes)
