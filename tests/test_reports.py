"""Reports: the bold rule, the paper's ranks, and a full report over synthetic run directories.

No training here: run directories are written by hand (config.yaml, run.json as the
pipeline writes it, status.json, train.jsonl, eval/curves.csv, eval/summary.csv,
samples/samples.npz), so every number a report prints can be checked against the numbers put in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from benchmarks.config import resolve_config
from benchmarks.pipeline import record_run
from reports.build import write_paper_report, write_report
from reports.ranking import bold_mask, competition_ranks, format_rank, mean_rank
from reports.reference import higher_is_better, paper_mean_rank, paper_table1, paper_table2
from rundir.run import collect, variant
from rundir.stats import t_interval

HIB = higher_is_better  # "newmetric", unknown: higher is better

# ---------------------------------------------------------------- the rules on hand-made tables


def test_bold_higher_is_better_keeps_the_best_and_within_five_percent():
    # best 100 -> bound 95: 95 is in, 94.99 is out; ties with the best are bold; NaN never
    values = [100.0, 95.0, 94.99, 100.0, np.nan, 60.0]
    assert bold_mask(values, higher=True).tolist() == [True, True, False, True, False, False]


def test_bold_lower_is_better_uses_105_percent_of_the_best():
    # best 20 -> bound 21
    values = [21.0, 20.0, 21.01, 35.0, 20.0]
    assert bold_mask(values, higher=False).tolist() == [True, True, False, False, True]


def test_bold_on_the_papers_moving_mnist_cells():
    t = paper_table1()
    mm = t[t["dataset"] == "Moving MNIST"]
    ssim = mm[mm["metric"] == "ssim"].set_index("model")["value"]
    fvd = mm[mm["metric"] == "fvd"].set_index("model")["value"]
    # SSIM: best 0.68 (CW-VAE), bound 0.646: NoTmpAbs 0.66 in, RSSM/SVG 0.64 out
    bold = dict(zip(ssim.index, bold_mask(ssim.to_numpy(), True)))
    assert bold == {"CW-VAE": True, "VTA": False, "RSSM": False, "SVG": False, "NoTmpAbs": True}
    # FVD: best 578 (NoTmpAbs), bound 606.9: RSSM 589 and CW-VAE 593 in, VTA/SVG out
    bold = dict(zip(fvd.index, bold_mask(fvd.to_numpy(), False)))
    assert bold == {"CW-VAE": True, "VTA": False, "RSSM": True, "SVG": False, "NoTmpAbs": True}


def test_competition_ranks_share_the_best_rank_on_ties():
    assert competition_ranks([0.31, 0.35, 0.31, 0.32, 0.36], higher=False).tolist() == [1, 4, 1, 3, 5]
    assert competition_ranks([0.55, 0.44, 0.55, 0.42], higher=True).tolist() == [1, 3, 1, 4]
    assert np.isnan(competition_ranks([1.0, np.nan], higher=True)[1])


def test_mean_rank_on_a_hand_made_table_with_ties_and_a_missing_cell():
    rows = [
        # dataset a, ssim (higher): A 0.9, B 0.9, C 0.5 -> 1, 1, 3
        ("a", "ssim", "A", 0.9), ("a", "ssim", "B", 0.9), ("a", "ssim", "C", 0.5),
        # dataset a, fvd (lower): A 300, B 100, C 200 -> 3, 1, 2
        ("a", "fvd", "A", 300), ("a", "fvd", "B", 100), ("a", "fvd", "C", 200),
        # dataset b, ssim: A 0.7, B 0.6 (C missing) -> 1, 2
        ("b", "ssim", "A", 0.7), ("b", "ssim", "B", 0.6),
    ]  # fmt: skip
    long = pd.DataFrame(rows, columns=["dataset", "metric", "model", "value"])
    table = mean_rank(long, HIB).set_index("model")
    assert table.loc["A", "mean_rank"] == pytest.approx((1 + 3 + 1) / 3)
    assert table.loc["B", "mean_rank"] == pytest.approx((1 + 1 + 2) / 3)
    assert table.loc["C", "mean_rank"] == pytest.approx((3 + 2) / 2)
    assert table.loc["C", "cells"] == 2 and table.loc["A", "cells"] == 3
    assert list(table.index) == ["B", "A", "C"]  # best first


def test_the_papers_table1_gives_figure5():
    ranks = mean_rank(paper_table1(), HIB).set_index("model")["mean_rank"]
    assert ranks.to_dict() == {"CW-VAE": 2.25, "NoTmpAbs": 2.625, "RSSM": 2.75, "SVG": 3.3125, "VTA": 3.625}
    printed = {m: format_rank(v) for m, v in ranks.items()}
    assert printed == {"CW-VAE": "2.25", "NoTmpAbs": "2.62", "RSSM": "2.75", "SVG": "3.31", "VTA": "3.62"}
    fig5 = paper_mean_rank().set_index("model")["mean_rank"]
    assert {m: f"{v:.2f}" for m, v in fig5.items()} == printed
    # the tie rule matters: averaging tied ranks does not give Figure 5
    t = paper_table1()
    avg = t.assign(
        rank=t.groupby(["dataset", "metric"])["value"].transform(
            lambda v: v.rank(method="average", ascending=not HIB(t.loc[v.index[0], "metric"]))
        )
    )
    assert avg.groupby("model")["rank"].mean()["CW-VAE"] == pytest.approx(2.3125)


def test_report_paper_writes_table1_and_figure5(tmp_path, capsys):
    from benchmarks.commands.report import main

    assert main(["--paper", "--out", str(tmp_path / "paper")]) == 0
    printed = capsys.readouterr().out
    for line in ["CW-VAE      2.25", "NoTmpAbs    2.62", "RSSM        2.75", "SVG         3.31", "VTA         3.62"]:
        assert line in printed
    frame = pd.read_csv(tmp_path / "paper" / "mean_rank.csv")
    assert frame["printed"].map("{:.2f}".format).tolist() == frame["paper_printed"].map("{:.2f}".format).tolist()
    for name in ["table1.md", "table1.csv", "mean_rank.md", "mean_rank.csv", "mean_rank.png"]:
        assert (tmp_path / "paper" / name).stat().st_size > 0
    table1 = (tmp_path / "paper" / "table1.md").read_text()
    assert "| CW-VAE (paper) | **0.68** | **13.11** | **0.26** | **593** |" in table1
    assert len(write_paper_report(tmp_path / "again").files) == 5


def test_paper_table2_reference():
    t2 = paper_table2().set_index("levels")
    assert t2.loc[4, "factor"] == 4 and t2.loc[3, "factor"] == 6
    assert t2.loc[3, "kl_level3"] == pytest.approx(6.29) and np.isnan(t2.loc[1, "kl_level2"])


# ---------------------------------------------------------------- synthetic run directories

H = 12  # predicted frames of the smoke preset (48 - 36)


def curve(metric: str, seed: int, level: float) -> np.ndarray:
    """A deterministic per-horizon curve (H,) that decays with t."""
    t = np.arange(1, H + 1)
    slope = -0.01 if metric != "fvd" else 5.0
    return level + slope * t + 0.002 * seed


def write_fake_run(
    results: Path,
    model: str,
    dataset: str = "mmnist",
    seed: int = 0,
    sets=(),
    levels=None,
    params: int = 1000,
    kl=None,
    notes=None,
    samples: bool = True,
    n_samples: int = 1,
    legacy: bool = False,
    preset: str = "smoke",
) -> Path:
    """A finished run directory with hand-made numbers; `levels` {metric: level} sets its scores."""
    try:
        cfg = resolve_config(model, dataset, preset, sets=list(sets), seed=seed)
        directory, cfg_dict = cfg.run_dir(results), cfg.to_dict()
    except Exception:  # a model or dataset this checkout does not know: a hand-written config
        cfg_dict = {
            "model_name": model,
            "dataset": dataset,
            "preset": "smoke",
            "seed": seed,
            "model": {},
            "data": {"name": dataset},
            "train": {},
            "eval": {"context": 36},
        }
        directory = results / "runs" / dataset / model / f"smoke-s{seed}-fake"
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
    (directory / "status.json").write_text(json.dumps({"params": params, "train_time_s": 10.0 + seed, "steps": 4}))
    if not legacy:  # a run made before run.json existed has none
        record_run(directory, cfg_dict, reference=params == 0)
    curves, summary = [], []
    for metric, level in (levels or {}).items():
        c = curve(metric, seed, level)
        for t, v in enumerate(c, start=1):
            curves.append(dict(metric=metric, aggregate="best", t=t, mean=v, ci_low=v - 0.01, ci_high=v + 0.01, n=4))
        summary.append(
            dict(metric=metric, aggregate="best", value=c.mean(), ci_low=c.mean() - 0.02, ci_high=c.mean() + 0.02, n=4)
        )
        summary.append(dict(metric=metric, aggregate="mean", value=c.mean() - 1, ci_low=0, ci_high=0, n=4))
    for metric, note in (notes or {}).items():  # a set-level metric the evaluation could not compute
        summary.append(
            dict(metric=metric, aggregate="best", value=np.nan, ci_low=np.nan, ci_high=np.nan, n=2, notes=note)
        )
    (directory / "eval").mkdir()
    pd.DataFrame(curves).to_csv(directory / "eval" / "curves.csv", index=False)
    pd.DataFrame(summary).to_csv(directory / "eval" / "summary.csv", index=False)
    if kl is not None:
        lines = [
            {"step": s, "train/loss": 100.0 - s, **{f"train/kl_level{i + 1}": v * s / 10 for i, v in enumerate(kl)}}
            for s in range(1, 11)
        ]
        (directory / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if samples:
        rng = np.random.default_rng(0)  # same ground truth in every run: one test set
        gt = rng.integers(0, 255, (2, 36 + H, 16, 16, 1), dtype=np.uint8)
        pred = np.random.default_rng(seed + 1).integers(0, 255, (2, n_samples, H, 16, 16, 1), dtype=np.uint8)
        (directory / "samples").mkdir()
        np.savez_compressed(directory / "samples" / "samples.npz", gt=gt, pred=pred, context=36)
    return directory


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Results with standard runs, a reference, an unknown model/dataset/metric and study variants."""
    results = tmp_path_factory.mktemp("synthetic") / "results"
    kl3 = (30.0, 5.0, 1.0)
    write_fake_run(results, "cwvae", seed=0, levels={"ssim": 0.80, "psnr": 20.0}, kl=kl3)
    write_fake_run(results, "cwvae", seed=1, levels={"ssim": 0.82, "psnr": 21.0}, kl=kl3)
    write_fake_run(results, "notmpabs", levels={"ssim": 0.70, "psnr": 20.5}, kl=kl3)
    write_fake_run(results, "copy_last", levels={"ssim": 0.95, "psnr": 30.0}, params=0)
    write_fake_run(results, "random_frame", levels={"ssim": 0.30, "psnr": 9.0}, params=0)
    write_fake_run(results, "rssm_planet", levels={"ssim": 0.99, "psnr": 40.0})  # a variant outside Table 1
    # a model, a dataset and a metric this code has never heard of
    write_fake_run(
        results, "mymodel", dataset="toyset", levels={"ssim": 0.5, "newmetric": 3.0}, notes={"fvd": "FVD undefined"}
    )
    write_fake_run(results, "cwvae", dataset="toyset", levels={"ssim": 0.6, "newmetric": 2.0})
    # studies: levels, factor, speed, top_prior
    write_fake_run(results, "cwvae", sets=["model.levels=2"], levels={"ssim": 0.7}, kl=(40.0, 4.0))
    write_fake_run(results, "cwvae", sets=["model.factor=2"], levels={"ssim": 0.6}, kl=(35.0, 6.0, 2.0))
    write_fake_run(results, "cwvae", sets=["data.speed=0.1"], levels={"ssim": 0.9}, kl=(10.0, 8.0, 3.0))
    write_fake_run(
        results, "cwvae", sets=["eval.use_obs=[true,true,false]", "eval.n_samples=3"], levels={"ssim": 0.5}, n_samples=3
    )
    # an unfinished run: listed as missing, never counted
    d = results / "runs" / "mmnist" / "cwvae" / "smoke-s9-unfinished"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({**resolve_config("cwvae", "mmnist", "smoke", seed=9).to_dict()}))
    report = write_report(results, results / "report")
    return results, report


def test_variants_are_named_by_the_keys_that_differ(synthetic):
    results, _ = synthetic
    variants = {(r.model, r.dataset, r.seed, r.variant) for r in collect(results)}
    assert ("cwvae", "mmnist", 0, "") in variants and ("cwvae", "mmnist", 1, "") in variants
    assert ("cwvae", "mmnist", 0, "model.levels=2") in variants
    assert ("cwvae", "mmnist", 0, "data.speed=0.1") in variants
    assert ("cwvae", "mmnist", 0, "eval.n_samples=3, eval.use_obs=[true,true,false]") in variants
    preset = resolve_config("cwvae", "mmnist", "smoke").to_dict()
    cfg = resolve_config("cwvae", "mmnist", "smoke", sets=["eval.save_samples=7", "train.log_every=3"]).to_dict()
    assert variant(cfg, preset) == ""  # settings that change no number do not make a variant
    del cfg["eval"]["use_obs"]
    assert variant(cfg, preset) == ""  # a key added to the code after the run was made is no difference
    cfg["model"]["levels"] = 2.0
    assert variant(cfg, preset) == "model.levels=2"


def test_report_writes_every_file_and_index_links_resolve(synthetic):
    results, report = synthetic
    out = results / "report"
    expected = [
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
        "curves/smoke/mmnist_psnr.png",
        "curves/smoke/toyset_newmetric.png",
        "samples/smoke/mmnist.png",
        "samples/smoke/mmnist.gif",
        "training/smoke/mmnist.png",
        "studies/levels.md",
        "studies/levels.csv",
        "studies/levels.png",
        "studies/factor_smoke.md",
        "studies/factor_smoke_ssim.png",
        "studies/speed_smoke_L3_k6.md",
        "studies/speed_smoke_L3_k6.png",
        "studies/top_prior.md",
        "studies/top_prior/smoke_mmnist_cwvae_s0.png",
        "studies/top_prior/smoke_mmnist_cwvae_s0.gif",
    ]
    for name in expected:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert set(report.files) >= {out / n for n in expected}
    index = (out / "index.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", index)
    assert len(links) >= 15 and all((out / link).is_file() for link in links)
    # missing, listed by the paper's names (Table 1's order of datasets, Table D.2's of models)
    assert "datasets without a finished run: MineRL Navigate, KTH Action, GQN Mazes" in index
    assert "models without a finished run: RSSM, SVG, VTA" in index
    assert "1 run(s) not finished" in index
    from PIL import Image

    gif = Image.open(out / "samples" / "smoke" / "mmnist.gif")
    assert gif.n_frames == 36 + H  # every frame of a short video


def test_table1_values_bold_and_references(synthetic):
    results, _ = synthetic
    t = pd.read_csv(results / "report" / "table1.csv")
    ours = t[(t["source"] == "ours") & (t["dataset"] == "mmnist")].set_index(["entry", "metric"])
    cw0, cw1 = curve("ssim", 0, 0.80).mean(), curve("ssim", 1, 0.82).mean()
    # rows are named as run.json names them: the paper's label, a reference's label in words
    assert ours.loc[("CW-VAE", "ssim"), "value"] == pytest.approx((cw0 + cw1) / 2)  # mean over seeds
    assert ours.loc[("CW-VAE", "ssim"), "n_seeds"] == 2
    lo, hi = t_interval(np.array([cw0, cw1]))[1:]
    assert ours.loc[("CW-VAE", "ssim"), "ci_low"] == pytest.approx(lo)
    assert ours.loc[("CW-VAE", "ssim"), "ci_high"] == pytest.approx(hi)
    # SSIM: CW-VAE ~0.745 best among trained models; NoTmpAbs ~0.634 < 0.95 x best; references never bold
    assert ours.loc[("CW-VAE", "ssim"), "bold"] and not ours.loc[("NoTmpAbs", "ssim"), "bold"]
    assert not ours.loc[("Copy last", "ssim"), "bold"] and ours.loc[("Copy last", "ssim"), "reference"]
    # PSNR: NoTmpAbs 20.44 best; CW-VAE 20.44 (mean of 19.94 and 20.94 + seed offsets) within 5%
    assert ours.loc[("CW-VAE", "psnr"), "bold"] and ours.loc[("NoTmpAbs", "psnr"), "bold"]
    assert "model.levels" not in " ".join(t["entry"])  # variants stay out of Table 1 by default
    assert "mymodel" not in set(t["entry"])  # a model outside the paper's comparison: leaderboard only
    md = (results / "report" / "table1.md").read_text()
    assert "_Copy last_" in md and "CW-VAE (paper)" in md and "### toyset (`toyset`)" in md
    assert "### Moving MNIST (`mmnist`)" in md  # the dataset's name in the paper, from run.json
    assert "NEWMETRIC ↑" in md  # an unknown metric is picked up (direction: higher, the default)


def test_all_models_puts_the_others_into_table1(synthetic, tmp_path):
    results, _ = synthetic
    write_report(results, tmp_path / "all", all_models=True)
    t = pd.read_csv(tmp_path / "all" / "table1.csv")
    mine = t[(t["source"] == "ours") & (t["entry"] == "mymodel")].set_index("metric")
    assert mine.loc["ssim", "value"] == pytest.approx(curve("ssim", 0, 0.5).mean())
    md = (tmp_path / "all" / "table1.md").read_text()
    assert "- FVD undefined (mymodel/toyset/FVD)" in md  # the evaluation's notes are shown
    mr = pd.read_csv(tmp_path / "all" / "mean_rank.csv")
    ours = mr[mr["source"] == "ours:smoke"].set_index("model")
    # toyset: ssim cwvae 0.6 > mymodel 0.5; newmetric (higher) mymodel 3 > cwvae 2
    assert ours.loc["mymodel", "cells"] == 2 and ours.loc["mymodel", "mean_rank"] == pytest.approx(1.5)


def test_rssm_planet_is_in_the_leaderboard_but_not_in_table1_or_the_mean_rank(synthetic):
    results, _ = synthetic
    t = pd.read_csv(results / "report" / "table1.csv")
    assert "rssm_planet" not in set(t["entry"])  # although its made-up scores would be the best
    mr = pd.read_csv(results / "report" / "mean_rank.csv")
    assert "rssm_planet" not in set(mr["model"])
    board = pd.read_csv(results / "report" / "leaderboard.csv", keep_default_na=False)
    assert float(board[board["model"] == "rssm_planet"]["ssim"].iloc[0]) == pytest.approx(curve("ssim", 0, 0.99).mean())


def test_mean_rank_of_our_runs(synthetic):
    results, _ = synthetic
    mr = pd.read_csv(results / "report" / "mean_rank.csv")
    ours = mr[mr["source"] == "ours:smoke"].set_index("model")
    # mmnist ssim: cwvae 1, notmpabs 2; mmnist psnr: notmpabs 20.44 vs cwvae 20.44+...: see values below
    psnr_cw = (curve("psnr", 0, 20.0).mean() + curve("psnr", 1, 21.0).mean()) / 2
    psnr_no = curve("psnr", 0, 20.5).mean()
    cw_psnr_rank = 1 if psnr_cw > psnr_no else 2
    # toyset: cwvae alone (mymodel is outside the paper's comparison): rank 1 on ssim and newmetric
    assert ours.loc["CW-VAE", "mean_rank"] == pytest.approx((1 + cw_psnr_rank + 1 + 1) / 4)
    assert ours.loc["NoTmpAbs", "cells"] == 2 and "mymodel" not in ours.index
    assert "Copy last" not in ours.index  # references are not ranked
    paper = mr[mr["source"] == "paper"].set_index("model")
    assert paper.loc["CW-VAE", "printed"] == 2.25


def test_leaderboard_one_row_per_model_dataset_preset(synthetic):
    results, _ = synthetic
    board = pd.read_csv(results / "report" / "leaderboard.csv", keep_default_na=False)
    cw = board[(board["model"] == "cwvae") & (board["dataset"] == "mmnist") & (board["variant"] == "")]
    assert len(cw) == 1 and int(cw["seeds"].iloc[0]) == 2 and cw["ci_over"].iloc[0] == "seeds"
    assert float(cw["train_time_s"].iloc[0]) == pytest.approx(10.5)  # mean of 10 and 11
    values = np.array([curve("ssim", 0, 0.80).mean(), curve("ssim", 1, 0.82).mean()])
    half = stats.t.ppf(0.975, 1) * values.std(ddof=1) / np.sqrt(2)
    assert float(cw["ssim_ci_high"].iloc[0]) - float(cw["ssim"].iloc[0]) == pytest.approx(half)
    md = (results / "report" / "leaderboard.md").read_text()
    assert f"{values.mean():.3f} ± {half:.3f}" in md
    assert len(board[board["variant"] != ""]) == 4  # levels, factor, speed, use_obs variants listed


def test_studies_tables(synthetic):
    results, _ = synthetic
    levels = pd.read_csv(results / "report" / "studies" / "levels.csv")
    ours = levels[levels["preset"] == "smoke"].set_index(["levels", "factor"])
    # final KL = mean of the last 10% of 10 logged steps = the last one: kl * 10 / 10
    assert ours.loc[(2, 6), "kl_level1"] == pytest.approx(40.0)
    assert ours.loc[(3, 6), "kl_level3"] == pytest.approx(1.0) and ours.loc[(3, 6), "seeds"] == 2
    assert ours.loc[(3, 2), "kl_level2"] == pytest.approx(6.0)
    assert (levels["preset"] == "paper").sum() == 4
    speed = pd.read_csv(results / "report" / "studies" / "speed_smoke_L3_k6.csv").set_index("speed")
    assert speed.loc[0.1, "kl_level2"] == pytest.approx(8.0) and speed.loc[1.0, "kl_level2"] == pytest.approx(5.0)
    top = (results / "report" / "studies" / "top_prior.md").read_text()
    assert "use_obs [true, true, false]" in top


def test_report_is_deterministic(synthetic, tmp_path):
    results, _ = synthetic
    again = write_report(results, tmp_path / "again")
    for path in again.files:
        first = results / "report" / path.relative_to(tmp_path / "again")
        assert first.read_bytes() == path.read_bytes(), path.name


def test_report_command_on_an_empty_directory_says_what_to_do(tmp_path, capsys):
    from benchmarks.cli import main

    assert main(["report", "--runs", str(tmp_path)]) == 2
    assert "no runs/" in capsys.readouterr().err


def test_runs_without_run_json_are_listed_then_relabelled(tmp_path, capsys):
    """A run made before run.json existed: read from config.yaml (never re-resolved), kept out of Table 1
    and listed; `bench.py relabel` writes its run.json, and the next report puts it in."""
    from benchmarks.cli import main

    results = tmp_path / "results"
    old = write_fake_run(results, "cwvae", levels={"ssim": 0.8}, legacy=True)
    write_fake_run(results, "copy_last", levels={"ssim": 0.9}, params=0)
    (run,) = [r for r in collect(results) if r.model == "cwvae"]
    assert run.legacy and run.variant == "?" and run.paper_label is None and run.entry == "cwvae [?]"
    assert run.metrics["ssim"]["higher_is_better"]  # what config.yaml tells is derived from it
    write_report(results, results / "report")
    t = pd.read_csv(results / "report" / "table1.csv")
    assert set(t[t["source"] == "ours"]["entry"]) == {"Copy last"}
    index = (results / "report" / "index.md").read_text()
    assert "1 run(s) written before run directories recorded" in index and "python bench.py relabel" in index
    board = pd.read_csv(results / "report" / "leaderboard.csv", keep_default_na=False)
    assert "?" in set(board["variant"])  # the leaderboard still shows it
    capsys.readouterr()
    assert main(["relabel", "--out", str(results)]) == 0
    assert "the preset's own config; Table 1: CW-VAE" in capsys.readouterr().out
    info = json.loads((old / "run.json").read_text())
    assert info["paper_label"] == "CW-VAE" and info["variant"] == ""
    write_report(results, results / "report")
    t = pd.read_csv(results / "report" / "table1.csv")
    assert set(t[t["source"] == "ours"]["entry"]) == {"Copy last", "CW-VAE"}


def test_the_papers_rows_sit_beside_the_official_mode_numbers(tmp_path):
    """At the paper preset runs write ssim/psnr and their official-mode twins; Table 1 sets the paper's
    SSIM and PSNR (computed the official way) in the twins' columns, says so, and ranks the standard ones."""
    results = tmp_path / "results"
    write_fake_run(results, "cwvae", preset="paper", levels={"ssim": 0.6, "ssim_official": 0.7, "psnr": 14.0})
    write_fake_run(results, "notmpabs", preset="paper", levels={"ssim": 0.5, "ssim_official": 0.8, "psnr": 15.0})
    write_report(results, results / "report")
    md = (results / "report" / "table1.md").read_text()
    assert "| model | SSIM ↑ | SSIM (official) ↑ | PSNR ↑ | LPIPS ↓ | FVD ↓ | seeds |" in md
    # the paper's SSIM sits under SSIM (official); its PSNR has no official twin among ours here: as before
    assert "| CW-VAE (paper) | – | **0.68** | **13.11** | **0.26** | **593** |  |" in md
    assert "The paper's SSIM and PSNR come from the official CW-VAE evaluation" in md and "SSIM (official))" in md
    mr = pd.read_csv(results / "report" / "mean_rank.csv").set_index(["source", "model"])
    assert mr.loc[("ours:paper", "CW-VAE"), "cells"] == 2  # ssim and psnr; the official twin is not ranked
    assert mr.loc[("ours:paper", "CW-VAE"), "mean_rank"] == pytest.approx(1.5)  # ssim 1st, psnr 2nd


def test_mean_rank_counts_moving_mnist_once_on_the_official_archive_where_a_model_has_it(tmp_path, capsys):
    """Runs on both `mmnist` (generated) and `mmnist_official`: one Moving MNIST dataset in the mean rank,
    each model on the official archive where it has runs there (run.json's paper_data), else on mmnist;
    Table 1 keeps both, labelled. A run.json written before paper_data: `relabel` records it."""
    from benchmarks.cli import main
    from reports.build import table1_of
    from reports.table1 import mean_rank_frame, mean_rank_markdown, table1_markdown

    results = tmp_path / "results"
    runs = [
        ("cwvae", "mmnist", {"ssim": 0.80, "psnr": 20.0}),
        ("cwvae", "mmnist_official", {"ssim": 0.60, "psnr": 15.0}),
        ("notmpabs", "mmnist", {"ssim": 0.70, "psnr": 21.0}),
        ("notmpabs", "mmnist_official", {"ssim": 0.65, "psnr": 16.0}),
        ("rssm", "mmnist", {"ssim": 0.90, "psnr": 25.0}),  # no run on the official archive
        ("cwvae", "kth", {"ssim": 0.70}),
        ("notmpabs", "kth", {"ssim": 0.60}),
    ]
    for model, dataset, levels in runs:
        write_fake_run(results, model, dataset=dataset, levels=levels, samples=False)
    official = next((results / "runs" / "mmnist_official" / "cwvae").iterdir())
    assert json.loads((official / "run.json").read_text())["paper_data"] is True

    def ranks():
        frame = mean_rank_frame(table1_of(collect(results))[1])
        return frame[frame["source"] == "ours:smoke"].set_index("model")

    ours = ranks()
    # Moving MNIST ssim: RSSM 0.90 (mmnist) 1, NoTmpAbs 0.65 2, CW-VAE 0.60 3 (official); psnr the same
    # order (25, 16, 15); KTH ssim: CW-VAE 1, NoTmpAbs 2. Counted twice it would be 5 cells, CW-VAE 2.0.
    assert ours.loc["CW-VAE", "mean_rank"] == pytest.approx((3 + 3 + 1) / 3)
    assert ours.loc["NoTmpAbs", "mean_rank"] == pytest.approx((2 + 2 + 2) / 3)
    assert ours.loc["RSSM", "mean_rank"] == pytest.approx(1.0)
    assert set(ours["total_cells"]) == {3} and ours.loc["CW-VAE", "cells"] == 3 and ours.loc["RSSM", "cells"] == 2
    assert ours.loc["CW-VAE", "counted_on"] == "Moving MNIST: mmnist_official"
    assert ours.loc["RSSM", "counted_on"] == "Moving MNIST: mmnist"
    md = mean_rank_markdown(ours.reset_index())
    assert "| CW-VAE | 2.33 | 3/3 | Moving MNIST: mmnist_official |" in md and "counted once" in md
    table1 = table1_markdown(table1_of(collect(results))[1])
    assert "### Moving MNIST (`mmnist`)" in table1 and "### Moving MNIST (`mmnist_official`)" in table1

    # run.json from before paper_data: which is the paper's own data is unknown, the first by name counts
    for path in (results / "runs").glob("mmnist_official/*/*/run.json"):
        info = json.loads(path.read_text())
        del info["paper_data"]
        path.write_text(json.dumps(info))
    ours = ranks()
    assert ours.loc["CW-VAE", "counted_on"] == "Moving MNIST: mmnist" and set(ours["total_cells"]) == {3}
    assert ours.loc["CW-VAE", "mean_rank"] == pytest.approx((2 + 3 + 1) / 3)  # ssim 0.80 2nd, psnr 20 3rd
    capsys.readouterr()
    assert main(["relabel", "--out", str(results)]) == 0
    assert "recorded paper_data in the run.json of 2 more run directories" in capsys.readouterr().out
    assert json.loads((official / "run.json").read_text())["paper_data"] is True
    assert ranks().loc["CW-VAE", "counted_on"] == "Moving MNIST: mmnist_official"


def test_two_evaluated_runs_of_one_seed_count_once_the_newest(tmp_path, capsys):
    """The same command before and after its config changed (here: another directory, as a key added
    to the config gives) leaves two evaluated runs of seed 0; the report keeps the newer one, lists
    the older as left out, and its curves and Table 1 hold the newer one's numbers (before: the two
    were averaged as if they were two seeds, and the curves failed on the repeated horizons)."""
    import os

    results = tmp_path / "results"
    old = write_fake_run(results, "cwvae", levels={"ssim": 0.5, "psnr": 10.0}, samples=False)
    moved = old.rename(old.with_name(old.name + "-old"))
    os.utime(moved / "eval" / "summary.csv", (1_000_000_000, 1_000_000_000))  # evaluated long ago
    write_fake_run(results, "cwvae", levels={"ssim": 0.7, "psnr": 12.0}, samples=False)
    skipped = []
    runs = collect(results, skipped)
    assert [r.directory.name for r in runs if r.model == "cwvae"] == [moved.name.removesuffix("-old")]
    assert [s.directory for s in skipped] == [moved] and "a report counts one run per seed" in skipped[0].reason
    report = write_report(results, tmp_path / "report")
    table = pd.read_csv(tmp_path / "report" / "table1.csv")
    row = table[(table["entry"] == "CW-VAE") & (table["metric"] == "ssim") & (table["source"] == "ours")]
    assert row["value"].item() == pytest.approx(curve("ssim", 0, 0.7).mean())
    assert [s.rel for s in report.skipped] == [moved.relative_to(results).as_posix()]
    assert moved.name in (tmp_path / "report" / "index.md").read_text()
