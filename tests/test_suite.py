"""Suites: YAML expansion, a smoke suite killed halfway and re-run, eval-only runs, executors, missing data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import benchmarks.pipeline as pipeline
from benchmarks.cli import main
from benchmarks.config import ConfigError
from benchmarks.suite import SlurmOptions, execute_chain, expand, load_suite, plan_suite, run_slurm, suite_names


def suite_main(suite: str, out: Path, *argv: str) -> int:
    """`bench.py --suite SUITE --out OUT --no-progress ARGV...`"""
    return main(["--suite", suite, "--out", str(out), "--no-progress", *argv])


def write_suite(tmp_path: Path, name: str, spec: dict) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_every_shipped_suite_loads_and_expands():
    assert {"smoke", "quick", "full", "levels", "factor", "speed", "top_prior"} <= set(suite_names())
    _, full = load_suite("full")
    runs = expand(full, "paper", 1)
    trained = {(r.model, r.dataset) for r in runs if r.model not in ("copy_last", "random_frame")}
    assert len(trained) == 20 and full["preset"] == "paper"  # 5 models x 4 datasets
    _, levels = load_suite("levels")
    by_label = {r.label: r for r in expand(levels, "quick", 1)}
    # L levels need a context that is a multiple of factor^(L-1); every run predicts 100 frames at quick
    assert "eval.context=64" in by_label["4 levels"].sets and "data.test_length=164" in by_label["4 levels"].sets
    assert "eval.context=36" in by_label["2 levels"].sets and "data.test_length=136" in by_label["2 levels"].sets
    _, factor = load_suite("factor")
    for r in expand(factor, "smoke", 2):
        k = next((int(s.split("=")[1]) for s in r.sets if s.startswith("model.factor=")), 1)
        context = int(next(s for s in r.sets if s.startswith("eval.context=")).split("=")[1])
        assert context % k**2 == 0 and f"data.test_length={context + 12}" in r.sets
    _, top = load_suite("top_prior")
    order = [bool(r.eval_of) for r in expand(top, "quick", 1)]
    assert order == sorted(order)  # runs that only evaluate come after the runs that train


def test_suite_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="unknown suite 'nope'; valid: "):
        load_suite("nope")
    bad = write_suite(tmp_path, "bad", {"grid": {"models": ["cwvae"]}, "seed": 1})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['seed'\]"):
        load_suite(bad)
    orphan = write_suite(tmp_path, "orphan", {"runs": [{"model": "cwvae", "eval_of": "nothing"}]})
    with pytest.raises(ConfigError, match="eval_of: 'nothing' names no run label"):
        expand(load_suite(orphan)[1], "smoke", 1)


def test_a_killed_suite_reruns_only_what_is_missing(tmp_path, monkeypatch):
    """Kill (KeyboardInterrupt) during the 2nd run's evaluation; the re-run finishes the rest only."""
    spec = write_suite(
        tmp_path,
        "mini",
        {"preset": "smoke", "seeds": 2, "grid": {"models": ["cwvae", "copy_last"], "datasets": ["mmnist"]}},
    )
    out = tmp_path / "results"
    real_evaluate, calls = pipeline.evaluate, []

    def killed_on_second(model, cfg, test_videos, run_dir, device, progress=True):
        calls.append(Path(run_dir))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the process were killed here
        return real_evaluate(model, cfg, test_videos, run_dir, device, progress)

    monkeypatch.setattr(pipeline, "evaluate", killed_on_second)
    assert suite_main(spec, out) == 130  # interrupted: "run the same command again"
    first, killed = calls
    assert pipeline.is_finished(first) and not pipeline.is_finished(killed)
    assert (killed / "checkpoints" / "last.pt").exists()  # it had trained: the re-run resumes, not restarts
    stamp = (first / "eval" / "summary.csv").stat().st_mtime_ns

    trained, evaluated = [], []
    real_train = pipeline.train

    def spy_train(model, cfg, videos, run_dir, device, progress=True, **options):
        result = real_train(model, cfg, videos, run_dir, device, progress, **options)
        trained.append((Path(run_dir), result.resumed_from, result.steps))
        return result

    def spy_evaluate(model, cfg, test_videos, run_dir, device, progress=True):
        evaluated.append(Path(run_dir))
        return real_evaluate(model, cfg, test_videos, run_dir, device, progress)

    monkeypatch.setattr(pipeline, "train", spy_train)
    monkeypatch.setattr(pipeline, "evaluate", spy_evaluate)
    assert suite_main(spec, out) == 0
    all_runs = sorted(p.parent for p in (out / "runs").glob("*/*/*/config.yaml"))
    assert len(all_runs) == 4 and all(pipeline.is_finished(p) for p in all_runs)
    assert first not in evaluated and killed in evaluated and len(evaluated) == 3
    resumed = {d: (start, steps) for d, start, steps in trained}
    assert resumed[killed][0] == resumed[killed][1]  # resumed at its last step: no step trained twice
    assert (first / "eval" / "summary.csv").stat().st_mtime_ns == stamp
    manifest = json.loads((out / "suites" / "mini.json").read_text())
    assert manifest["already_finished"] == 1 and len(manifest["ran"]) == 3 and manifest["failed"] == []
    assert (out / "report" / "index.md").exists() and (out / "leaderboard.md").exists()
    evaluated.clear()
    assert suite_main(spec, out) == 0 and evaluated == []  # a third time: nothing to do


def test_eval_of_reuses_the_trained_model_and_missing_data_is_listed(tmp_path):
    spec = write_suite(
        tmp_path,
        "prior",
        {
            "preset": "smoke",
            "runs": [
                {"model": "cwvae", "dataset": "mmnist", "label": "trained"},
                {
                    "model": "cwvae",
                    "dataset": "mmnist",
                    "label": "blind",
                    "eval_of": "trained",
                    "set": ["eval.use_obs=[true,true,false]", "eval.n_samples=2"],
                },
                {"model": "copy_last", "dataset": "mazes"},
            ],
        },
    )
    out = tmp_path / "results"
    assert suite_main(spec, out) == 0
    dirs = [p.parent for p in (out / "runs" / "mmnist" / "cwvae").glob("*/config.yaml")]
    blind = next(d for d in dirs if yaml.safe_load((d / "config.yaml").read_text())["eval"]["use_obs"])
    (base,) = [d for d in dirs if d != blind]
    assert not (blind / "train.jsonl").exists()  # nothing trained in the eval-only run
    status = json.loads((blind / "status.json").read_text())
    assert status["trained_in"] == base.relative_to(out).as_posix()
    a = np.load(base / "samples" / "samples.npz")
    b = np.load(blind / "samples" / "samples.npz")
    assert np.array_equal(a["gt"], b["gt"]) and b["pred"].shape[1] == 2
    manifest = json.loads((out / "suites" / "prior.json").read_text())
    assert manifest["missing_datasets"][0]["dataset"] == "mazes"
    index = (out / "report" / "index.md").read_text()
    assert "dataset `mazes` not prepared" in index
    assert (out / "report" / "studies" / "top_prior.md").exists()


def test_slurm_launcher_through_submitit(tmp_path):
    """The submitit path, with submitit's in-process 'debug' cluster standing in for SLURM."""
    out = tmp_path / "results"
    spec = write_suite(tmp_path, "s", {"preset": "smoke", "grid": {"models": ["copy_last"], "datasets": ["mmnist"]}})
    name, suite = load_suite(spec)
    plan = plan_suite(name, suite, "smoke", 2, out, progress=False)
    assert sum(len(c) for c in plan.chains) == 2
    results = run_slurm(plan.chains, out, "cpu", SlurmOptions(partition="gpu", time=10), cluster="debug")
    assert [r["status"] for r in results] == ["done", "done"]
    assert all(pipeline.is_finished(Path(r["dir"])) for r in results)


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path):
    out = tmp_path / "results"
    spec = write_suite(tmp_path, "f", {"preset": "smoke", "grid": {"models": ["copy_last"], "datasets": ["mmnist"]}})
    name, suite = load_suite(spec)
    plan = plan_suite(name, suite, "smoke", 1, out, progress=False)
    ((run, cfg, _),) = plan.chains[0]
    broken = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, context=48))  # = the test length
    results = execute_chain([(run, broken, None), (run, cfg, None)], str(out), "cpu", False)
    assert results[0]["status"] == "failed" and "leave nothing to predict" in results[0]["error"]
    assert results[1]["status"] == "done" and pipeline.is_finished(Path(results[1]["dir"]))


def test_full_suite_uses_mmnist_official_when_prepared_else_mmnist_with_a_note(tmp_path, monkeypatch, capsys):
    from test_datasets_prepare import make_official  # tests/ is on sys.path

    monkeypatch.setenv("CWBENCH_DATA", str(tmp_path / "data"))
    out = tmp_path / "results"
    name, full = load_suite("full")
    assert "mmnist_official" in full["grid"]["datasets"] and full["stand_in"] == {"mmnist_official": "mmnist"}

    # not prepared: the generated mmnist stands in (KTH, MineRL, Mazes are not prepared either: skipped)
    plan = plan_suite(name, full, "smoke", 1, out, progress=False)
    assert {cfg.dataset for chain in plan.chains for _, cfg, _ in chain} == {"mmnist"}
    (sub,) = plan.substitutes
    assert sub["dataset"] == "mmnist_official" and sub["used"] == "mmnist"
    assert "data prepare mmnist_official" in sub["command"] and "not the same test set" in sub["note"]
    spec = {"preset": "smoke", "grid": {"models": ["copy_last"], "datasets": ["mmnist_official"]}}
    spec = write_suite(tmp_path, "mini_full", {**spec, "stand_in": {"mmnist_official": "mmnist"}})
    assert suite_main(spec, out) == 0
    assert "dataset mmnist_official is not prepared: mmnist stands in" in capsys.readouterr().out
    assert json.loads((out / "suites" / "mini_full.json").read_text())["stand_ins"][0]["used"] == "mmnist"
    for page in ("table1.md", "index.md"):  # the report says which test set stood in
        assert "mmnist_official is not prepared: its runs use mmnist instead" in (out / "report" / page).read_text()

    # prepared (a tiny archive in the official layout): the suite runs on it
    source = make_official(tmp_path, "mmnist_official", n=(2, 2))
    assert main(["data", "prepare", "mmnist_official", "--source", str(source), "--no-progress"]) == 0
    plan = plan_suite(name, full, "smoke", 1, out, progress=False)
    assert {cfg.dataset for chain in plan.chains for _, cfg, _ in chain} == {"mmnist_official"}
    assert plan.substitutes == []
