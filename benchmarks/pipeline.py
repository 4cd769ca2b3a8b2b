"""One run end to end: config -> data -> train (or resume) -> open-loop eval -> run directory.

Everything a report needs is written into the run directory through rundir/run.py:
config.yaml, run.json (`record_run`: labels, variant, metric directions, horizon bands),
status.json, train.jsonl, eval/ and samples/.
"""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path

import torch

from benchmarks import distributed
from benchmarks.config import ConfigError
from benchmarks.evaluate import evaluate
from benchmarks.protocol import ProtocolError, check_context
from benchmarks.trainer import CHECKPOINT, build_seeded, train
from datasets import get_dataset
from rundir.run import INFO, check_writable, read_status, run_info, update_status, write_config, write_info


def machine_info() -> dict:
    """Where a run or a measurement was made: host, CPU, torch version, git commit."""
    info = {"machine": platform.node(), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = ""
    return info


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}); use --device cpu"
        )
    return torch.device(name)


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
        paper_dataset = get_dataset_class(cfg["dataset"]).paper_name
    except KeyError:
        paper_dataset = None
    return run_info(cfg, preset_dict, paper_label, paper_dataset, reference)


def record_run(directory: Path, cfg: dict, reference: bool | None = None, overwrite: bool = True) -> bool:
    """Write the run's run.json (`overwrite=False`: only if it has none). reference None: from
    status.json's parameter count (0: a naive reference). Returns whether it wrote."""
    if not overwrite and (Path(directory) / INFO).exists():
        return False
    if reference is None:
        reference = int(read_status(directory).get("params", -1)) == 0
    write_info(directory, describe_run(cfg, reference))
    return True


def is_finished(directory: Path) -> bool:
    return (directory / "eval" / "summary.csv").exists() and (directory / CHECKPOINT).exists()


def run_one(cfg, out: Path, device: str = "cpu", progress: bool = True, force: bool = False) -> Path:
    """Train and evaluate one run; a finished run is left as it is. Returns its directory."""
    out = Path(out)
    check_writable(out)
    dev = distributed.init_from_env(resolve_device(device))
    rank, _ = distributed.world()
    directory = cfg.run_dir(out)
    dataset = get_dataset(cfg.data)
    dataset.ensure_ready(progress=progress)  # generates Moving MNIST; others must be prepared
    if is_finished(directory) and not force:
        if rank == 0:
            record_run(directory, cfg.to_dict(), overwrite=False)  # finished before run.json existed
        return directory
    load_metric_networks(cfg, dev)  # every check before anything is written
    train_videos = load_checked(dataset, "train", cfg)
    test_videos = load_checked(dataset, "test", cfg)
    model = build_seeded(cfg)
    check_context(model, cfg.eval.context, min(cfg.data.test_length, test_videos.shape[1]))
    if test_videos.shape[1] < cfg.data.test_length:
        raise ProtocolError(
            f"{cfg.dataset} test videos have {test_videos.shape[1]} frames, fewer than data.test_length="
            f"{cfg.data.test_length} (context {cfg.eval.context} + horizon); lower data.test_length"
        )
    if model.trainable and train_videos.shape[1] < cfg.train.seq_len:
        raise ProtocolError(
            f"{cfg.dataset} training videos have {train_videos.shape[1]} frames, fewer than train.seq_len="
            f"{cfg.train.seq_len}; lower train.seq_len"
        )
    directory.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        write_config(directory, cfg.to_dict())
        record_run(directory, cfg.to_dict(), reference=not model.trainable)
        update_status(directory, params=model.num_params(), model=cfg.model_name, device=str(dev), **machine_info())
    result = train(model, cfg, train_videos, directory, dev, progress=progress, force=force)
    if rank != 0:
        return directory  # rank 0 evaluates and writes
    update_status(directory, steps=result.steps, train_time_s=result.train_time_s, trained=True)
    tic = time.perf_counter()
    evaluate(model, cfg, test_videos, directory, dev, progress=progress)
    update_status(directory, eval_time_s=time.perf_counter() - tic, evaluated=True)
    return directory
