"""bench.py tune: the validation split, a tiny study end to end, continuing it, two workers, a killed worker,
and suites that apply best.yaml (`--tuned`)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import benchmarks.tuning.study as study_module
from benchmarks.cli import main
from benchmarks.commands import UsageError
from benchmarks.config import ConfigError, resolve_config, resolve_data_config
from benchmarks.suite import plan_suite, run_suite
from benchmarks.tuning import prepare, tune
from benchmarks.tuning.settings import HeartbeatSettings, load_settings, trains
from benchmarks.tuning.trial import trial_config
from datasets import get_dataset
from datasets.base import Dataset
from datasets.validation import VideoSubset, carve_validation, recorded_validation, validation_indices
from models import model_names
from rundir.run import read_config, read_summary

# Smoke Moving MNIST with 48-frame training videos: 36 context frames + 12 predicted on validation
LONGER = ("data.train_length=48",)
REPO = Path(__file__).resolve().parents[1]


def smoke_spec(out: Path, trials: int = 2, **replace):
    spec = prepare("rssm", "mmnist", "smoke", out, trials=trials, objective="ssim", sets=LONGER, progress=False)
    return dataclasses.replace(spec, **replace)


def finished_trials(spec) -> list:
    study = study_module.open_study(spec)
    return study.get_trials(deepcopy=False, states=study_module.FINISHED)


# ---------------------------------------------------------------- the validation split


def test_validation_split_is_deterministic_disjoint_from_test_and_recorded():
    data = resolve_data_config("mmnist", "smoke", sets=list(LONGER))
    dataset = get_dataset(data)
    dataset.ensure_ready(progress=False)
    train, test = dataset.load("train"), dataset.load("test")  # (8, 48, 64, 64, 1), (2, 48, 64, 64, 1)
    rest, val = carve_validation(dataset, train, 3, seed=0)
    again = validation_indices(len(train), 3, 0)
    assert np.array_equal(val.indices, again) and len(val) == 3 and len(rest) == 5
    assert not set(val.indices) & set(rest.indices) and set(val.indices) | set(rest.indices) == set(range(8))
    assert not np.array_equal(validation_indices(8, 3, 1), again)  # the seed chooses
    assert np.array_equal(validation_indices(10_000, 100, 0), validation_indices(10_000, 100, 0))
    # no validation video is a test video (Moving MNIST draws test videos from other digits and seeds)
    for v in range(len(val)):
        assert all(not np.array_equal(val[v], test[t][: val.shape[1]]) for t in range(len(test)))
    # the views read the stored videos lazily and exactly
    i = int(val.indices[1])
    assert np.array_equal(val[1, 5:9], train[i, 5:9]) and np.array_equal(val[0:2][1], train[i])
    assert val.shape == (3, 48, 64, 64, 1) and np.asarray(val).shape == val.shape
    entry = recorded_validation(dataset)["3-s0"]
    assert entry["indices"] == [int(k) for k in again] and entry["of"] == "train" and entry["train_videos"] == 8
    assert entry["train_sha256"] == dataset.manifest()["splits"]["train"]["sha256"]
    with pytest.raises(ValueError, match="must leave at least one"):
        validation_indices(8, 8, 0)


def test_video_subset_serves_the_batch_sampler():
    from benchmarks.trainer import BatchSampler

    videos = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6, 1, 1, 1)
    subset = VideoSubset(videos, np.array([1, 3]))
    batch = BatchSampler(subset, 8, 3, seed=0).next()  # (8, 3, 1, 1, 1): windows of videos 1 and 3 only
    assert set(np.unique(batch[:, 0] // 6).tolist()) <= {1, 3}


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("model", [m for m in model_names() if trains(m, "mmnist")])
def test_every_model_has_a_search_space_its_config_accepts(model, tmp_path):
    settings = load_settings(model, "mmnist", "smoke")
    keys = {p.key for p in settings.params}
    assert "train.lr" in keys and (keys & {"model.dec_std", "model.beta"})
    lr = next(p for p in settings.params if p.key == "train.lr")
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-3, True)  # the paper's range (Section 3.1)
    spec = study_module.StudySpec(model, "mmnist", "smoke", 0, LONGER, settings, "ssim", str(tmp_path))
    for corner in ("low", "high"):
        cfg = trial_config(spec, {p.key: getattr(p, corner) for p in settings.params})
        assert cfg.eval.split == "val" and cfg.data.val_videos == settings.validation.videos
        for p in settings.params:
            section, name = p.key.split(".")
            assert getattr(getattr(cfg, section), name) == pytest.approx(getattr(p, corner))


def test_svg_searches_the_beta_equivalent_to_the_decoder_std_range():
    # sigma^2 = beta D / 2 (D = channels x 64 x 64): sigma in [0.1, 1] is beta in [2 * 0.01 / D, 2 / D]
    for dataset, channels in (("mmnist", 1), ("minerl", 3)):
        beta = next(p for p in load_settings("svg", dataset, "paper").params if p.key == "model.beta")
        D = channels * 64 * 64
        assert beta.log and beta.low == pytest.approx(2 * 0.1**2 / D) and beta.high == pytest.approx(2 / D)


def test_bad_settings_and_inputs_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="objective must be one of"):
        load_settings("rssm", "mmnist", "smoke", objective="fvd")
    assert main(["tune", "--model", "copy_last", "--preset", "smoke", "--out", str(tmp_path)]) == 2
    with pytest.raises(UsageError, match="trains nothing"):
        prepare("copy_last", "mmnist", "smoke", tmp_path)
    with pytest.raises(Exception, match="nothing is left to predict after 36 context frames"):
        prepare("rssm", "mmnist", "smoke", tmp_path)  # smoke training videos are 24 frames long


# ---------------------------------------------------------------- a tiny study


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """Two trials of RSSM at the smoke preset, in this process, with the test split made unreadable."""
    out = tmp_path_factory.mktemp("tune") / "results"
    opened = []
    original_load, original_verify = Dataset.load, Dataset.verify

    def load(self, split):
        opened.append(split)
        if split == "test":
            raise AssertionError("tune opened the test split")
        return original_load(self, split)

    def verify(self, split):
        opened.append(split)
        if split == "test":
            raise AssertionError("tune verified the test split")
        return original_verify(self, split)

    Dataset.load, Dataset.verify = load, verify
    try:
        spec = smoke_spec(out)
        outcome = tune(spec, progress=False, say=lambda s: None)
    finally:
        Dataset.load, Dataset.verify = original_load, original_verify
    return spec, outcome, opened


def test_tiny_study_runs_to_completion_without_reading_the_test_split(tiny_study):
    spec, outcome, opened = tiny_study
    assert "train" in opened and "test" not in opened
    assert outcome.counts.get("complete", 0) + outcome.counts.get("pruned", 0) == 2 and outcome.ran == 2
    trials = pd.read_csv(spec.directory / "trials.csv")
    assert list(trials["number"]) == [0, 1] and set(trials["state"]) <= {"complete", "pruned"}
    assert trials["train.lr"].between(1e-4, 1e-3).all() and trials["model.dec_std"].between(0.1, 1).all()
    best = yaml.safe_load((spec.directory / "best.yaml").read_text())
    complete = trials[trials["state"] == "complete"]
    assert best["value"] == pytest.approx(complete["ssim"].max())  # SSIM: higher is better
    assert best["set"]["train.lr"] == pytest.approx(complete.loc[complete["ssim"].idxmax(), "train.lr"])
    assert (spec.directory / "objective.png").stat().st_size > 0 and (spec.directory / "study.db").exists()
    # each trial is an ordinary run directory, scored on the held-out training videos
    run = spec.directory / best["run"]
    cfg = read_config(run)
    assert (
        cfg["eval"]["split"] == "val"
        and cfg["data"]["val_videos"] == 2
        and cfg["train"]["lr"] == best["set"]["train.lr"]
    )
    summary = read_summary(run)
    assert summary.loc[
        (summary["metric"] == "ssim") & (summary["aggregate"] == "best"), "value"
    ].item() == pytest.approx(best["value"])
    # the trainer's hook scored the same protocol: its last report (all 2 validation videos) is the final score
    log = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 4 and log[-1]["val/ssim"] == pytest.approx(best["value"], abs=1e-5)


def test_rerun_continues_the_study_without_repeating_trials(tiny_study):
    spec, _, _ = tiny_study
    before = {t.number: t.params for t in finished_trials(spec)}
    stamps = {
        n: os.stat(spec.directory / t.user_attrs["run"] / "eval" / "summary.csv").st_mtime_ns
        for n, t in ((t.number, t) for t in finished_trials(spec) if t.state.name == "COMPLETE")
    }
    again = tune(study_module.with_trials(spec, 2), progress=False, say=lambda s: None)
    assert again.ran == 0  # finished: nothing to do
    more = tune(study_module.with_trials(spec, 3), progress=False, say=lambda s: None)
    assert more.ran == 1
    after = {t.number: t.params for t in finished_trials(spec)}
    assert sorted(after) == [0, 1, 2] and all(after[n] == p for n, p in before.items())
    assert len({tuple(sorted(p.items())) for p in after.values()}) == 3  # no parameters tried twice
    for n, stamp in stamps.items():  # finished runs were not run again
        run = spec.directory / finished_trials(spec)[n].user_attrs["run"]
        assert os.stat(run / "eval" / "summary.csv").st_mtime_ns == stamp


def test_a_study_refuses_other_settings(tiny_study):
    spec, _, _ = tiny_study
    with pytest.raises(UsageError, match="objective: study 'ssim', now 'psnr'"):
        study_module.open_study(dataclasses.replace(spec, objective="psnr"))


def test_two_workers_share_one_study(tmp_path):
    spec = smoke_spec(tmp_path / "results", trials=4)
    tune(spec, jobs=2, progress=False, say=lambda s: None)
    trials = finished_trials(spec)
    assert len(trials) == 4 and sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4  # no duplicate parameters
    assert len({t.user_attrs["run"] for t in trials}) == 4


@pytest.mark.slow
def test_a_killed_worker_s_trial_resumes_its_run(tmp_path, monkeypatch):
    """SIGKILL during a trial's training; the same study started again retries that trial with the
    same parameters, in the same run directory, from its checkpoint."""
    import benchmarks.trainer as trainer

    out = tmp_path / "results"
    sets = ("data.train_length=48", "train.steps=60", "train.ckpt_every=2")
    script = textwrap.dedent(
        f"""
        import dataclasses
        from benchmarks.tuning import prepare, tune
        from benchmarks.tuning.settings import HeartbeatSettings
        spec = prepare("rssm", "mmnist", "smoke", {str(out)!r}, trials=1, objective="ssim", sets={sets!r},
                       progress=False)
        beat = HeartbeatSettings(1, 2)
        tune(dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, heartbeat=beat)), progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    runs = out / "tuning" / "rssm" / "mmnist" / "smoke" / "runs" / "mmnist" / "rssm"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and not list(runs.glob("*/checkpoints/last.pt")):
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list(runs.glob("*/checkpoints/last.pt")), "the trial wrote no checkpoint in time"
    (killed_run,) = list(runs.iterdir())

    resumed = []
    restore = trainer.set_rng_state
    monkeypatch.setattr(trainer, "set_rng_state", lambda state: (resumed.append(True), restore(state)))
    spec = prepare("rssm", "mmnist", "smoke", out, trials=1, objective="ssim", sets=sets, progress=False)
    spec = dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, heartbeat=HeartbeatSettings(1, 2)))
    said = []
    tune(spec, progress=False, say=said.append)
    study = study_module.open_study(spec)
    first, retry = study.trials[0], study.trials[1]
    assert first.state.name == "FAIL" and retry.state.name in ("COMPLETE", "PRUNED") and len(study.trials) == 2
    assert retry.params == first.params and retry.user_attrs["run"] == first.user_attrs["run"]
    assert resumed, "the retried trial trained from scratch instead of resuming its checkpoint"
    assert (spec.directory / retry.user_attrs["run"]).resolve() == killed_run.resolve()


# ---------------------------------------------------------------- suites with --tuned


def test_tuned_suite_applies_best_yaml_and_records_it(tmp_path):
    out = tmp_path / "results"
    study = out / "tuning" / "rssm" / "mmnist" / "smoke"
    study.mkdir(parents=True)
    best = {"set": {"train.lr": 0.000321, "model.dec_std": 0.456}, "objective": "ssim", "value": 0.5, "trial": 3}
    (study / "best.yaml").write_text(yaml.safe_dump(best))
    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump({"preset": "smoke", "grid": {"models": ["rssm", "cwvae"]}}))
    from benchmarks.suite import load_suite

    name, spec = load_suite(str(suite))
    plan = plan_suite(name, spec, "smoke", 1, out, progress=False, tuned=True)
    assert [t["model"] for t in plan.tuned] == ["rssm"] and not plan.untuned  # CW-VAE keeps the paper's settings
    cfgs = {c.model_name: c for chain in plan.chains for _, c, _ in chain}
    assert cfgs["rssm"].train.lr == 0.000321 and cfgs["rssm"].model.dec_std == 0.456 and not cfgs["cwvae"].tuned
    untuned = resolve_config("rssm", "mmnist", "smoke")
    assert cfgs["rssm"].hash() != untuned.hash()  # tuned settings: another run
    asked = plan_suite(name, spec, "smoke", 1, out, progress=False, tuned="cwvae")
    assert [u["model"] for u in asked.untuned] == ["cwvae"] and "bench.py tune --model cwvae" in asked.untuned[0][
        "reason"
    ]

    only_rssm = tmp_path / "rssm.yaml"
    only_rssm.write_text(yaml.safe_dump({"preset": "smoke", "tuned": True, "grid": {"models": ["rssm"]}}))
    outcome = run_suite(str(only_rssm), out, progress=False)
    assert not outcome.failed
    run = Path(outcome.results[0]["dir"])
    cfg = read_config(run)
    assert cfg["tuned"]["study"] == "tuning/rssm/mmnist/smoke" and cfg["tuned"]["keys"] == best["set"]
    assert cfg["train"]["lr"] == 0.000321 and cfg["model"]["dec_std"] == 0.456
    manifest = json.loads((out / "suites" / "rssm.json").read_text())
    assert manifest["tuned"][0]["keys"] == best["set"]

    from reports.build import write_report
    from rundir.run import collect

    (r,) = collect(out)
    assert r.entry == "RSSM [tuned]" and r.variant == ""  # tuned keys are the model's settings, no variant
    write_report(out, out / "report")
    table1 = (out / "report" / "table1.md").read_text()
    assert "RSSM [tuned]" in table1 and "Rows marked [tuned]" in table1
    index = (out / "report" / "index.md").read_text()
    assert "## Tuning" in index and "`train.lr=0.000321`" in index and "tuning/rssm/mmnist/smoke" in index


def _record_many(directory: str, seeds: list[int], start, split: str | None) -> None:
    """A worker of the manifest race test: records a validation split per seed (and one data split)."""
    from types import SimpleNamespace

    from datasets.base import record_split
    from datasets.validation import record_validation, validation_indices

    dataset = SimpleNamespace(directory=Path(directory))  # record_validation needs only its directory
    start.wait()  # every worker starts at once
    for seed in seeds:
        record_validation(dataset, 2, seed, 10, validation_indices(10, 2, seed))
    if split:
        np.save(Path(directory) / f"{split}.npy", np.zeros((1, 2, 4, 4, 1), np.uint8))
        record_split(Path(directory), split, Path(directory) / f"{split}.npy", {"generator": "test"})


def test_manifest_updates_from_processes_at_once_keep_every_entry(tmp_path):
    """Tune workers (or a tune and a run) carving validation splits, and a split being recorded, at the
    same time: the manifest's read-modify-write is locked, so every key survives and the file parses."""
    import multiprocessing

    from datasets.base import MANIFEST
    from datasets.validation import split_key

    train = {"file": "train.npy", "shape": [10, 2, 4, 4, 1], "videos": 10, "sha256": "ab" * 32}
    (tmp_path / MANIFEST).write_text(json.dumps({"splits": {"train": train}, "source": {}}))
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    start = context.Event()
    workers = [
        context.Process(target=_record_many, args=(str(tmp_path), list(range(w, 80, 4)), start, split))
        for w, split in enumerate(["test", None, "extra", None])
    ]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert sorted(manifest["validation"]) == sorted(split_key(2, seed) for seed in range(80))
    assert set(manifest["splits"]) == {"train", "test", "extra"} and manifest["splits"]["train"] == train
    assert manifest["splits"]["extra"]["shape"] == [1, 2, 4, 4, 1]
    assert manifest["validation"][split_key(2, 7)]["indices"] == [int(i) for i in validation_indices(10, 2, 7)]
