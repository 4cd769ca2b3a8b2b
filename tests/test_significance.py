"""Table 1 marks the cells not significantly different from the best (reports/significance.py).

Synthetic run directories (no training): model_a is the best, model_b a clear shift from
it, model_c model_a plus small zero-mean noise; the intervals are checked against
`bench.py compare` on the same runs and the p-values against scipy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from benchmarks.evaluate import aggregate
from benchmarks.pipeline import record_run
from reports.build import write_paper_report, write_report
from reports.compare import compare
from reports.ranking import bold_mask
from reports.reference import higher_is_better
from reports.significance import MARK, NO_PER_EXAMPLE
from rundir.atomic import write_csv
from rundir.run import read_per_example, write_per_example
from rundir.stats import metric_info, reduce_samples

N, SAMPLES, H = 40, 2, 12  # test examples, samples per example, predicted frames


def write_run(
    results: Path,
    model: str,
    seed: int,
    scores: dict[str, np.ndarray],
    params: int = 1000,
    test_length: int = 48,
    per_example: bool = True,
    fvd: float = 150.0,
) -> Path:
    """A finished run as the pipeline writes it: config.yaml, status.json, eval/{summary,curves}.csv and
    eval/per_example.* (per_example=False: a run evaluated before per-example files existed)."""
    run = results / "runs" / "mmnist" / model / f"smoke-s{seed}-fake"
    (run / "eval").mkdir(parents=True)
    config = {
        "model_name": model,  # unknown to the registry: a standard run, no variant
        "dataset": "mmnist",
        "preset": "smoke",
        "seed": seed,
        "model": {},
        "train": {},
        "data": {"name": "mmnist", "size": 64, "test_length": test_length, "n_test": N, "seed": 0},
        "eval": {"context": 36, "n_samples": SAMPLES, "mode": "standard", "metrics": ["ssim", "lpips", "fvd"]},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "status.json").write_text(json.dumps({"params": params, "train_time_s": 1.0, "steps": 4}))
    record_run(run, config, reference=params == 0)  # run.json, as the pipeline writes it
    curves, summary = aggregate(scores)
    # FVD: a set-level metric, one number per run and no per-example values
    summary = pd.concat([summary, pd.DataFrame([dict(metric="fvd", aggregate="best", value=fvd, n=N)])])
    write_csv(run / "eval" / "summary.csv", summary)
    write_csv(run / "eval" / "curves.csv", curves)
    if per_example:
        write_per_example(run, scores)
    return run


def base_scores(seed: int) -> dict[str, np.ndarray]:
    """{metric: (N, SAMPLES, H)} with a per-example level, so that paired differences are much tighter."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(-0.1, 0.1, (N, 1, 1))  # easy and hard test videos
    t = np.arange(H)
    ssim = 0.7 + level - 0.005 * t + 0.03 * rng.standard_normal((N, SAMPLES, H))
    lpips = 0.2 - level / 2 + 0.004 * t + 0.01 * rng.standard_normal((N, SAMPLES, H))
    return {"ssim": ssim, "lpips": lpips}


def shifted(scores: dict[str, np.ndarray], shift: float, noise: float, seed: int) -> dict[str, np.ndarray]:
    """scores + shift (worse for both metrics) + per-example noise that is the same for every sample and
    frame (the best sample stays the best) and has exactly zero mean over examples."""
    eps = noise * np.random.default_rng(seed).standard_normal((N, 1, 1))
    eps -= eps.mean()
    return {"ssim": scores["ssim"] - shift + eps, "lpips": scores["lpips"] + shift / 2 - eps / 2}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    results = tmp_path_factory.mktemp("significance") / "results"
    runs = {}
    for seed in (0, 1):
        a = base_scores(seed)
        runs["a", seed] = write_run(results, "model_a", seed, a, fvd=120.0 + seed)
        runs["b", seed] = write_run(results, "model_b", seed, shifted(a, 0.05, 0.01, 10 + seed))
        # C: A plus zero-mean noise, worse by 1e-4 so that A stays the best (ties would pick by name)
        runs["c", seed] = write_run(results, "model_c", seed, shifted(a, 1e-4, 0.01, 20 + seed))
    # a naive reference better than the best: tested, never the best
    runs["ref", 0] = write_run(results, "ref", 0, shifted(base_scores(0), -0.1, 0.01, 30), params=0)
    runs["d", 0] = write_run(
        results, "nofile_d", 0, shifted(base_scores(0), 0.03, 0.01, 50), per_example=False
    )  # no per-example file
    runs["e", 0] = write_run(
        results, "model_e", 0, shifted(base_scores(0), 0.02, 0.01, 60), test_length=60
    )  # another test set
    runs["f", 0] = write_run(results, "model_f", 0, shifted(base_scores(0), 0.05, 0.01, 40))  # seed 0 only
    # these models have no Table 1 label (outside the paper's comparison): all_models puts them in
    report = write_report(results, results / "report", all_models=True)
    table = pd.read_csv(results / "report" / "table1.csv")
    ours = table[table["source"] == "ours"].set_index(["entry", "metric"])
    return results, report, runs, ours


def seed_mean_d(runs, other: str, seeds, metric: str) -> np.ndarray:
    """(N,) other - model_a, per example: best-of-SAMPLES, time average, mean over seeds (by hand)."""

    def per_example(key):
        arrays = read_per_example(runs[key])
        return reduce_samples(arrays[metric], "best", metric_info(metric).higher_is_better).mean(1)

    return np.mean([per_example((other, s)) - per_example(("a", s)) for s in seeds], axis=0)


def test_a_clear_shift_is_significant_and_noise_is_not(built):
    _, _, runs, ours = built
    for metric in ("ssim", "lpips"):
        b, c = ours.loc[("model_b", metric)], ours.loc[("model_c", metric)]
        assert not b["not_significant"] and c["not_significant"], metric
        assert b["p_value"] < 1e-6 and c["p_value"] > 0.05
        # B is worse than the best A by the shift: -0.05 for SSIM (higher-better), +0.025 for LPIPS
        sign = -1 if higher_is_better(metric) else 0.5
        assert b["diff_ci_low"] < sign * 0.05 < b["diff_ci_high"]
        assert c["diff_ci_low"] < 0 < c["diff_ci_high"]
        # the difference is Table 1's: both seeds on both sides
        assert b["diff"] == pytest.approx(b["value"] - ours.loc[("model_a", metric), "value"], abs=1e-12)
        assert np.isnan(ours.loc[("model_a", metric), "p_value"])  # the best is not tested against itself
        assert not ours.loc[("model_a", metric), "not_significant"]


def test_numbers_match_compare_and_scipy(built):
    results, _, runs, ours = built
    # one seed per side: the table's interval is `bench.py compare OTHER BEST --bands 1-H`
    cmp = compare(str(runs["f", 0]), str(runs["a", 0]), out=results, bands=f"1-{H}").table.set_index("metric")
    for metric in ("ssim", "lpips"):
        f = ours.loc[("model_f", metric)]
        assert f["diff"] == pytest.approx(cmp.loc[metric, "diff"], abs=1e-12)
        assert (f["diff_ci_low"], f["diff_ci_high"]) == pytest.approx(
            (cmp.loc[metric, "ci_low"], cmp.loc[metric, "ci_high"]), abs=1e-12
        )
        assert f["p_value"] == pytest.approx(cmp.loc[metric, "p_wilcoxon"], rel=1e-9)
        # model_f has seed 0 only: the best is taken on seed 0 too
        d = seed_mean_d(runs, "f", [0], metric)
        assert f["diff"] == pytest.approx(d.mean(), abs=1e-12)
        assert "tested on the seeds both have (0)" in f["significance_notes"]
        # two seeds: per-example mean over the seeds, then Wilcoxon on those differences
        d = seed_mean_d(runs, "b", [0, 1], metric)
        assert ours.loc[("model_b", metric), "p_value"] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-9)


def test_the_best_is_the_best_ranked_model_and_references_are_tested(built):
    _, _, _, ours = built
    ref = ours.loc[("Ref", "ssim")]  # a naive reference is named by its label in words
    assert ref["value"] > ours.loc[("model_a", "ssim"), "value"]  # better, but a reference: never the best
    assert ref["reference"] and not ref["bold"] and not ref["not_significant"] and ref["diff_ci_low"] > 0.09


def test_untestable_cells_are_unmarked_and_say_why(built):
    results, _, _, ours = built
    d, e = ours.loc[("nofile_d", "ssim")], ours.loc[("model_e", "ssim")]
    assert not d["not_significant"] and np.isnan(d["p_value"]) and NO_PER_EXAMPLE in d["significance_notes"]
    assert not e["not_significant"] and "best vs this: data.test_length: 48 vs 60" in e["significance_notes"]
    fvd = ours.xs("fvd", level="metric")
    assert not fvd["not_significant"].any() and fvd["p_value"].isna().all()  # set-level: never tested
    md = (results / "report" / "table1.md").read_text()
    assert f"- not tested: {NO_PER_EXAMPLE} (nofile_d/mmnist/LPIPS, nofile_d/mmnist/SSIM)" in md
    assert (
        "- not tested: another test set than the best (best vs this: data.test_length: 48 vs 60) "
        "(model_e/mmnist/LPIPS, model_e/mmnist/SSIM)" in md
    )
    assert "FVD is a set-level metric" in md


def test_table1_md_marks_exactly_the_not_significant_cells(built):
    results, _, _, ours = built
    md = (results / "report" / "table1.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    header = next(line for line in md.splitlines() if line.startswith("| model |"))
    metrics = [h.split()[0].lower() for h in header.strip("| ").split(" | ")[1:5]]  # e.g. SSIM ↑ -> ssim
    assert metrics == ["ssim", "psnr", "lpips", "fvd"]  # PSNR: the paper's rows only
    for entry in ("model_a", "model_b", "model_c", "model_f", "nofile_d", "model_e"):
        cells = rows[entry].strip("| ").split(" | ")[1:5]
        for metric, cell in zip(metrics, cells):
            if metric == "psnr":
                assert cell == "–"
                continue
            assert cell.endswith(f" {MARK}") == bool(ours.loc[(entry, metric), "not_significant"]), (entry, metric)
    assert md.count(f" {MARK} |") == 2  # model_c: SSIM and LPIPS
    assert f"{MARK} after a number: not significantly different from the best" in md


def test_bold_and_mean_rank_are_unchanged(built):
    results, _, _, ours = built
    for metric in ("ssim", "lpips", "fvd"):
        cell = ours.xs(metric, level="metric")
        ranked = cell[~cell["reference"].astype(bool)]
        expected = bold_mask(ranked["value"], higher_is_better(metric))
        assert list(ranked["bold"]) == list(expected)
    mr = pd.read_csv(results / "report" / "mean_rank.csv").set_index(["source", "model"])
    # A: best everywhere; C: second in SSIM and LPIPS, FVD 150 tied with the rest: shared rank 2
    assert mr.loc[("ours:smoke", "model_a"), "mean_rank"] == pytest.approx(1.0)
    assert mr.loc[("ours:smoke", "model_c"), "mean_rank"] == pytest.approx(2.0)
    assert "Ref" not in mr.loc["ours:smoke"].index  # references are not ranked


def test_report_writes_every_file_and_is_deterministic(built, tmp_path):
    results, report, _, _ = built
    out = results / "report"
    for name in (
        "index.md",
        "table1.md",
        "table1.csv",
        "mean_rank.md",
        "mean_rank.csv",
        "mean_rank.png",
        "leaderboard.md",
        "leaderboard.csv",
        "curves/curves.csv",
        "curves/smoke/mmnist_ssim.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    again = write_report(results, tmp_path / "again", all_models=True)
    assert len(again.files) == len(report.files)
    for path in again.files:
        assert (out / path.relative_to(tmp_path / "again")).read_bytes() == path.read_bytes(), path.name


def test_paper_report_has_no_marks(tmp_path):
    write_paper_report(tmp_path)
    table = pd.read_csv(tmp_path / "table1.csv")
    assert not table["not_significant"].any() and table["p_value"].isna().all()
    assert MARK not in (tmp_path / "table1.md").read_text()
