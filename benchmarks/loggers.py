"""Where a run's training can be watched: train.jsonl (always), TensorBoard, Weights & Biases.

    --set train.loggers=[jsonl,tensorboard,wandb]     jsonl is always on (the trainer writes it)
    --set train.eval_every=200                        a sample strip (+ a quick validation score)

`open_loggers` checks that the chosen loggers' packages are installed (a one-line
ConfigError naming the `pip install` command, before anything is written) and returns the
one object the pipeline and the trainer talk to:

    start(step)         the trainer starts (or resumes) at `step`: the loggers open
    log(step, record)   a train.jsonl record (flat dict, slash names) -> every logger's scalars
    look(step, model)   every train.eval_every steps: an open-loop sample strip (image) and, where a
                        validation split is configured (data.val_videos), SSIM and PSNR over its first
                        train.eval_videos videos (`val/ssim`, `val/psnr`)
    finish(directory, results)   after the evaluation: the run's summary and its leaderboard row
    close(failed)       (or leave the `with` block)

TensorBoard writes event files into <run>/tensorboard/ through torch.utils.tensorboard;
W&B writes <run>/wandb/, offline unless WANDB_MODE says otherwise, with the resolved config
and its hash as the W&B config. The quick look never changes training: it predicts in eval
mode under a forked, fixed-seed RNG (the protocol's open_loop), so a run's numbers are the
same with or without it (these settings are operational: rundir.run.OPERATIONAL). The
score needs a validation split (held-out training videos, datasets/validation.py): without
one the strip shows the first test video and no number is computed on the test set during
training. Nothing is selected or stopped on the quick look; the evaluation always scores
the last checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path
from typing import ClassVar

import numpy as np

from benchmarks.config import LOGGERS as LOGGER_NAMES
from benchmarks.config import ConfigError
from rundir.atomic import write_text

ALWAYS = "jsonl"  # written by the trainer itself, whatever train.loggers says
VAL_METRICS = ("ssim", "psnr")  # the quick validation score (standard mode, one sample)
STRIP_TAG = "samples/open_loop"
STRIP_SCALE = 2  # nearest-neighbour upscaling of the strip's frames


class Logger:
    """One place a run's numbers go. Subclasses register with @register_logger."""

    name: ClassVar[str] = ""
    package: ClassVar[str] = ""  # the module it needs
    pip: ClassVar[str] = ""  # what to install

    def __init__(self, cfg, run_dir: Path, start: int):
        self.cfg, self.run_dir, self.start = cfg, Path(run_dir), start

    def scalars(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def image(self, step: int, tag: str, image: np.ndarray, caption: str) -> None:
        """image: (H, W, 3) uint8."""
        raise NotImplementedError

    def summary(self, step: int, values: dict[str, float], row: dict) -> None:
        """The evaluation's numbers ({'eval/ssim': ...}) and the run's leaderboard row."""
        raise NotImplementedError

    def close(self, failed: bool) -> None:
        raise NotImplementedError


LOGGERS: dict[str, type[Logger]] = {}


def register_logger(name: str):
    """Register a Logger under `name`, one of benchmarks.config.LOGGERS (train.loggers' valid values)."""

    def wrap(cls: type[Logger]) -> type[Logger]:
        if name in LOGGERS or name == ALWAYS or name not in LOGGER_NAMES:
            raise ValueError(f"logger {name!r}: registered twice, or not in benchmarks.config.LOGGERS")
        cls.name = name
        LOGGERS[name] = cls
        return cls

    return wrap


def check_installed(names) -> None:
    """Every chosen logger's package importable, else one line naming the pip command."""
    for name in names:
        cls = LOGGERS.get(name)
        if cls is not None and cls.package and importlib.util.find_spec(cls.package) is None:
            raise ConfigError(
                f"train.loggers includes {name}, but the {cls.package} package is not installed: "
                f"pip install {cls.pip} (or pip install -e '.[{name}]' in the checkout)"
            )


@register_logger("tensorboard")
class TensorBoardLogger(Logger):
    """Event files in <run>/tensorboard/: `tensorboard --logdir results/runs`."""

    package, pip = "tensorboard", "tensorboard"

    def __init__(self, cfg, run_dir: Path, start: int):
        super().__init__(cfg, run_dir, start)
        from torch.utils.tensorboard import SummaryWriter

        # TensorBoard hides the events at and after purge_step: a resumed run what the killed process logged
        # after its checkpoint, a run started over (--force) everything before
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=start + 1 if start else 0)
        self.writer.add_text("config", f"config hash `{cfg.hash()}`\n\n```yaml\n{cfg.to_yaml()}```", start)

    def scalars(self, step, values):
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, step, tag, image, caption):
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def summary(self, step, values, row):
        self.scalars(step, values)
        shown = "\n".join(f"| {k} | {v} |" for k, v in row.items())
        self.writer.add_text("leaderboard", f"| column | value |\n| --- | --- |\n{shown}", step)

    def close(self, failed):
        self.writer.close()


@register_logger("wandb")
class WandbLogger(Logger):
    """A W&B run in <run>/wandb/, offline unless WANDB_MODE is set (`wandb sync <run>/wandb/offline-run-*`)."""

    package, pip = "wandb", "wandb"

    def __init__(self, cfg, run_dir: Path, start: int):
        super().__init__(cfg, run_dir, start)
        import wandb

        from rundir.run import model_label

        self.wandb = wandb
        label = model_label(cfg.model_name)
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "cwbench"),
                dir=str(self.run_dir),
                mode=os.environ.get("WANDB_MODE") or "offline",
                id=self.run_id(f"{cfg.dataset}-{label}-{self.run_dir.name}", start),
                resume="allow",  # a resumed run continues its W&B run
                name=f"{cfg.dataset}/{label}/{self.run_dir.name}",
                group=f"{cfg.dataset}/{label}/{cfg.preset}",
                job_type="train",
                config={**cfg.to_dict(), "config_hash": cfg.hash(), "run_dir": str(self.run_dir)},
                settings=wandb.Settings(console="off", silent=True),
            )
        except Exception as e:  # wandb's own errors (no login when online, ...): one line, before training
            raise ConfigError(
                f"W&B could not start a run ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}); "
                "run `wandb login`, or unset WANDB_MODE to log offline"
            ) from None

    def run_id(self, name: str, start: int) -> str:
        """The W&B id of this run directory's training: kept in <run>/wandb/cwbench_run_id, the same when
        training resumes (start > 0), a new one when it starts from step 0 again (--force)."""
        path = self.run_dir / "wandb" / "cwbench_run_id"
        if start > 0 and path.exists():
            return path.read_text().strip()
        attempt = 0
        if path.exists():  # started over: a W&B run of its own, never steps going back in the old one
            previous = path.read_text().strip()
            attempt = int(previous.rpartition("-r")[2]) + 1 if re.search(r"-r\d+$", previous) else 1
        run_id = wandb_id(name + (f"-r{attempt}" if attempt else ""))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, run_id + "\n")
        return run_id

    def scalars(self, step, values):
        self.run.log(values, step=step)

    def image(self, step, tag, image, caption):
        self.run.log({tag: self.wandb.Image(image, caption=caption)}, step=step)

    def summary(self, step, values, row):
        import pandas as pd

        self.run.summary.update({**values, **{f"leaderboard/{k}": v for k, v in row.items()}})
        self.run.log({"leaderboard": self.wandb.Table(dataframe=pd.DataFrame([row]))}, step=step)

    def close(self, failed):
        self.run.finish(exit_code=1 if failed else 0)


def wandb_id(text: str) -> str:
    """A W&B run id (letters, digits, - _ .; at most 64 characters), the same for the same text."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", text)
    if len(clean) > 64:
        clean = clean[:55] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return clean


class Loggers:
    """The chosen loggers behind one interface (module docstring). Without any, every call returns at once."""

    def __init__(self, cfg, run_dir: Path, device=None, names=(), videos=None, validation: bool = False):
        """videos (N, T, H, W, C) uint8: those the quick look predicts; validation: they are the validation
        split's (then it scores them)."""
        self.cfg, self.run_dir, self.device = cfg, Path(run_dir), device
        self.names = [n for n in names if n != ALWAYS]
        self.videos, self.validation = videos, validation
        self.sinks: list[Logger] = []
        self.last_step = 0

    def __enter__(self) -> Loggers:
        return self

    def __exit__(self, kind, error, tb) -> None:
        self.close(failed=kind is not None)

    def start(self, step: int) -> None:
        self.close(failed=False)  # a second start (a retried training) reopens
        self.sinks = [LOGGERS[name](self.cfg, self.run_dir, step) for name in self.names]
        self.last_step = step

    def log(self, step: int, record: dict) -> None:
        if not self.sinks:
            return
        values = {k: float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        for sink in self.sinks:
            sink.scalars(step, values)
        self.last_step = step

    def look(self, step: int, model) -> None:
        """Every train.eval_every steps: the sample strip and the quick validation score."""
        every = self.cfg.train.eval_every
        if not self.sinks or every <= 0 or step % every or self.videos is None:
            return
        strip, values, caption = quick_look(model, self.cfg, self.videos, self.device, self.validation)
        for sink in self.sinks:
            sink.image(step, STRIP_TAG, strip, caption)
            if values:
                sink.scalars(step, values)
        self.last_step = step

    def finish(self, directory: Path, results: Path) -> None:
        """The evaluation's summary (eval/summary.csv, best of the samples) and the run's leaderboard row."""
        if not self.sinks:
            return
        values, row = run_summary(Path(directory), Path(results))
        step = max(self.last_step, self.cfg.total_steps)
        for sink in self.sinks:
            sink.summary(step, values, row)

    def close(self, failed: bool = False) -> None:
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            sink.close(failed)


def open_loggers(cfg, run_dir: Path, device=None, dataset=None, evaluated=None) -> Loggers:
    """The loggers of `cfg.train.loggers` for `run_dir` (their packages checked now; opened by `start`).
    evaluated: the videos the run evaluates (the test split, or the validation split with eval.split=val)."""
    names = cfg.train.loggers  # valid names: checked with the config
    check_installed(names)
    videos, validation = evaluated, cfg.eval.split == "val"
    if cfg.data.val_videos and not validation and cfg.train.eval_every and set(names) - {ALWAYS}:
        from datasets.validation import carve_validation

        videos = carve_validation(dataset, dataset.load("train"), cfg.data.val_videos, cfg.data.val_seed)[1]
        validation = True
        if videos.shape[1] <= cfg.eval.context:
            raise ConfigError(
                f"train.eval_every: the validation videos (data.val_videos, training videos of {videos.shape[1]} "
                f"frames) leave nothing to predict after eval.context={cfg.eval.context} frames; raise "
                "data.train_length, or set data.val_videos=0 (then the strip shows a test video, with no score)"
            )
    return Loggers(cfg, run_dir, device, names, videos, validation)


def silent(cfg, run_dir: Path) -> Loggers:
    """Loggers that log nothing (ranks other than 0, callers that chose none)."""
    return Loggers(cfg, run_dir)


# ---------------------------------------------------------------- the quick look


def quick_look(model, cfg, videos, device, validation: bool) -> tuple[np.ndarray, dict[str, float], str]:
    """(strip (H', W', 3) uint8, {'val/ssim': .., 'val/psnr': ..} or {}, caption): the model's open-loop
    prediction of the first videos after eval.context frames, train.val_horizon frames long, in eval mode
    with a fixed seed; scored over the first train.eval_videos of them if they are validation videos."""
    import torch

    from benchmarks.metrics import FRAME_METRICS
    from benchmarks.protocol import frame_scores, open_loop, to_video_tensor
    from models.nets import eval_mode

    t, context = cfg.train, cfg.eval.context
    horizon = max(1, min(t.val_horizon, videos.shape[1] - context))
    n = max(1, min(t.eval_videos, len(videos))) if validation else 1
    video = to_video_tensor(videos[:n, : context + horizon], device)  # (n, context + h, C, H, W)
    with eval_mode(model):
        preds = open_loop(model, video, context, n_samples=1, seed=cfg.seed)  # (n, 1, h, C, H, W)
    values = {}
    if validation and t.eval_videos > 0:
        fns = {m: FRAME_METRICS[m].fn for m in VAL_METRICS}
        scores = frame_scores(preds, video[:, context:], fns)  # {metric: (n, 1, h)}
        values = {f"val/{m}": float(s.mean()) for m, s in scores.items()}
    gt = np.asarray(videos[0, : context + horizon])  # (T, H, W, C) uint8
    pred = (preds[0, 0].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (h, H, W, C)
    shown = ", ".join(f"{k.removeprefix('val/')} {v:.3f}" for k, v in values.items())
    caption = f"{'validation' if validation else 'test'} video 1: ground truth (top), open loop after {context} frames"
    caption += f" (bottom); {n} validation videos x {horizon} frames: {shown}" if values else " (bottom)"
    return sample_strip(gt, pred, context), values, caption


def sample_strip(gt: np.ndarray, pred: np.ndarray, context: int, scale: int = STRIP_SCALE) -> np.ndarray:
    """gt (T, H, W, C), pred (h, H, W, C) uint8 -> (H', W', 3) uint8: ground truth on top, the prediction
    below; columns a few context frames (the prediction row blank there), then predicted frames at
    growing horizons (reports.samples' choice); 2-pixel white gaps."""
    from reports.samples import chosen_horizons, context_indices, to_rgb

    H, W = gt.shape[1:3]
    ctx = context_indices(context)
    hs = chosen_horizons(len(pred))
    blank = np.full((H, W, 3), 255, np.uint8)
    top = [to_rgb(gt[i]) for i in ctx] + [to_rgb(gt[context + h - 1]) for h in hs]
    bottom = [blank] * len(ctx) + [to_rgb(pred[h - 1]) for h in hs]
    gap = 2
    grid = np.full((2 * H + gap, len(top) * (W + gap) - gap, 3), 255, np.uint8)
    for c, (a, b) in enumerate(zip(top, bottom)):
        x = c * (W + gap)
        grid[:H, x : x + W] = a
        grid[H + gap :, x : x + W] = b
    return grid.repeat(scale, 0).repeat(scale, 1)


def run_summary(directory: Path, results: Path) -> tuple[dict[str, float], dict]:
    """({'eval/<metric>': value, 'eval/<metric>_ci_low': .., ..}, the leaderboard row holding this run)."""
    from reports.leaderboard import leaderboard_frame
    from rundir.run import collect, read_summary

    summary = read_summary(directory)
    best = summary[summary["aggregate"] == "best"]
    values = {}
    for r in best.itertuples():
        for suffix, v in (("", r.value), ("_ci_low", r.ci_low), ("_ci_high", r.ci_high)):
            if v == v:  # NaN (FVD undefined, no interval) is left out
                values[f"eval/{r.metric}{suffix}"] = float(v)
    rel = directory.relative_to(results).as_posix() if directory.is_relative_to(results) else ""
    frame = leaderboard_frame(collect(results))
    row = {}
    for record in frame.to_dict("records") if len(frame) else []:
        if rel in str(record.get("runs", "")).split(";"):
            row = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items() if v == v}
    return values, row
