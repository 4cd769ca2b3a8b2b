"""Paired comparisons: bands, bootstrap and Wilcoxon against closed forms, shifts found on synthetic runs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from benchmarks.cli import main
from benchmarks.evaluate import aggregate
from reports.compare import CompareError, bootstrap_ci, compare, parse_bands, wilcoxon_p
from rundir.atomic import write_csv
from rundir.run import write_per_example
from rundir.stats import horizon_bands, nice, reduce_samples

N, SAMPLES, HORIZON = 40, 2, 100


def write_run(
    out: Path,
    model: str,
    seed: int,
    scores: dict[str, np.ndarray],
    preset: str = "quick",
    test_length: int = 136,
    metrics: tuple[str, ...] = ("ssim", "psnr"),
    extra_data: dict | None = None,
) -> Path:
    """A run directory as the pipeline writes it: config.yaml, eval/summary.csv, eval/per_example.*."""
    run = out / "runs" / "mmnist" / model / f"{preset}-s{seed}-0000000{seed}"
    (run / "eval").mkdir(parents=True)
    config = {
        "model_name": model,
        "dataset": "mmnist",
        "preset": preset,
        "seed": seed,
        "model": {},
        "train": {},
        "data": {
            "name": "mmnist",
            "channels": 1,
            "size": 64,
            "test_length": test_length,
            "n_test": 32,
            "seed": 0,
            "root": f"/somewhere/{model}",
            **(extra_data or {}),
        },  # the root differs: not part of the test set
        "eval": {"context": 36, "n_videos": N, "n_samples": SAMPLES, "mode": "standard", "metrics": list(metrics)},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    write_per_example(run, scores)
    write_csv(run / "eval" / "summary.csv", aggregate(scores)[1])
    return run


def base_scores(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ssim = np.clip(0.8 - 0.003 * np.arange(HORIZON) + 0.05 * rng.standard_normal((N, SAMPLES, HORIZON)), 0, 1)
    psnr = 20 - 0.05 * np.arange(HORIZON) + rng.standard_normal((N, SAMPLES, HORIZON))
    lpips = np.clip(0.1 + 0.002 * np.arange(HORIZON) + 0.02 * rng.standard_normal((N, SAMPLES, HORIZON)), 0, None)
    return {"ssim": ssim, "psnr": psnr, "lpips": lpips}


# ---------------------------------------------------------------- pieces


def test_horizon_bands_follow_the_documented_rule():
    assert [nice(x) for x in (96.4, 482, 10, 50, 1.2, 6, 2.9, 3.4, 0.4)] == [
        100,
        500,
        10,
        50,
        1,
        5,
        2,
        5,
        1,
    ]  # log scale
    assert horizon_bands(964) == [(1, 964), (1, 100), (101, 500), (501, 964)]  # Moving MNIST, the paper
    assert horizon_bands(1000) == [(1, 1000), (1, 100), (101, 500), (501, 1000)]
    assert horizon_bands(100) == [(1, 100), (1, 10), (11, 50), (51, 100)]  # the quick preset
    assert horizon_bands(12) == [(1, 12), (1, 1), (2, 5), (6, 12)]  # the smoke preset
    assert horizon_bands(1) == [(1, 1)]
    assert parse_bands("1-10, 11-100,7", 100) == [(1, 10), (11, 100), (7, 7)]
    with pytest.raises(CompareError, match="must lie within 1-100"):
        parse_bands("1-200", 100)


def test_bootstrap_interval_against_closed_forms():
    assert bootstrap_ci(np.full(25, 0.3)) == pytest.approx((0.3, 0.3))  # no spread, no interval
    d = np.random.default_rng(1).normal(0.5, 2.0, 400)
    lo, hi = bootstrap_ci(d, 10_000, seed=0)
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))  # the normal-theory half width
    assert (lo + hi) / 2 == pytest.approx(d.mean(), abs=0.02)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.05)
    assert bootstrap_ci(d, 10_000, seed=0) == (lo, hi)  # seeded


def test_wilcoxon_p_matches_scipy_and_handles_zero_differences():
    assert wilcoxon_p(np.zeros(10)) == 1.0
    d = np.random.default_rng(2).normal(0.2, 1.0, 30)
    assert wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d).pvalue)
    assert wilcoxon_p(np.arange(1.0, 11.0)) == pytest.approx(2 / 2**10)  # all positive: the exact minimum


def test_reduce_samples_best_respects_the_direction():
    s = np.array([[[0.1, 0.2], [0.5, 0.6]]])  # (1 example, 2 samples, 2 frames)
    assert reduce_samples(s, "best", higher_is_better=True).tolist() == [[0.5, 0.6]]  # higher is better
    assert reduce_samples(s, "best", higher_is_better=False).tolist() == [[0.1, 0.2]]  # lower is better
    assert reduce_samples(s, "mean", higher_is_better=True)[0].tolist() == pytest.approx([0.3, 0.4])


# ---------------------------------------------------------------- runs


def test_a_known_shift_is_found_with_the_right_direction(tmp_path):
    out = tmp_path / "results"
    base = base_scores()
    shifted = {"ssim": base["ssim"] + 0.02, "psnr": base["psnr"] - 1.5, "lpips": base["lpips"] - 0.01}
    write_run(out, "better_ssim", 0, shifted, metrics=("ssim", "psnr", "lpips", "fvd"))
    write_run(out, "reference", 0, base, metrics=("ssim", "psnr", "lpips", "fvd"))
    cmp = compare("better_ssim", "reference", out)
    t = cmp.table.set_index(["metric", "frames"])
    assert list(t.loc["ssim"].index) == ["1-100", "1-10", "11-50", "51-100"]
    # every sample moved by the same amount, so best-of-N picks the same sample and d_i is the shift exactly
    assert t.loc[("ssim", "1-100"), "diff"] == pytest.approx(0.02)
    assert t.loc[("ssim", "1-100"), "ci_low"] == pytest.approx(0.02) and t.loc[("ssim", "1-100"), "p_wilcoxon"] < 1e-6
    assert (t.loc["ssim", "better"] == "better_ssim").all()
    assert (t.loc["psnr", "better"] == "reference").all()  # higher is better: A's PSNR is lower
    assert (t.loc["lpips", "better"] == "better_ssim").all()  # lower is better: A's LPIPS is lower
    assert t.loc[("psnr", "1-100"), "diff"] == pytest.approx(-1.5)
    ssim_a = reduce_samples(shifted["ssim"], "best", True)[:, 10:50].mean()  # frames 11-50
    assert t.loc[("ssim", "11-50"), "mean_a"] == pytest.approx(ssim_a)
    assert any("fvd is a set-level metric" in n for n in cmp.notes)


def test_noisy_shift_interval_covers_it_and_no_shift_is_not_significant(tmp_path):
    out = tmp_path / "results"
    base = base_scores()
    rng = np.random.default_rng(5)
    per_example = rng.normal(0.03, 0.02, (N, 1, 1))  # each example shifted by its own amount, mean 0.03
    write_run(out, "a", 0, {"ssim": base["ssim"] + per_example})
    write_run(out, "b", 0, {"ssim": base["ssim"]})
    row = compare("a", "b", out).table.iloc[0]
    true_mean = per_example.mean()
    assert row["ci_low"] < true_mean < row["ci_high"] and row["ci_low"] > 0 and row["better"] == "a"
    noise = rng.normal(0, 0.02, (N, 1, 1))
    noise -= noise.mean()  # a zero-mean difference
    write_run(out, "c", 0, {"ssim": base["ssim"] + noise})
    row = compare("c", "b", out).table.iloc[0]
    assert row["ci_low"] < 0 < row["ci_high"] and row["better"] == "" and row["p_wilcoxon"] > 0.05


def test_a_run_against_itself_shows_no_difference(tmp_path, capsys):
    out = tmp_path / "results"
    run = write_run(out, "cwvae", 0, base_scores())
    cmp = compare(str(run), str(run), out)
    t = cmp.table
    assert (t["diff"] == 0).all() and (t["ci_low"] == 0).all() and (t["ci_high"] == 0).all()
    assert (t["p_wilcoxon"] == 1.0).all() and (t["better"] == "").all()
    shifted = {k: v + 0.5 for k, v in base_scores().items()}
    other = write_run(tmp_path / "elsewhere", "cwvae", 0, shifted)  # the same model, another config
    t = compare(str(other), str(run), out).table.set_index("metric")
    assert (t.loc["ssim", "better"] == "A").all() and (t.loc["lpips", "better"] == "B").all()  # A/B: same label
    assert main(["compare", str(run), str(run), "--out", str(out), "--format", "csv"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(csv.columns) == [
        "metric",
        "frames",
        "n",
        "mean_a",
        "mean_b",
        "diff",
        "ci_low",
        "ci_high",
        "p_wilcoxon",
        "better",
    ]
    assert len(csv) == 3 * 4 and (csv["diff"] == 0).all()


def test_seeds_pair_by_seed_and_average_per_example(tmp_path, capsys):
    out = tmp_path / "results"
    a = {s: base_scores(seed=10 + s) for s in (0, 1, 2)}
    b = {s: base_scores(seed=20 + s) for s in (0, 1)}
    for s, scores in a.items():
        write_run(out, "a", s, scores)
    for s, scores in b.items():
        write_run(out, "b", s, scores)
    cmp = compare("a", "b", out, bands="1-100")
    row = cmp.table.set_index("metric").loc["psnr"]
    expect_a = np.mean([reduce_samples(a[s]["psnr"], "best", True) for s in (0, 1)], axis=0).mean()
    expect_b = np.mean([reduce_samples(b[s]["psnr"], "best", True) for s in (0, 1)], axis=0).mean()
    assert row["mean_a"] == pytest.approx(expect_a) and row["mean_b"] == pytest.approx(expect_b)
    assert any("seeds [2] are not on both sides" in n for n in cmp.notes)
    assert main(["compare", "a", "b", "--out", str(out), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "| metric | frames | n | A a | B b | A - B | 95% CI | p | better |" in md and "seeds [0, 1]" in md


def test_different_test_sets_are_refused(tmp_path, capsys):
    out = tmp_path / "results"
    write_run(out, "a", 0, base_scores())
    short = {k: v[:, :, :50] for k, v in base_scores().items()}
    other = write_run(out, "b", 0, short, test_length=86)
    with pytest.raises(CompareError, match="not evaluated on the same test set.*data.test_length: 136 vs 86"):
        compare("a", str(other), out)
    newer = write_run(out, "c", 0, base_scores(), extra_data={"new_field": 1})  # written by a newer harness
    assert any("data keys ['new_field'] are in only one config" in n for n in compare("a", str(newer), out).notes)
    other_seed = write_run(out, "d", 0, base_scores(), extra_data={"seed": 7})  # another test set
    with pytest.raises(CompareError, match="data.seed: 0 vs 7"):
        compare("a", str(other_seed), out)
    assert main(["compare", "a", "nobody", "--out", str(out)]) == 2
    assert "no evaluated runs of model 'nobody'" in capsys.readouterr().err
    write_run(out, "a", 0, base_scores(), preset="smoke")
    write_run(out, "b", 1, base_scores(), preset="smoke")
    with pytest.raises(CompareError, match="several settings: pass one of --dataset mmnist --preset quick"):
        compare("a", "b", out)  # both have quick and smoke runs
    assert compare("a", "b", out, preset="smoke").table["n"].iloc[0] == N
