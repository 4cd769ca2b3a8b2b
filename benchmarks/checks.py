"""Everything about a run that can be checked before its first training step, checked once.

    resolve_device(name)      --device: a device this machine has, or exit 2 with the choices
    check_run_dir(dir, force) the run's own files, when it ran before: a damaged one refuses the run
    check_data(cfg, ...)      the config against the data and the model: test and training
                              video lengths, context, test set size, FVD, eval.use_obs, steps

Each key's own range is checked earlier, when the config is built (field metadata,
benchmarks/config.py `check_ranges`). What is wrong raises ConfigError / ProtocolError
(exit 2) naming the key, the value and what to do; what is only surprising (more test
videos asked for than there are) is said in one `warning:` line and the run goes on.
Nothing here writes a file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.config import ConfigError
from benchmarks.protocol import ProtocolError, check_context, predict_options
from rundir.run import RunDirError, check_run_files

DEVICE_CHOICES = "cpu, cuda, cuda:N, auto"


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------- device


def machine_devices() -> list[str]:
    """What this machine offers torch: ['cpu', 'cuda:0 (NVIDIA H200)', ...]."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return out


def resolve_device(name: str) -> torch.device:
    """`--device` as a torch.device: cpu, cuda, cuda:N or auto (cuda when there is one)."""
    has = ", ".join(machine_devices())
    if not torch.cuda.is_available():
        has += f" (no CUDA in torch {torch.__version__})"
    name = str(name).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if name == "cpu":
        return torch.device("cpu")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ConfigError(
            f"--device {name}: not a device cwbench runs on; valid: {DEVICE_CHOICES}; this machine has {has}"
        )
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; it has {has}; use --device cpu")
    if index and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: there is no GPU {index}; this machine has {has}")
    return torch.device(name)


# ---------------------------------------------------------------- the run directory


def check_run_dir(directory: Path, redo: str = "") -> None:
    """Refuse to go on in a run directory whose config.yaml, status.json, run.json or eval/summary.csv
    is damaged, naming the file. `redo` ('--force' or '--re-eval', the run is redone or re-scored):
    remove such files instead, saying so."""
    while True:
        try:
            check_run_files(directory)
            return
        except RunDirError as e:
            if e.path is None:
                raise
            if not redo:
                rescore = "--re-eval to score its checkpoint again, " if e.path.name == "summary.csv" else ""
                raise RunDirError(
                    f"{e.path} is damaged ({e.reason}): this run cannot go on from it. Pass {rescore}--force to "
                    f"redo the run from scratch, or delete {directory}",
                    e.path,
                    e.reason,
                ) from None
            warn(f"{e.path} is damaged ({e.reason}); removed it ({redo} redoes it)")
            e.path.unlink(missing_ok=True)


# ---------------------------------------------------------------- the config against data and model


def check_data(cfg, model, dataset, train_videos: np.ndarray, test_videos: np.ndarray) -> None:
    """Check `cfg` against the stored videos (N, T, H, W, C) and the built `model`; warn where
    it asks for more than there is. Raises before anything is written or trained."""
    e, d = cfg.eval, cfg.data
    n_test, test_frames = test_videos.shape[:2]
    check_context(model, e.context, max(d.test_length, e.context + 1))  # the model's context multiple
    generated = hasattr(dataset, "generate")  # its videos follow data.test_length
    if test_frames <= e.context and not generated:
        raise ProtocolError(
            f"{cfg.dataset} test videos have {test_frames} frames, no more than the eval.context={e.context} context "
            f"frames: nothing is left to predict. Lower eval.context (if the model allows it) or prepare longer "
            f"test videos ({dataset.prepare_command()})"
        )
    check_context(model, e.context, d.test_length)  # leaves something to predict
    if test_frames < d.test_length:
        raise ProtocolError(
            f"{cfg.dataset} test videos have {test_frames} frames, fewer than data.test_length={d.test_length} "
            f"(context {e.context} + horizon); lower data.test_length (at most {test_frames}: a horizon of "
            f"{test_frames - e.context})"
        )
    if model.trainable:
        if train_videos.shape[1] < cfg.train.seq_len:
            raise ProtocolError(
                f"{cfg.dataset} training videos have {train_videos.shape[1]} frames, fewer than train.seq_len="
                f"{cfg.train.seq_len}; lower train.seq_len"
            )
        n_train = getattr(d, "n_train", 0)
        if n_train > len(train_videos) + d.val_videos:  # the videos held out for validation count too
            raise ConfigError(
                f"data.n_train={n_train} but {cfg.dataset} has {len(train_videos)} training videos; "
                "lower data.n_train (0 = all of them)"
            )
        cfg.total_steps  # noqa: B018 - raises ConfigError when it cannot be known
    n_eval = n_test if e.n_videos <= 0 else min(e.n_videos, n_test)
    if e.n_videos > n_test:
        warn(f"eval.n_videos={e.n_videos} but {cfg.dataset} has {n_test} test videos: all {n_test} are evaluated")
    if "fvd" in e.metrics:
        check_fvd(cfg, n_eval)
    if e.use_obs:
        check_use_obs(model, e.use_obs)


def check_fvd(cfg, n_eval: int) -> None:
    """FVD needs >= 2 videos and >= 9 predicted frames: refuse a run whose FVD would be undefined."""
    from benchmarks.metrics.fvd import MIN_VIDEOS
    from benchmarks.metrics.i3d import MIN_FRAMES

    e = cfg.eval
    if e.fvd_videos > n_eval:
        warn(f"eval.fvd_videos={e.fvd_videos} but {n_eval} videos are evaluated: FVD uses {n_eval}")
    videos = min(e.fvd_videos, n_eval) if e.fvd_videos > 0 else n_eval
    horizon = cfg.data.test_length - e.context
    frames = min(e.fvd_frames, horizon) if e.fvd_frames > 0 else horizon
    if videos < MIN_VIDEOS:
        raise ConfigError(
            f"eval.metrics has fvd, but FVD would cover {videos} video(s) (eval.n_videos={e.n_videos}, "
            f"eval.fvd_videos={e.fvd_videos}, {cfg.dataset} test set); it needs >= {MIN_VIDEOS}: "
            "evaluate more videos or drop fvd from eval.metrics"
        )
    if frames < MIN_FRAMES:
        raise ConfigError(
            f"eval.metrics has fvd, but FVD would cover {frames} predicted frame(s) (data.test_length - eval.context"
            f"{', eval.fvd_frames' if e.fvd_frames else ''}); I3D needs >= {MIN_FRAMES}: predict more frames or "
            "drop fvd from eval.metrics"
        )


def check_use_obs(model, use_obs: tuple[bool, ...]) -> None:
    """eval.use_obs: a model whose predict takes it, one flag per level (CW-VAE)."""
    predict_options(model, raw=False, use_obs=use_obs)  # raises when predict has no use_obs
    levels = getattr(getattr(model, "cfg", None), "levels", None)
    if levels is not None and len(use_obs) != levels:
        raise ConfigError(
            f"eval.use_obs=[{','.join(str(bool(u)).lower() for u in use_obs)}]: one flag per level is needed, "
            "bottom first; "
            f"this model has {levels} level(s)"
        )
