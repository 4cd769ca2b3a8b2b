"""One run end to end: config -> data -> train (or resume) -> open-loop eval -> run directory."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks.evaluate import evaluate
from benchmarks.runs import check_writable, machine_info, run_dir, update_status, write_config
from benchmarks.trainer import CHECKPOINT, build_seeded, train
from datasets import get_dataset


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}); use --device cpu")
    return torch.device(name)


def is_finished(directory: Path) -> bool:
    return (directory / "eval" / "summary.csv").exists() and (directory / CHECKPOINT).exists()


def run_one(cfg, out: Path, device: str = "cpu", progress: bool = True, force: bool = False) -> Path:
    """Train and evaluate one run; a finished run is left as it is. Returns its directory."""
    out = Path(out)
    check_writable(out)
    dev = resolve_device(device)
    directory = run_dir(out, cfg)
    dataset = get_dataset(cfg.data)
    dataset.ensure_ready(progress=progress)  # generates Moving MNIST; others must be prepared
    if is_finished(directory) and not force:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    write_config(directory, cfg)
    model = build_seeded(cfg)
    update_status(directory, params=model.num_params(), model=cfg.model_name, device=str(dev), **machine_info())
    result = train(model, cfg, dataset.load("train"), directory, dev, progress=progress, force=force)
    update_status(directory, steps=result.steps, train_time_s=result.train_time_s, trained=True)
    tic = time.perf_counter()
    evaluate(model, cfg, dataset.load("test"), directory, dev, progress=progress)
    update_status(directory, eval_time_s=time.perf_counter() - tic, evaluated=True)
    return directory
