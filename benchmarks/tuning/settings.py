"""What a study searches and how: benchmarks/configs/tuning/*.yaml as one frozen settings object.

    default.yaml < <model>.yaml < their `datasets: <dataset>:` sections < their `presets: <preset>:` sections

(the model's file after the default at each level). `params: {key: null}` drops a key.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.config import CONFIG_DIR, ConfigError, build_dataclass, load_yaml, merge

TUNING_DIR = CONFIG_DIR / "tuning"
OBJECTIVES = ("lpips", "ssim", "psnr")  # per-frame metrics, averaged over the predicted frames
LAYERED = ("datasets", "presets")


@dataclass(frozen=True)
class Param:
    key: str  # a config key, section.name (train.lr, model.dec_std)
    low: float  # lowest value tried
    high: float  # highest value tried
    log: bool = False  # log-uniform (scale parameters: learning rates, KL weights)

    def __post_init__(self):
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ConfigError(f"tuning param {self.key}: need low < high (and low > 0 when log), got {self}")


@dataclass(frozen=True)
class ValidationSettings:
    videos: int = 100  # training videos held out (data.val_videos)
    seed: int = 0  # which ones (data.val_seed)


@dataclass(frozen=True)
class PruningSettings:
    reports: int = 4  # intermediate validation scores per trial
    videos: int = 16  # validation videos of an intermediate score
    startup_trials: int = 3  # trials finished before any is pruned
    warmup_reports: int = 1  # a trial's first reports never prune it


@dataclass(frozen=True)
class HeartbeatSettings:
    interval: int = 10  # seconds between a running trial's heartbeats
    grace: int = 30  # seconds without one after which its worker counts as dead (the trial is retried)


@dataclass(frozen=True)
class TuningSettings:
    trials: int = 20  # finished trials (complete or pruned) the study aims at
    seed: int = 0  # TPE sampler seed
    startup_trials: int = 5  # TPE: random trials first
    objective: str = "auto"  # lpips | ssim | psnr | auto
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    pruning: PruningSettings = field(default_factory=PruningSettings)
    heartbeat: HeartbeatSettings = field(default_factory=HeartbeatSettings)
    keep_paper_settings: tuple[str, ...] = ("cwvae",)  # models `--tuned` leaves alone unless named
    params: tuple[Param, ...] = ()

    def __post_init__(self):
        if self.objective not in (*OBJECTIVES, "auto"):
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)} or auto, got {self.objective!r}")
        if self.trials < 1 or self.pruning.reports < 1 or self.pruning.videos < 1 or self.validation.videos < 1:
            raise ConfigError(
                "tuning: trials, pruning.reports, pruning.videos and validation.videos must be >= 1, got "
                f"{self.trials}, {self.pruning.reports}, {self.pruning.videos}, {self.validation.videos}"
            )
        if not self.params:
            raise ConfigError("tuning: `params` lists no key to search")

    def identity(self) -> dict:
        """What makes two studies the same search: a study refuses to continue under other values."""
        return {
            "objective": self.objective,
            "validation": dataclasses.asdict(self.validation),
            "params": [dataclasses.asdict(p) for p in self.params],
        }


def tuning_files(model: str) -> list[Path]:
    files = [TUNING_DIR / "default.yaml", TUNING_DIR / f"{model}.yaml"]
    return [f for f in files if f.is_file()]


def load_settings(model: str, dataset: str, preset: str, **overrides) -> TuningSettings:
    """The settings of (model, dataset, preset); `overrides` (trials, objective, ...) win, None ignored."""
    layers = [load_yaml(f) for f in tuning_files(model)]
    merged: dict = {}
    for layer in layers:
        merged = merge(merged, {k: v for k, v in layer.items() if k not in LAYERED})
    for section, name in (("datasets", dataset), ("presets", preset)):
        for layer in layers:
            merged = merge(merged, ((layer.get(section) or {}).get(name)) or {})
    merged = merge(merged, {k: v for k, v in overrides.items() if v is not None})
    params = []
    for key, spec in (merged.pop("params", None) or {}).items():
        if spec is None:
            continue
        if not isinstance(spec, dict) or "." not in key:
            raise ConfigError(f"tuning param {key!r}: give section.key: {{low: ..., high: ..., log: true|false}}")
        params.append(build_dataclass(Param, {"key": key, **spec}, f"tuning params.{key}"))
    nested = {"validation": ValidationSettings, "pruning": PruningSettings, "heartbeat": HeartbeatSettings}
    for name, cls in nested.items():
        merged[name] = build_dataclass(cls, merged.get(name) or {}, f"tuning {name}")
    return build_dataclass(TuningSettings, {**merged, "params": tuple(params)}, "tuning")


def resolve_objective(name: str) -> str:
    """`auto`: LPIPS when its weights are in the cache (`python bench.py weights fetch`), else SSIM."""
    if name != "auto":
        return name
    from benchmarks.metrics.weights import status

    fetched = any(w["present"] for w in status() if w["name"].startswith("lpips"))
    return "lpips" if fetched else "ssim"


@functools.lru_cache(maxsize=64)
def trains(model: str, dataset: str) -> bool:
    """Whether the model learns anything (naive references do not: nothing to tune); built at the smoke size."""
    from benchmarks.config import resolve_config

    return resolve_config(model, dataset, "smoke").build_model().trainable
