"""The one trainer of every model.

Seeding, device, the model's optimizer settings (Adam lr/eps, global-norm clipping from
its YAML), progress (benchmarks/progress.py: a bar on a terminal, plain lines in a log), a JSONL log, and checkpoints (benchmarks/checkpoint.py:
`checkpoints/last.pt` and the one before it, `prev.pt`) with model (key `model`),
optimizer, step, elapsed training time and every RNG state, all as tensors and plain
values so that they load with `weights_only=True`. Re-running the same command resumes
from it; on CPU with the same seed the result is bit-identical to an uninterrupted run.
SIGINT (Ctrl-C) and SIGTERM (what SLURM sends before it kills a job) end the current
step, save a checkpoint and raise TrainingInterrupted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks import distributed
from benchmarks.checkpoint import LAST as CHECKPOINT  # noqa: F401  (re-exported: the suite, tests)
from benchmarks.checkpoint import (  # noqa: F401  (CheckpointMismatch, CheckpointWriteError: re-exported)
    CheckpointError,
    CheckpointMismatch,
    CheckpointWriteError,
    RunCheckpoints,
    check_config,
)
from benchmarks.loggers import silent
from benchmarks.memory import apply_allocator_policy
from benchmarks.optim import make_adam
from benchmarks.prefetch import Prefetcher
from benchmarks.progress import TrainProgress
from rundir.atomic import remove_stale_temps, write_text
from rundir.run import TRAIN_LOG, log_line, model_label


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""

    def __init__(self, step: int, terms: dict):
        self.step, self.terms = step, terms
        shown = ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
        super().__init__(
            f"non-finite loss at step {step} ({shown}); the last good checkpoint is kept. "
            "Lower train.lr or train.clip_grad, or pass --set train.skip_nonfinite=true to skip such batches"
        )


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM during training: a checkpoint of the current step was saved."""

    def __init__(self, signum: int, step: int, total: int, path: Path):
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        super().__init__(
            f"interrupted by {signal.Signals(signum).name} at step {step} of {total}: saved {path}; "
            "re-run the same command to resume"
        )


class BatchSampler:
    """Random windows of `seq_len` frames from the training videos, with a saveable RNG."""

    def __init__(self, videos: np.ndarray, batch_size: int, seq_len: int, seed: int):
        N, T = videos.shape[:2]
        if T < seq_len:
            raise ValueError(
                f"training videos have {T} frames, shorter than train.seq_len={seq_len}; lower train.seq_len"
            )
        self.videos, self.batch_size, self.seq_len = videos, batch_size, seq_len
        self.rng = np.random.default_rng([seed, 1])

    def next(self) -> np.ndarray:
        """(B, seq_len, H, W, C) uint8."""
        N, T = self.videos.shape[:2]
        idx = self.rng.integers(0, N, self.batch_size)
        offsets = self.rng.integers(0, T - self.seq_len + 1, self.batch_size)
        return np.stack([self.videos[i, o : o + self.seq_len] for i, o in zip(idx, offsets)])

    def state(self) -> dict:
        return self.rng.bit_generator.state  # PCG64: a dict of str and int, loadable with weights_only

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


@dataclass(frozen=True)
class StepHook:
    """`fn(model, step, device) -> {name: value}` every `every` optimizer steps (rank 0 only): in eval mode,
    with the training's RNG state and time untouched; its values are logged with the step (e.g.
    `val/lpips`). It may raise to stop training: a tuning trial that is pruned (benchmarks/tuning)."""

    every: int
    fn: Callable[[torch.nn.Module, int, torch.device], dict]

    def __call__(self, model, step: int, device) -> dict:
        from models.nets import eval_mode

        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), eval_mode(model):
            return self.fn(model, step, device)


@dataclass
class TrainResult:
    steps: int
    train_time_s: float
    resumed_from: int


def rng_state() -> dict:
    """Every global RNG's state as tensors and plain values (what torch.load(weights_only=True) reads)."""
    version, internal, gauss_next = random.getstate()  # internal: 625 ints < 2**32
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # keys: (624,) uint32
    state = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss_next},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss"]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_seeded(cfg):
    """The run's model, initialised under its seed (so a run's weights depend on nothing else)."""
    seed_everything(cfg.seed)
    return cfg.build_model()


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_trained(model, cfg, train_videos: np.ndarray, run_dir: Path, device):
    """Load the finished training of `run_dir` into `model` for evaluation only (--re-eval); returns the state.

    The checkpoint may come from a run that differs only in evaluation settings (a suite's eval_of run)."""
    model.observe_training_data(train_videos)
    store = RunCheckpoints(run_dir, warn)
    found = store.load()
    if found is None:
        raise CheckpointError(f"nothing to re-score in {run_dir}: it has no checkpoint; run without --re-eval to train")
    state, path = found
    check_config(state, path, cfg.to_dict(), cfg.hash(), training_only=True)
    total = state.get("total_steps", state["step"])
    if state["step"] < total:
        raise CheckpointError(
            f"{path} is at step {state['step']} of {total}: training has not finished, so there is nothing to "
            "re-score yet; run without --re-eval to resume it"
        )
    model.load_state_dict(state["model"])
    model.to(device)
    return state


@contextlib.contextmanager
def stop_requests():
    """SIGINT and SIGTERM append their number to the yielded list instead of stopping the process.

    A second Ctrl-C stops at once (KeyboardInterrupt). Outside the main thread signals cannot be
    caught, and the list stays empty."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if not received:
            warn(f"{signal.Signals(signum).name} received: saving a checkpoint after this step")
        received.append(signum)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines past `step` (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError):
            break  # a line cut by a kill: everything after it is dropped too
    write_text(path, "".join(k + "\n" for k in keep))


def make_optimizer(model, cfg):
    t = cfg.train
    return make_adam(model.parameters(), t.lr, t.adam_eps, t.adam_eps_form, amsgrad=t.amsgrad)


def train(
    model,
    cfg,
    train_videos: np.ndarray,
    run_dir: Path,
    device,
    progress: bool = True,
    hook: StepHook | None = None,
    loggers=None,
):
    """Train (or resume) `model` for cfg.total_steps; returns TrainResult. loggers: benchmarks.loggers.Loggers
    (TensorBoard, W&B: the caller opens and closes them; train.jsonl is written here in any case)."""
    t = cfg.train
    apply_allocator_policy()  # blocks up to 1 GiB in the heap, no trim (benchmarks/memory.py); idempotent
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(cfg.seed)
    model.to(device)
    model.observe_training_data(train_videos)
    rank, world_size = distributed.world()
    main_rank = rank == 0  # only rank 0 writes
    run_dir.mkdir(parents=True, exist_ok=True)
    store = RunCheckpoints(run_dir, warn if main_rank else None)
    ckpt_path = store.last
    if main_rank:
        for directory in (run_dir, ckpt_path.parent):  # leftovers of a run killed mid-write
            remove_stale_temps(directory)
    log_path = run_dir / TRAIN_LOG
    total = cfg.total_steps if model.trainable else 0
    optimizer = make_optimizer(model, cfg) if model.trainable else None
    sampler = BatchSampler(train_videos, t.batch_size, t.seq_len, cfg.seed)

    start, train_time = 0, 0.0
    found = store.load()
    ckpt = found[0] if found else None
    if found is not None:
        check_config(ckpt, found[1], cfg.to_dict(), cfg.hash())
        model.load_state_dict(ckpt["model"])
        if optimizer is not None and ckpt.get("optimizer"):
            optimizer.load_state_dict(ckpt["optimizer"])
        sampler.load_state(ckpt["sampler"])
        set_rng_state(ckpt["rng"])
        start, train_time = ckpt["step"], ckpt["train_time_s"]
        if main_rank:
            truncate_log(log_path, start)
            print(f"resuming from step {start} of {total} ({found[1]})", flush=True)
    elif log_path.exists() and main_rank:
        log_path.unlink()  # a log without a checkpoint belongs to a run killed before its first save

    # the batches of the steps to go, made `train.prefetch` ahead in a thread (started by `with` below)
    batches = Prefetcher(sampler, device, t.prefetch, rank, world_size, count=max(total - start, 0))

    def save(step: int) -> None:
        if not main_rank:
            return
        store.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "step": step,
                "train_time_s": train_time,
                "sampler": batches.state(),  # after the batches consumed, not those made ahead
                "rng": rng_state(),
                "config_hash": cfg.hash(),
                "config": cfg.to_dict(),
                "total_steps": total,
            },
        )

    loggers = loggers if loggers is not None and main_rank else silent(cfg, run_dir)
    loggers.start(start)
    if start >= total:
        if ckpt is None:
            save(total)
        return TrainResult(total, train_time, start)

    model.train()
    step_fn = model.loss
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_fn = DistributedDataParallel(distributed.LossModule(model))
    frames_per_step = t.batch_size * t.seq_len
    amp = t.amp == "bf16"  # CUDA, or a CPU (fast where it has native bf16: avx512_bf16, AMX)
    saved = start
    with (
        open(log_path if main_rank else os.devnull, "a") as log,
        TrainProgress(model_label(cfg.model_name), total, start, enabled=progress and main_rank) as bar,
        stop_requests() as stop,
        batches,
    ):
        window_t, window_steps = time.perf_counter(), 0
        for step in range(start + 1, total + 2):
            # a signal arrived during the last step: keep what it did, then stop (every rank at the same step:
            # torchrun and SLURM signal each process, which may see it at different steps)
            signum = stop[0] if stop else 0
            if world_size > 1:
                signum = distributed.max_over_ranks(signum, device)
            if signum:
                if saved < step - 1:
                    save(step - 1)
                raise TrainingInterrupted(signum, step - 1, total, ckpt_path)
            if step > total:
                break
            tic = time.perf_counter()
            batch = batches.next()  # (B / world, T, C, H, W): this rank's slice of the global batch
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, terms = step_fn(batch)
            if world_size > 1:  # log and check the global-batch values
                terms = {k: distributed.mean_over_ranks(v) for k, v in terms.items()}
                global_loss = distributed.mean_over_ranks(loss)
            else:
                global_loss = loss
            if not torch.isfinite(global_loss):
                shown = {"loss": global_loss.item(), **{k: float(v) for k, v in terms.items()}}
                if not t.skip_nonfinite:
                    raise NonFiniteLoss(step, shown)
                log.write(
                    log_line({"step": step, "skipped_nonfinite": True, **{f"train/{k}": v for k, v in shown.items()}})
                )
                log.flush()
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad if t.clip_grad > 0 else math.inf)
            optimizer.step()
            train_time += time.perf_counter() - tic
            window_steps += 1
            hooked = {}
            if hook is not None and main_rank and step % hook.every == 0:
                tic = time.perf_counter()
                hooked = hook(model, step, device)
                window_t += time.perf_counter() - tic  # frames/s counts training only
            if step % t.log_every == 0 or step == total or hooked:
                now = time.perf_counter()
                fps = window_steps * frames_per_step / max(now - window_t, 1e-9)
                window_t, window_steps = now, 0
                record = {
                    "step": step,
                    "train/loss": global_loss.item(),
                    "train/grad_norm": float(grad_norm),
                    **{f"train/{k}": float(v) for k, v in terms.items()},
                    "train/frames_per_s": fps,
                    "train/lr": optimizer.param_groups[0]["lr"],
                    "time/train_s": train_time,
                    **hooked,
                }
                log.write(log_line(record))
                log.flush()
                loggers.log(step, record)
                kls = " ".join(
                    f"{k.removeprefix('kl_')}={float(v):.2f}" for k, v in terms.items() if k.startswith("kl")
                )
                bar.logged(step, f"loss={global_loss.item():.2f} {kls} {fps:,.0f} frames/s")
            loggers.look(step, model)  # every train.eval_every steps: a sample strip (+ a validation score)
            bar.advance(step)
            if step % t.ckpt_every == 0 or step == total:
                save(step)
                saved = step
    return TrainResult(total, train_time, start)
