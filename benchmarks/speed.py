"""Speed benchmark: training and open-loop prediction throughput, metric throughput, memory.

Each measurement runs in a fresh subprocess so that its peak RSS is its own. Numbers
are measured after warm-up on synthetic videos of the config's shape (the data loader
is not part of the timed step).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

# One epoch of the paper's Moving MNIST is ~2.016M frames (2.5 days = 300 epochs at ~2.8k frames/s).
PAPER_FRAMES_PER_EPOCH = 2.016e6


def paper_rate(paper_label: str | None) -> float | None:
    """Training frames/s of the paper's model of this Table 1 label on one Titan Xp, from Table D.1's
    hours for 100 epochs (reports/paper/table_d1_train_hours.csv): 100 * 2.016e6 / (hours * 3600)."""
    from reports.reference import paper_train_hours

    hours = paper_train_hours().get(paper_label) if paper_label else None
    return None if hours is None else 100 * PAPER_FRAMES_PER_EPOCH / (hours * 3600)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cuda_peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def measure_train(model, cfg, device, steps: int, warmup: int, batch: int, profile: int = 0) -> dict:
    """Training throughput of the median of `steps` steps after `warmup`, the step's GFLOP (`model_gflop`),
    and with profile > 0 the `profile` operators that took the most time in one more step (torch.profiler)."""
    from benchmarks.trainer import make_optimizer

    t = cfg.train
    video = synthetic(batch, t.seq_len, (cfg.data.channels, cfg.data.size, cfg.data.size), device)
    opt = make_optimizer(model, cfg)
    model.train()
    amp = t.amp == "bf16"  # CUDA, or a CPU (fast where it has native bf16: avx512_bf16, AMX)

    def step(video=video):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = model.loss(video)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad if t.clip_grad > 0 else float("inf"))
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    times, before = [], resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        tic = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - tic)
    after = resource.getrusage(resource.RUSAGE_SELF)
    seconds = statistics.median(times)
    # counted after the timed steps, so that the warm-up steps are the ones right before them
    few = min(batch, 2)  # videos to count on: 2, as batch norm in training needs more than one value
    gflop = model_gflop(lambda: step(video[:few]), batch / few)
    top = {"train_profile": profile_step(step, profile)} if profile else {}
    return top | {
        "train_frames_per_s": batch * t.seq_len / seconds,  # of the median step
        "train_step_s": seconds,
        "train_gflop_per_step": gflop,
        "train_gflop_per_s": gflop / seconds,  # against `--peak`: how much of the machine a step uses
        "train_step_s_all": times,
        "train_minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
        "train_sys_s_per_step": (after.ru_stime - before.ru_stime) / steps,
    }


def model_gflop(step_few_videos, scale: float) -> float:
    """GFLOP of one training step of the model as its layers define it: `step_gflop` of a step on a few
    videos with every speed feature of models/fastpaths.py off, times `scale` (the batch over those few;
    every counted product is per video). What the features save (decoder_gemm's 5x fewer multiply-adds
    in one layer) or add (subpixel_deconv's zero taps of an odd kernel) is not counted: the same figure
    divides the official code's step time, which computes the plain layers, and ours."""
    from models.fastpaths import disabled

    with disabled():
        return scale * step_gflop(step_few_videos)


def native_transposed_conv_flop(x, weight, *args, **kwargs) -> int:
    """torch's native transposed conv (`native_last_deconv`'s forward, not in flop_registry): every
    input pixel times every tap of every output channel, a multiply-add counted as 2, as the registry
    counts oneDNN's."""
    return 2 * x.numel() * weight[0].numel()  # x: (N, C, H, W); weight: (C, D, kh, kw)


def step_gflop(step) -> float:
    """Floating-point operations of one call of `step` (untimed), in GFLOP: torch's count of its matrix
    products and convolutions (torch.utils.flop_counter's formulas, and `native_transposed_conv_flop`),
    forward and backward (a multiply-add is 2), which is nearly all of a step's arithmetic; elementwise
    operations are not counted.

    Counted by a bare dispatch mode rather than FlopCounterMode, whose module tracking kept activations
    alive: it doubled SVG's peak memory under activation checkpointing (2.0 -> 4.3 GB at batch 10)."""
    try:
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry
    except ImportError:  # a torch without them: no count
        return float("nan")

    formulas = {**flop_registry, torch.ops.aten.slow_conv_transpose2d: native_transposed_conv_flop}

    class Count(TorchDispatchMode):
        flops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = formulas.get(func._overloadpacket)
            if formula is not None:
                self.flops += formula(*args, **kwargs, out_val=out)
            return out

    with Count() as counter:
        step()
    return counter.flops / 1e9


def profile_step(step, rows: int) -> list[dict]:
    """One call of `step` under torch.profiler: the `rows` operators (by name and input shapes) with the
    most time of their own, each with its seconds, share of the step, calls and shapes."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
    return [
        {
            "op": e.key,
            "self_s": e.self_cpu_time_total / 1e6,
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
            "shapes": str(e.input_shapes)[:120],
        }
        for e in top
    ]


def measure_peak(device, repeats: int = 5, size: int = 0, conv_batch: int = 0) -> dict:
    """The best float32 rates this device reaches, in GFLOP/s: a large square matrix product (torch's
    BLAS: MKL on x86 CPUs) and a large 3x3 convolution (oneDNN on CPUs, cuDNN on GPUs), each the best of
    `repeats` timed calls after two untimed ones. A training step's GFLOP over the better of the two is
    the shortest that step can take on this device."""
    n = size or (6144 if device.type == "cpu" else 16384)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    x = torch.randn(conv_batch or (64 if device.type == "cpu" else 512), 256, 32, 32, device=device)
    w = torch.randn(256, 256, 3, 3, device=device)
    cases = {
        "peak_matmul_gflop_per_s": (lambda: a @ b, 2 * n**3),
        "peak_conv3x3_gflop_per_s": (
            lambda: torch.nn.functional.conv2d(x, w, padding=1),
            2 * x.shape[0] * 256 * 256 * 9 * 32 * 32,
        ),
    }
    out = {}
    for name, (fn, flop) in cases.items():
        best = float("inf")
        for i in range(repeats + 2):
            sync(device)
            tic = time.perf_counter()
            fn()
            sync(device)
            if i >= 2:
                best = min(best, time.perf_counter() - tic)
        out[name] = flop / best / 1e9
    return out


def measure_predict(
    model, cfg, device, horizon: int, batch: int, warmup: int, reps: int = 1, score: bool = True
) -> dict:
    """Open loop as the evaluation runs it: chunked predictions, each scored with SSIM (score=False:
    not scored, the official code's eval work) and dropped. Median of `reps` runs."""
    from benchmarks.metrics import ssim
    from benchmarks.protocol import open_loop_chunks

    context = cfg.eval.context
    shape = (cfg.data.channels, cfg.data.size, cfg.data.size)
    observed = synthetic(batch, context, shape, device)
    target = torch.rand(batch, 1, *shape, device=device)
    model.eval()

    def run(h: int) -> None:
        for part in open_loop_chunks(model, observed, h, chunk=cfg.eval.chunk):
            if score:
                ssim(part.flatten(0, 2), target.expand(-1, part.shape[2], -1, -1, -1).flatten(0, 1))

    for _ in range(warmup):
        run(min(horizon, 8))
    times = []
    for _ in range(reps):
        sync(device)
        tic = time.perf_counter()
        run(horizon)
        sync(device)
        times.append(time.perf_counter() - tic)
    seconds = statistics.median(times)
    return {"predict_frames_per_s": batch * horizon / seconds, "horizon": horizon, "predict_s_all": times}


def synthetic(batch: int, length: int, shape: tuple, device) -> torch.Tensor:
    """(B, T, C, H, W) float32 uniform in [0, 1) from numpy's default_rng(0): the same values
    benchmarks/official_speed.py feeds the official code (in its (B, T, H, W, C) layout)."""
    import numpy as np

    C, H, W = shape
    video = np.random.default_rng(0).random((batch, length, H, W, C), dtype=np.float32)
    return torch.from_numpy(video).permute(0, 1, 4, 2, 3).contiguous().to(device)


def amp_difference(model, cfg, device, batch: int) -> dict:
    """Loss and SSIM of bf16 autocast against fp32 on one fixed batch (same weights, same noise): the loss
    in training mode, as training computes it, the open-loop predictions in eval mode."""
    from benchmarks.metrics import ssim
    from benchmarks.protocol import open_loop
    from models.nets import eval_mode

    gen = torch.Generator().manual_seed(0)
    t = cfg.train
    shape = (cfg.data.channels, cfg.data.size, cfg.data.size)
    video = torch.rand(batch, t.seq_len, *shape, generator=gen).to(device)
    context = cfg.eval.context
    test = torch.rand(batch, context + 12, *shape, generator=gen).to(device)  # 12 predicted frames
    out = {}
    for name, enabled in (("fp32", False), ("bf16", True)):
        torch.manual_seed(0)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled):
            loss, _ = model.train().loss(video)
            with eval_mode(model):
                preds = open_loop(model, test, context, seed=0)
        target = test[:, None, context:].expand_as(preds).flatten(0, 2)
        out[f"loss_{name}"] = float(loss)
        out[f"ssim_{name}"] = float(ssim(preds.float().flatten(0, 2), target).mean())
    out["amp_loss_rel_diff"] = abs(out["loss_bf16"] - out["loss_fp32"]) / max(abs(out["loss_fp32"]), 1e-12)
    out["amp_ssim_abs_diff"] = abs(out["ssim_bf16"] - out["ssim_fp32"])
    return out


def frames_per_s(fn, frames: int, device) -> float:
    """Throughput of `fn()` on `frames` frames, timed after one untimed call."""
    fn()
    sync(device)
    tic = time.perf_counter()
    fn()
    sync(device)
    return frames / (time.perf_counter() - tic)


def measure_metrics(device, frames: int = 256) -> dict:
    from benchmarks.metrics import psnr, ssim

    x = torch.rand(frames, 1, 64, 64, device=device)
    y = torch.rand(frames, 1, 64, 64, device=device)
    out = {"ssim_psnr_frames_per_s": frames_per_s(lambda: (ssim(x, y), psnr(x, y)), frames, device)}
    try:  # learned metrics: their weights are fetched on first use
        from benchmarks.metrics import i3d_features, lpips

        out["lpips_frames_per_s"] = frames_per_s(lambda: lpips(x[:64], y[:64]), 64, device)
        videos = torch.rand(2, 16, 1, 64, 64, device=device)
        out["i3d_frames_per_s"] = frames_per_s(lambda: i3d_features(videos), 32, device)
    except Exception as e:  # noqa: BLE001 - a missing weight must not hide the other numbers
        out["metrics_note"] = f"learned metrics unavailable: {type(e).__name__}: {str(e)[:80]}"
    return out


def worker(spec: dict) -> dict:
    """One measurement in this process; returns its numbers and this process's peak memory."""
    from benchmarks.config import resolve_config
    from benchmarks.memory import apply_allocator_policy
    from benchmarks.pipeline import resolve_device
    from benchmarks.trainer import build_seeded
    from models.fastpaths import compile_steps, set_disabled

    apply_allocator_policy()  # as training and evaluation run (`--allocator system`: glibc's defaults)
    set_disabled(spec.get("off", []))

    device = resolve_device(spec["device"])
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = spec.get("tf32", False)
        torch.backends.cudnn.allow_tf32 = spec.get("tf32", False)
        torch.cuda.reset_peak_memory_stats(device)
    if spec["kind"] == "metrics":
        result = measure_metrics(device)
    elif spec["kind"] == "peak":
        result = measure_peak(device)
    else:
        cfg = resolve_config(spec["model"], "mmnist", spec["preset"], sets=spec.get("sets", []))
        model = build_seeded(cfg).to(device)
        result = {"params": model.num_params()}
        if spec.get("compile"):
            result["compiled_cells"] = compile_steps(model, spec["compile"])
        if spec["kind"] == "amp":
            return {**result, **amp_difference(model, cfg, device, spec.get("batch") or 2)}
        if spec["kind"] == "train":
            if not model.trainable:
                return {**result, "note": "nothing to train"}
            batch = spec.get("batch") or cfg.train.batch_size
            result |= measure_train(model, cfg, device, spec["steps"], spec["warmup"], batch, spec.get("profile", 0))
            result |= {"batch": batch, "seq_len": cfg.train.seq_len}
        else:
            if spec["model"] == "random_frame":
                import numpy as np

                model.observe_training_data(np.zeros((1, 1, 64, 64, cfg.data.channels), dtype=np.uint8))
            batch = spec.get("eval_batch") or cfg.eval.batch_size
            reps, score = spec.get("reps", 1), spec.get("score", True)
            result |= measure_predict(model, cfg, device, spec["horizon"], batch, spec["warmup"], reps, score)
            result["eval_batch"] = batch
    return {**result, "peak_rss_mb": peak_rss_mb(), "cuda_max_alloc_mb": cuda_peak_mb(device)}


ALLOCATORS = ("policy", "system", "jemalloc")


def worker_env(allocator: str = "policy") -> dict[str, str]:
    """The environment of a measurement's process: ours (which carries the allocator policy once
    it is applied), with allocator="system" glibc's defaults (the policy's variables removed), with
    "jemalloc" jemalloc preloaded, keeping freed pages (benchmarks.memory.jemalloc_env)."""
    from benchmarks.memory import jemalloc_env, system_env

    env = dict(os.environ)
    if allocator == "system":
        env = system_env(env)
    elif allocator == "jemalloc":
        env = jemalloc_env(env)
    elif allocator != "policy":
        raise ValueError(f"allocator must be one of {', '.join(ALLOCATORS)}, got {allocator!r}")
    return env


def run_isolated(spec: dict, timeout: float = 3600) -> dict:
    """Run `worker(spec)` in a fresh Python process (its own peak RSS)."""
    code = "import json,sys; from benchmarks.speed import worker; print(json.dumps(worker(json.loads(sys.argv[1]))))"
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[1],
        env=worker_env(spec.get("allocator", "policy")),
    )
    if proc.returncode == -9:
        return {"error": "killed by SIGKILL (out of memory?); try a smaller --batch"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_official(python: str, official: str, kind: str, timeout: float = 3600, **options) -> dict:
    """benchmarks/official_speed.py under `python` (one with tensorflow-cpu) on the official code at
    `official`, in glibc's default allocator (as a user runs the official code). Returns its JSON,
    or {"error": ...}."""
    script = Path(__file__).with_name("official_speed.py")
    cmd = [python, str(script), "--official", str(official), "--kind", kind]
    for key, value in options.items():
        if value:  # 0 / None: the official config's own value
            cmd += [f"--{key}", str(value)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=worker_env("system"))
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": f"official code ({' '.join(cmd)}): {tail[0]}"}
    return json.loads(lines[-1])
