"""One trial: the parameters optuna proposes, as an ordinary run scored on the validation split.

A trial's config is the (model, dataset, preset) config with the proposed keys, the
study's `--set` items and the validation split (data.val_videos, data.val_seed,
eval.split=val: the run trains without those videos and is scored on them; it never
opens the test split). It is run by benchmarks/pipeline.py like any run, in
<study>/runs/...: its own config hash, so a trial that is retried after its worker died
resumes from its checkpoint. Every `total_steps / pruning.reports` steps the trainer's
hook scores the model on the first `pruning.videos` validation videos (the same open-loop
protocol: `eval.context` frames, then the model alone to the end of the video) and asks
the pruner whether to stop.
"""

from __future__ import annotations

import numpy as np
import optuna
import torch

from benchmarks.config import RunConfig, resolve_config
from benchmarks.protocol import frame_scores, open_loop, to_video_tensor
from benchmarks.trainer import StepHook
from benchmarks.tuning.settings import TuningSettings


def suggest(trial: optuna.Trial, settings: TuningSettings) -> dict[str, float]:
    return {p.key: trial.suggest_float(p.key, p.low, p.high, log=p.log) for p in settings.params}


def nested(params: dict) -> dict:
    """{'train.lr': 1e-4} -> {'train': {'lr': 1e-4}}."""
    out: dict = {}
    for key, value in params.items():
        section, name = key.split(".", 1)
        out.setdefault(section, {})[name] = value
    return out


def validation_keys(settings: TuningSettings, objective: str) -> dict:
    """The config of scoring on the validation split: every held-out video, the objective's metric."""
    metrics = list(dict.fromkeys([objective, "ssim", "psnr"]))  # the objective first; FVD is no objective
    return {
        "data": {"val_videos": settings.validation.videos, "val_seed": settings.validation.seed},
        "eval": {"split": "val", "n_videos": 0, "metrics": metrics},
    }


def trial_config(spec, params: dict) -> RunConfig:
    """The run of a trial with `params`; spec: a StudySpec (benchmarks/tuning/study.py)."""
    overrides = validation_keys(spec.settings, spec.objective)
    for section, values in nested(params).items():
        overrides[section] = {**overrides.get(section, {}), **values}
    return resolve_config(
        spec.model, spec.dataset, spec.preset, sets=list(spec.sets), seed=spec.seed, overrides=overrides
    )


def validation_score(model, videos, context: int, metric: str, seed: int, device, batch_size: int = 8) -> float:
    """The open-loop score of `model` on `videos` (N, T, H, W, C) uint8: `metric` per predicted frame,
    averaged over frames and videos (one sample per video, seeded)."""
    from benchmarks.metrics import FRAME_METRICS

    fn = {metric: FRAME_METRICS[metric].fn}
    per_video = []
    for start in range(0, len(videos), batch_size):
        clip = to_video_tensor(videos[start : start + batch_size], device)  # (B, T, C, H, W)
        preds = open_loop(model, clip, context, n_samples=1, seed=seed * 1_000_003 + start)  # (B, 1, h, C, H, W)
        per_video.append(frame_scores(preds, clip[:, context:], fn)[metric].mean((1, 2)))  # (B,)
    return float(torch.cat(per_video).mean())


def pruning_hook(trial: optuna.Trial, spec, cfg: RunConfig) -> StepHook:
    """Every total_steps / reports steps: the validation score, reported to the pruner; raises
    TrialPruned when the pruner says so."""
    settings, metric = spec.settings, spec.objective
    every = max(1, cfg.total_steps // settings.pruning.reports)
    held_out: list = []

    def report(model, step: int, device) -> dict:
        if not held_out:
            held_out.append(validation_subset(cfg, settings.pruning.videos))
        value = validation_score(model, held_out[0], cfg.eval.context, metric, cfg.seed, device, cfg.eval.batch_size)
        if not np.isfinite(value):
            raise optuna.TrialPruned(f"non-finite validation {metric} at step {step}")
        trial.report(value, step)
        if trial.should_prune():
            trial.set_user_attr("note", f"pruned at step {step} of {cfg.total_steps}")
            raise optuna.TrialPruned(f"validation {metric} {value:.4g} at step {step}")
        return {f"val/{metric}": value}

    return StepHook(every, report)


def validation_subset(cfg: RunConfig, n: int) -> np.ndarray:
    """The first `n` videos of the run's validation split, in memory."""
    from benchmarks.pipeline import load_checked
    from datasets import get_dataset
    from datasets.validation import carve_validation

    dataset = get_dataset(cfg.data)
    _, val = carve_validation(dataset, load_checked(dataset, "train", cfg), cfg.data.val_videos, cfg.data.val_seed)
    return val[: min(n, len(val))]
