"""Paired comparison of two models (or two runs) on the same test examples.

Each side is a run directory or a model name; a name stands for all its runs of one
dataset and preset under <out>/runs, paired with the other side's by seed. Per run, the
per-example scores (eval/per_example.*, {metric: (N, n_samples, horizon)}) are reduced over
samples (best-of-N as Table 1, or the mean), then averaged over the paired seeds, giving
one score per (example, predicted frame). Per metric and horizon band, each example's band
mean gives a paired difference d_i = A_i - B_i over the N test examples, and:

    diff        mean of d (A - B)
    ci          95% percentile bootstrap interval of that mean (seeded resamples of examples)
    p           Wilcoxon signed-rank p-value of d (two-sided; 1.0 when every d_i is 0)
    better      the side whose score is better, where the interval excludes zero

Directions and which metrics have per-example values come from each run's run.json
(rundir.stats.METRICS for runs that predate it); FVD is a set-level metric with no
per-example values, so it is not compared. The default horizon bands are the ones the
run directory records (rundir.stats.horizon_bands: all predicted frames, then bands
ending near a tenth and a half of the horizon; 964 frames give 1-100, 101-500, 501-964).

The statistics live here, beside the reports that use them (reports/significance.py);
`python bench.py compare` (benchmarks/commands/compare.py) only parses and prints.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rundir.run import (
    CONFIG,
    has_per_example,
    model_label,
    read_config,
    read_info,
    read_per_example,
    readable_runs,
    test_set_differences,
)
from rundir.stats import AGGREGATES, horizon_bands, metric_info, reduce_samples


class CompareError(ValueError):
    """The two sides cannot be compared (not found, ambiguous, or evaluated on different test sets)."""


@dataclass
class Side:
    """One side of a comparison: the runs of one model (one per seed) on one test set."""

    arg: str  # what the user gave
    label: str  # model label, e.g. "cwvae" or "TinyConvGRU"
    runs: dict[int, Path] = field(default_factory=dict)  # seed -> run directory
    configs: dict[int, dict] = field(default_factory=dict)  # seed -> config.yaml
    infos: dict[int, dict] = field(default_factory=dict)  # seed -> run.json (or what config.yaml tells)

    @property
    def config(self) -> dict:
        return next(iter(self.configs.values()))

    @property
    def metrics(self) -> dict[str, dict]:
        """{metric: {higher_is_better, per_example, official_of}} as the runs recorded them."""
        return {m: v for info in self.infos.values() for m, v in (info.get("metrics") or {}).items()}

    def higher_is_better(self, metric: str) -> bool:
        return bool(self.metrics.get(metric, {}).get("higher_is_better", metric_info(metric).higher_is_better))

    def add(self, run: Path, cfg: dict, info: dict | None = None) -> None:
        seed = int(cfg.get("seed", 0))
        self.runs[seed], self.configs[seed] = run, cfg
        self.infos[seed] = info if info is not None else read_info(run, cfg)

    def describe(self, seeds: list[int]) -> str:
        where = ", ".join(str(self.runs[s]) for s in seeds) if len(seeds) == 1 else f"seeds {seeds}"
        return f"{self.label} ({self.config['dataset']}, {self.config['preset']}; {where})"


def resolve_side(arg: str, out: Path, dataset: str | None, preset: str | None) -> Side:
    """A run directory (holding config.yaml), or a model name: its runs under `out` for dataset/preset."""
    path = Path(arg)
    if (path / CONFIG).exists():
        cfg = read_config(path)
        if not has_per_example(path):
            raise CompareError(
                f"{path} has no eval/per_example.parquet or .npz: evaluate it first "
                "(runs made before per-example results existed need `--re-eval`)"
            )
        side = Side(arg, model_label(cfg["model_name"]))
        side.add(path, cfg)
        return side
    if path.exists() or "/" in arg and ":" not in arg:
        raise CompareError(f"{arg} is not a run directory (no config.yaml in it); give a run directory or a model name")
    found = []
    for run, cfg in readable_runs(out):  # a damaged run is skipped with a warning
        if arg in (cfg["model_name"], model_label(cfg["model_name"])) and has_per_example(run):
            found.append((run, cfg))
    if not found:
        raise CompareError(
            f"no evaluated runs of model {arg!r} under {Path(out) / 'runs'} (with per-example "
            f"results); train one with `python bench.py --model {arg} --out {out}` or pass --out"
        )
    for key, wanted in (("dataset", dataset), ("preset", preset)):
        if wanted is not None:
            found = [(r, c) for r, c in found if c[key] == wanted]
            if not found:
                raise CompareError(f"model {arg!r} has no evaluated run with {key} {wanted!r} under {out}")
    for key in ("dataset", "preset"):
        values = sorted({c[key] for _, c in found})
        if len(values) > 1:
            raise CompareError(f"model {arg!r} has runs for several {key}s ({', '.join(values)}); pass --{key}")
    side = Side(arg, model_label(found[0][1]["model_name"]))
    for run, cfg in found:
        if cfg["seed"] in side.runs:
            raise CompareError(
                f"model {arg!r} has two runs with seed {cfg['seed']} ({side.runs[cfg['seed']]} and {run}): "
                "their configs differ; give the run directories to compare instead of the model name"
            )
        side.add(run, cfg)
    return side


def check_same_test_set(a: Side, b: Side) -> list[str]:
    """Raise CompareError naming every difference of their test sets (rundir.run.test_set); returns notes."""
    diffs, notes = test_set_differences(a.config, b.config)
    if diffs:
        raise CompareError(
            f"{a.label} and {b.label} were not evaluated on the same test set ({'; '.join(diffs)}); "
            "compare runs of the same dataset, preset and eval settings"
        )
    return notes


def parse_bands(text: str, horizon: int) -> list[tuple[int, int]]:
    """'1-100,101-500' -> [(1, 100), (101, 500)], checked against the horizon."""
    bands = []
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            band = (int(first), int(last) if sep else int(first))
        except ValueError:
            raise CompareError(f"--bands: {part.strip()!r} is not FIRST-LAST (e.g. 1-100,101-500)") from None
        if not 1 <= band[0] <= band[1] <= horizon:
            raise CompareError(f"--bands: {part.strip()!r} must lie within 1-{horizon} (the predicted frames)")
        bands.append(band)
    return bands


def side_scores(side: Side, seeds: list[int], aggregate: str) -> dict[str, np.ndarray]:
    """{metric: (N, h)}: per-example scores averaged over `seeds` (metrics present in every run)."""
    per_seed = []
    for s in seeds:
        arrays = read_per_example(side.runs[s])
        per_seed.append({m: reduce_samples(v, aggregate, side.higher_is_better(m)) for m, v in arrays.items()})
    metrics = [m for m in per_seed[0] if all(m in p for p in per_seed)]
    out = {}
    for m in metrics:
        shapes = {p[m].shape for p in per_seed}
        if len(shapes) > 1:
            raise CompareError(
                f"{side.label}: runs of seeds {seeds} hold {m} scores of different shapes {sorted(shapes)}"
            )
        out[m] = np.mean([p[m] for p in per_seed], axis=0)
    return out


def bootstrap_ci(d: np.ndarray, n_resamples: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of mean(d), d (N,), over `n_resamples` resamples of the N examples with
    replacement. Seeded: every call with the same N and seed draws the same resamples."""
    rng = np.random.default_rng(seed)
    N, chunk = len(d), max(1, 2_000_000 // max(len(d), 1))
    means = np.concatenate(
        [
            d[rng.integers(0, N, size=(min(chunk, n_resamples - start), N))].mean(1)  # (chunk,)
            for start in range(0, n_resamples, chunk)
        ]
    )  # (n_resamples,)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; 1.0 when all are zero."""
    from scipy.stats import wilcoxon

    if not np.any(d != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(wilcoxon(d).pvalue)


@dataclass
class Comparison:
    table: pd.DataFrame  # one row per (metric, band)
    label_a: str  # model labels
    label_b: str
    a: str  # descriptions of the two sides
    b: str
    setup: str  # test set, aggregation, bootstrap settings
    notes: list[str]


def compare_sides(
    a: Side, b: Side, bands: str | None = None, aggregate: str = "best", n_resamples: int = 10_000, seed: int = 0
) -> Comparison:
    """Paired comparison of two resolved sides on their common metrics (see the module docstring)."""
    if aggregate not in AGGREGATES:
        raise CompareError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    notes = check_same_test_set(a, b)
    na, nb = (side.config.get("eval", {}).get("n_samples", 1) for side in (a, b))
    if na != nb and aggregate == "best":
        notes.append(f"{a.label} has {na} samples per example, {b.label} {nb}: best-of-{na} against best-of-{nb}")
    common = sorted(set(a.runs) & set(b.runs))
    if common:
        seeds_a = seeds_b = common
        dropped = sorted((set(a.runs) | set(b.runs)) - set(common))
        if dropped:
            notes.append(f"seeds {dropped} are not on both sides and are left out (pairing by seed)")
    else:
        seeds_a, seeds_b = sorted(a.runs), sorted(b.runs)
        notes.append(
            f"no seed in common ({a.label}: {seeds_a}, {b.label}: {seeds_b}): each side uses its own seed mean"
        )
    sa, sb = side_scores(a, seeds_a, aggregate), side_scores(b, seeds_b, aggregate)
    metrics = [m for m in sa if m in sb]
    for m in sorted(set(sa) ^ set(sb)):
        notes.append(f"{m} is evaluated on one side only ({a.label if m in sa else b.label}): not compared")
    set_level = sorted(m for m, v in {**a.metrics, **b.metrics}.items() if not v.get("per_example", True))
    for m in set_level:
        notes.append(f"{m} is a set-level metric with no per-example values: not compared (see eval/summary.csv)")
    if not metrics:
        raise CompareError(f"{a.label} and {b.label} share no per-example metric ({sorted(sa)} vs {sorted(sb)})")
    shapes = {m: (sa[m].shape, sb[m].shape) for m in metrics}
    for m, (x, y) in shapes.items():
        if x != y:
            raise CompareError(
                f"{m}: {a.label} holds {x[0]} examples x {x[1]} frames, {b.label} {y[0]} x {y[1]}: not the same "
                "test examples (different eval.n_videos?); evaluate both on the same videos"
            )
    N, horizon = sa[metrics[0]].shape
    name_a, name_b = (a.label, b.label) if a.label != b.label else ("A", "B")
    band_list = parse_bands(bands, horizon) if bands else recorded_bands(a, seeds_a[0], horizon)
    rows = []
    for m in metrics:
        higher = a.higher_is_better(m)
        for first, last in band_list:
            xa = sa[m][:, first - 1 : last].mean(1)  # (N,) band mean per example
            xb = sb[m][:, first - 1 : last].mean(1)
            d = xa - xb
            lo, hi = bootstrap_ci(d, n_resamples, seed)
            better = ""
            if lo > 0 or hi < 0:
                better = name_a if (d.mean() > 0) == higher else name_b
            rows.append(
                dict(
                    metric=m,
                    frames=f"{first}-{last}",
                    n=N,
                    mean_a=float(xa.mean()),
                    mean_b=float(xb.mean()),
                    diff=float(d.mean()),
                    ci_low=lo,
                    ci_high=hi,
                    p_wilcoxon=wilcoxon_p(d),
                    better=better,
                )
            )
    if N < 10:
        notes.append(
            f"only {N} test examples: the bootstrap interval is unreliable and the smallest possible "
            f"Wilcoxon p is {2 / 2**N:.2g}; evaluate more videos (eval.n_videos) before concluding"
        )
    if a.label == b.label:
        notes.append(f"both sides are {a.label}: 'better' says A or B")
    context = a.config["eval"]["context"]
    setup = (
        f"{a.config['dataset']} test set: {N} examples x {horizon} predicted frames after {context} context frames; "
        f"per example: {'best of' if aggregate == 'best' else 'mean over'} the samples, then the mean "
        f"over seeds; 95% percentile bootstrap over examples ({n_resamples:,} resamples, seed {seed}); "
        "Wilcoxon signed-rank p (two-sided)"
    )
    return Comparison(pd.DataFrame(rows), a.label, b.label, a.describe(seeds_a), b.describe(seeds_b), setup, notes)


def recorded_bands(side: Side, seed: int, horizon: int) -> list[tuple[int, int]]:
    """The horizon bands the run directory records for this horizon (rundir.stats.horizon_bands)."""
    bands = [tuple(b) for b in side.infos[seed].get("bands") or []]
    return bands if bands[:1] == [(1, horizon)] else horizon_bands(horizon)


def is_run_dir(arg: str) -> bool:
    return (Path(arg) / CONFIG).exists()


def available(arg: str, out: Path) -> set[tuple[str, str]]:
    """(dataset, preset) pairs with evaluated runs of model `arg` under `out`."""
    pairs = set()
    for run, cfg in readable_runs(out):  # a damaged run is skipped with a warning
        if arg in (cfg["model_name"], model_label(cfg["model_name"])) and has_per_example(run):
            pairs.add((cfg["dataset"], cfg["preset"]))
    return pairs


def compare(
    arg_a: str, arg_b: str, out: str | Path = "results", dataset: str | None = None, preset: str | None = None, **kwargs
) -> Comparison:
    """Resolve both arguments (run directory or model name) and compare them; kwargs go to `compare_sides`.

    Without --dataset/--preset, a model name takes the other side's when that is a run
    directory; two names take the one (dataset, preset) for which both have runs.
    """
    out = Path(out)
    args = (arg_a, arg_b)
    dirs = [is_run_dir(a) for a in args]
    if not any(dirs) and (dataset is None or preset is None):
        pairs = available(arg_a, out) & available(arg_b, out)
        pairs = {(d, p) for d, p in pairs if dataset in (None, d) and preset in (None, p)}
        if len(pairs) > 1:
            shown = ", ".join(f"--dataset {d} --preset {p}" for d, p in sorted(pairs))
            raise CompareError(f"{arg_a} and {arg_b} both have runs for several settings: pass one of {shown}")
        if pairs:
            dataset, preset = next(iter(pairs))
    sides: list[Side | None] = [None, None]
    for i in sorted(range(2), key=lambda i: not dirs[i]):  # run directories first: a name follows them
        other = sides[1 - i]
        d = dataset if dataset is not None or other is None else other.config["dataset"]
        p = preset if preset is not None or other is None else other.config["preset"]
        sides[i] = resolve_side(args[i], out, d, p)
    return compare_sides(sides[0], sides[1], **kwargs)


# ---------------------------------------------------------------- formatting


def formatted(cmp: Comparison) -> pd.DataFrame:
    """The table with numbers as text: 4 significant digits, p to 2."""
    t = cmp.table.copy()
    for col in ("mean_a", "mean_b", "diff"):
        t[col] = t[col].map(lambda v: f"{v:.4g}")
    t["95% CI"] = [f"[{lo:.4g}, {hi:.4g}]" for lo, hi in zip(cmp.table.ci_low, cmp.table.ci_high)]
    t["p"] = t["p_wilcoxon"].map(lambda v: f"{v:.2g}")
    t["better"] = t["better"].replace("", "-")
    la, lb = cmp.label_a, cmp.label_b
    t = t.rename(columns={"mean_a": f"A {la}", "mean_b": f"B {lb}", "diff": "A - B"})
    return t[["metric", "frames", "n", f"A {la}", f"B {lb}", "A - B", "95% CI", "p", "better"]]


def to_markdown(cmp: Comparison) -> str:
    t = formatted(cmp)
    lines = [f"A: {cmp.a}  ", f"B: {cmp.b}  ", f"{cmp.setup}", ""]
    lines.append("| " + " | ".join(t.columns) + " |")
    lines.append("|" + "|".join("---" if c in ("metric", "frames", "better") else "---:" for c in t.columns) + "|")
    for row in t.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    lines += [""] + [f"- {n}" for n in cmp.notes]
    return "\n".join(lines).rstrip() + "\n"


def to_csv(cmp: Comparison) -> str:
    return cmp.table.to_csv(index=False)
