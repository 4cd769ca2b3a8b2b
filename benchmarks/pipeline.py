"""One run end to end: config -> data -> train (or resume) -> open-loop eval -> run directory.

Everything a report needs is written into the run directory through rundir/run.py:
config.yaml, run.json (`record_run`: labels, variant, metric directions, horizon bands),
status.json, train.jsonl, eval/ and samples/.

One process at a time per run directory (benchmarks/runlock.py). `force` retrains from
scratch, `re_eval` re-scores the finished checkpoint, `weights` evaluates exported weights
(benchmarks/model_weights.py) in a run directory of their own, with nothing trained.

With `data.val_videos` the run trains on the training videos minus a held-out validation
split (datasets/validation.py); with `eval.split: val` it is scored on that split and the
test split is never opened (what `bench.py tune` does for each trial).
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import shutil
import subprocess
import time
from pathlib import Path

import torch

from benchmarks import distributed
from benchmarks.checkpoint import CheckpointError, RunCheckpoints
from benchmarks.checks import check_data, check_run_dir, resolve_device
from benchmarks.config import ConfigError
from benchmarks.evaluate import evaluate
from benchmarks.loggers import open_loggers
from benchmarks.protocol import ProtocolError
from benchmarks.runlock import run_lock
from benchmarks.trainer import CHECKPOINT, StepHook, build_seeded, load_trained, train
from datasets import get_dataset
from reports.samples import write_run_strip
from rundir.run import INFO, check_writable, model_label, read_status, run_info, update_status, write_config, write_info


def machine_info() -> dict:
    """Where a run or a measurement was made: host, CPU, torch version, git commit (and whether
    tracked files had changed since it: then the commit alone does not name the code)."""
    info = {"machine": platform.node(), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
    try:
        info["git_commit"] = git("rev-parse", "--short", "HEAD").stdout.strip()
        dirty = git("status", "--porcelain", "--untracked-files=no")
        info["git_dirty"] = bool(info["git_commit"]) and dirty.returncode == 0 and bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        info["git_commit"], info["git_dirty"] = "", False
    return info


def git(*args: str) -> subprocess.CompletedProcess:
    """A git command in this checkout (none: returncode != 0)."""
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5)


def load_checked(dataset, split: str, cfg):
    """The split, checksum-verified, with frames of the configured size and channels."""
    from datasets import DatasetCorrupt

    dataset.verify(split)
    videos = dataset.load(split)
    N, T, H, W, C = videos.shape
    if (H, W, C) != (cfg.data.size, cfg.data.size, cfg.data.channels):
        raise DatasetCorrupt(
            f"{dataset.registry_name} {split} videos are {H}x{W}x{C} but the config expects "
            f"{cfg.data.size}x{cfg.data.size}x{cfg.data.channels}; prepare the dataset again "
            f"({dataset.prepare_command()}) or fix data.size / data.channels"
        )
    return videos


def load_metric_networks(cfg, device) -> None:
    """Fetch (first use) and verify the learned metrics' weights before anything is written."""
    if "lpips" in cfg.eval.metrics:
        from benchmarks.metrics.lpips import get_model

        get_model(device)
    if "fvd" in cfg.eval.metrics:
        from benchmarks.metrics.i3d import get_model

        get_model(device)


def describe_run(cfg: dict, reference: bool) -> dict:
    """run.json of a run of config `cfg` (config.yaml's dict), from what this checkout knows: the
    preset's own config (its variant is the keys that differ from it), the model's Table 1 label
    and the dataset's name in the paper."""
    from benchmarks.config import resolve_config
    from datasets import get_dataset_class
    from models import get_model_class

    try:
        preset_cfg = resolve_config(cfg["model_name"], cfg["dataset"], cfg["preset"], seed=cfg.get("seed", 0))
        preset_dict = preset_cfg.to_dict()
    except ConfigError:  # e.g. a model file that has moved: no variant can be named
        preset_dict = None
    try:
        paper_label = get_model_class(cfg["model_name"]).paper_label
    except KeyError:
        paper_label = None
    try:
        dataset_class = get_dataset_class(cfg["dataset"])
        paper_dataset, paper_data = dataset_class.paper_name, dataset_class.paper_data
    except KeyError:
        paper_dataset, paper_data = None, None
    return run_info(cfg, preset_dict, paper_label, paper_dataset, reference, paper_data)


def record_run(directory: Path, cfg: dict, reference: bool | None = None, overwrite: bool = True) -> bool:
    """Write the run's run.json (`overwrite=False`: only if it has none). reference None: from
    status.json's parameter count (0: a naive reference). Returns whether it wrote."""
    if not overwrite and (Path(directory) / INFO).exists():
        return False
    if reference is None:
        reference = int(read_status(directory).get("params", -1)) == 0
    write_info(directory, describe_run(cfg, reference))
    return True


def split_videos(dataset, cfg):
    """(training videos, evaluated videos, the config the evaluation runs under). eval.split=val: the
    held-out training videos, predicted to their end (data.test_length becomes their length)."""
    from datasets.validation import carve_validation

    train_videos = load_checked(dataset, "train", cfg)
    if cfg.data.val_videos:
        train_videos, val_videos = carve_validation(dataset, train_videos, cfg.data.val_videos, cfg.data.val_seed)
    if cfg.eval.split == "test":
        return train_videos, load_checked(dataset, "test", cfg), cfg
    if not cfg.data.val_videos:
        raise ConfigError("eval.split=val needs a validation split: set data.val_videos (e.g. 100)")
    if val_videos.shape[1] <= cfg.eval.context:
        raise ProtocolError(
            f"validation videos are {cfg.dataset} training videos of {val_videos.shape[1]} frames: nothing is left to "
            f"predict after {cfg.eval.context} context frames; raise data.train_length or lower eval.context"
        )
    eval_cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, test_length=val_videos.shape[1]))
    return train_videos, val_videos, eval_cfg


def is_finished(directory: Path) -> bool:
    if not (directory / "eval" / "summary.csv").exists():
        return False
    return (directory / CHECKPOINT).exists() or "weights" in read_status(directory)


def start_over(directory: Path) -> None:
    """--force: remove what a previous attempt trained and scored (the evaluation first: never 'finished' after)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / "eval" / "summary.csv").unlink()
    for sub in ("eval", "samples", "checkpoints"):
        shutil.rmtree(directory / sub, ignore_errors=True)
    for name in ("train.jsonl", "status.json"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()


def run_one(
    cfg,
    out: Path,
    device: str = "cpu",
    progress: bool = True,
    force: bool = False,
    re_eval: bool = False,
    wait: bool = False,
    weights=None,
    hook: StepHook | None = None,
) -> Path:
    """Train and evaluate one run; a finished run is left as it is. Returns its directory.

    force: retrain from scratch. re_eval: evaluate the finished checkpoint again, training nothing.
    wait: wait for another process that holds the run directory instead of refusing.
    weights: an ExportedWeights to evaluate instead of training (in a run directory of their own).
    hook: called by the trainer every `hook.every` steps (benchmarks/trainer.py)."""
    from benchmarks import model_weights

    if weights is not None:
        model_weights.check_config(weights, cfg.model_name, cfg.to_dict()["model"])
        cfg = dataclasses.replace(cfg, weights_sha256=weights.sha256)  # part of the run's identity
    out = Path(out)
    dev = distributed.init_from_env(resolve_device(device))
    rank, world_size = distributed.world()
    directory = cfg.run_dir(out)
    redo = "--force" if force else "--re-eval" if re_eval else ""
    check_run_dir(directory, redo)  # a damaged file of an earlier attempt refuses the run, naming it
    dataset = get_dataset(cfg.data)
    # generates Moving MNIST (rank 0 first under torchrun); others must be prepared
    distributed.rank_zero_first(lambda: dataset.ensure_ready(progress=progress))
    if is_finished(directory) and not redo:
        if rank == 0:
            record_run(directory, cfg.to_dict(), overwrite=False)  # finished before run.json existed
        print(f"already finished: {directory} (use --force to retrain, --re-eval to re-score)")
        return directory
    if re_eval and weights is None and not RunCheckpoints(directory).exists():
        raise CheckpointError(f"nothing to re-score in {directory}: it has no checkpoint; run without --re-eval")
    train_videos, test_videos, eval_cfg = split_videos(dataset, cfg)
    loggers = open_loggers(cfg, directory, dev, dataset, test_videos)  # packages checked; opened by train()
    model = build_seeded(cfg)
    check_data(eval_cfg, model, dataset, train_videos, test_videos)  # the config against the data and the model
    load_metric_networks(cfg, dev)  # after the cheap checks (a first use downloads), before anything is written
    if weights is not None:
        model_weights.check_fits(model.state_dict(), weights)
    check_writable(out)  # the last check: it makes --out, so a refused run leaves no empty directory
    lock = run_lock(directory, wait=wait) if rank == 0 else contextlib.nullcontext()
    with lock, loggers:  # loggers (TensorBoard, W&B) close when this ends: a W&B run marked failed on an error
        if is_finished(directory) and not redo:  # another process finished it while this one waited
            print(f"already finished: {directory} (use --force to retrain, --re-eval to re-score)")
            return directory
        if force and rank == 0:
            start_over(directory)
        if force and world_size > 1:
            torch.distributed.barrier()  # no rank reads a checkpoint that rank 0 is removing
        if rank == 0:
            write_config(directory, cfg.to_dict())
            record_run(directory, cfg.to_dict(), reference=not model.trainable)
            update_status(
                directory,
                params=model.num_params(),
                model=cfg.model_name,
                device=str(dev),
                data_manifest_sha256=dataset.manifest_sha256(),  # the data it read (results export, reports)
                **machine_info(),
            )
        if weights is not None:
            model.observe_training_data(train_videos)
            model_weights.load_into(model, weights)
            model.to(dev)
            update_status(
                directory, steps=weights.info.get("step", 0), train_time_s=0.0, weights=weights_record(weights)
            )
        elif re_eval:
            state = load_trained(model, cfg, train_videos, directory, dev)
            update_status(directory, steps=state["step"], train_time_s=state.get("train_time_s", 0.0), trained=True)
        else:
            result = train(model, cfg, train_videos, directory, dev, progress=progress, hook=hook, loggers=loggers)
            if rank == 0:
                update_status(directory, steps=result.steps, train_time_s=result.train_time_s, trained=True)
        if rank != 0:
            return directory  # rank 0 evaluates and writes
        tic = time.perf_counter()
        evaluate(model, eval_cfg, test_videos, directory, dev, progress=progress)
        update_status(directory, eval_time_s=time.perf_counter() - tic, evaluated=True)
        write_run_strip(directory, strip_title(cfg))
        loggers.finish(directory, out)
    return directory


def strip_title(cfg) -> str:
    return (
        f"{model_label(cfg.model_name)} on {cfg.dataset} (preset {cfg.preset}, seed {cfg.seed}): "
        f"test video 1, open loop after {cfg.eval.context} frames"
    )


def weights_record(weights) -> dict:
    """status.json's `weights`: where evaluated weights came from, their sha256, and their sidecar's provenance."""
    provenance = {k: weights.info.get(k) for k in ("source", "config_hash", "code_commit", "dataset", "preset", "step")}
    return {"path": str(weights.path.resolve()), "sha256": weights.sha256, **provenance}
