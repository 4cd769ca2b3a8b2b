"""`python bench.py speed`: training/prediction/metric throughput and peak memory per model.

    python bench.py speed [--model M ...] [--preset paper] [--device cuda] [--steps N]
                          [--horizons 100 1000] [--batch B] [--out results]
                          [--allocator system|jemalloc] [--off FEATURE ...]
    python bench.py speed --against-official --official PATH --official-python PYTHON [--rounds 2]

Prints a rich table and appends one row per model to <out>/speed.csv with the machine,
device, torch version and git commit. With --against-official: CW-VAE's paper configuration
against the official TensorFlow code (benchmarks/official_speed.py, run under PYTHON on the
checkout at PATH; the project does not ship that code), alternated round by round, and the
ratio; rows appended to <out>/speed_official.csv.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import pandas as pd

from benchmarks.commands import UsageError, add_set_argument
from benchmarks.memory import AllocatorUnavailable
from benchmarks.pipeline import machine_info
from benchmarks.speed import ALLOCATORS, paper_rate, run_isolated, worker_env
from models.fastpaths import COMPILE_MODES
from rundir.atomic import write_csv

DEFAULT_MODELS = ["cwvae", "notmpabs", "rssm", "vta", "svg", "copy_last"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.py speed", description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=None, help="models (default: the paper's five and copy_last)")
    p.add_argument("--preset", default="paper")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=3, help="timed training steps after warm-up")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=0, help="training batch (default: the config's)")
    p.add_argument("--eval-batch", type=int, default=0, help="prediction batch (default: the config's)")
    p.add_argument("--horizons", type=int, nargs="+", default=[100], help="open-loop horizons to time")
    add_set_argument(p, what="a config key, as for a run")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convs on CUDA")
    p.add_argument("--no-metrics", action="store_true", help="skip the metric throughput measurement")
    p.add_argument("--amp-check", action="store_true", help="compare bf16 autocast with fp32 on a fixed batch")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="print the N operators that take the most time in one training step (torch.profiler)",
    )
    p.add_argument(
        "--peak",
        action="store_true",
        help="also measure the device's best float32 rates (a large matmul and 3x3 conv), and each training "
        "step's share of them",
    )
    p.add_argument("--out", default="results")
    p.add_argument(
        "--allocator",
        default="policy",
        choices=ALLOCATORS,
        help="the allocator policy of benchmarks/memory.py (default), glibc's defaults, or jemalloc keeping freed "
        "pages (installed separately: VTA's paper batch on a CPU), to measure it",
    )
    p.add_argument(
        "--off", nargs="+", default=[], metavar="FEATURE", help="speed features to turn off (see models/fastpaths.py)"
    )
    p.add_argument(
        "--compile",
        default="",
        choices=["", *COMPILE_MODES],
        help="torch.compile the recurrent cells' steps in this mode (reduce-overhead: CUDA graphs)",
    )
    official = p.add_argument_group("side by side with the official CW-VAE code")
    official.add_argument(
        "--against-official", action="store_true", help="time cwvae and the official code, print the ratio"
    )
    official.add_argument("--official", help="checkout of github.com/vaibhavsaxena11/cwvae")
    official.add_argument("--official-python", help="a python with tensorflow-cpu (e.g. /tmp/venv-tf/bin/python)")
    official.add_argument("--rounds", type=int, default=2, help="rounds, each timing ours then the official code")
    official.add_argument("--reps", type=int, default=3, help="timed open-loop runs per round")
    return p


def against_official(args, console) -> int:
    """CW-VAE (paper config) against the official code: training and open-loop prediction, alternated."""
    import statistics

    from rich.table import Table

    from benchmarks.speed import run_isolated, run_official

    missing = [f"--{n}" for n in ("official", "official_python") if not getattr(args, n)]
    if missing:
        raise UsageError(
            f"--against-official needs {' and '.join(m.replace('_', '-') for m in missing)}: "
            "a checkout of the official CW-VAE code and a python with tensorflow-cpu (docs/performance.md)"
        )
    if not (Path(args.official) / "cwvae.py").exists():
        raise UsageError(
            f"--official {args.official} has no cwvae.py; give a checkout of github.com/vaibhavsaxena11/cwvae"
        )
    horizon = max(args.horizons)
    eval_batch = args.eval_batch or 10
    base = {
        "device": "cpu",
        "preset": args.preset,  # the paper's configuration is the official mmnist.yml
        "warmup": args.warmup,
        "sets": args.sets,
        "model": "cwvae",
        "allocator": args.allocator,
        "off": args.off,
        "compile": args.compile,
    }
    steps = {"ours": [], "official": []}  # seconds per training step
    runs = {"ours": [], "official": []}  # seconds per open-loop prediction
    frames = {"ours": 0, "official": 0}  # frames per training step
    gflop = 0.0  # per training step: the model's own products, which both compute (speed.model_gflop)
    errors = []
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])  # the doc says what the load was
        console.print(
            f"round {r + 1}/{args.rounds} (load average {loads[-1]:.2f}): training, cwbench then official ..."
        )
        ours = run_isolated({**base, "kind": "train", "steps": args.steps, "batch": args.batch})
        theirs = run_official(
            args.official_python, args.official, "train", steps=args.steps, warmup=args.warmup, batch=args.batch
        )
        console.print(f"round {r + 1}/{args.rounds}: open loop {eval_batch} x {horizon}, cwbench then official ...")
        ours_p = run_isolated(
            {**base, "kind": "predict", "horizon": horizon, "eval_batch": eval_batch, "reps": args.reps, "score": False}
        )
        theirs_p = run_official(
            args.official_python, args.official, "predict", horizon=horizon, batch=eval_batch, reps=args.reps
        )
        for name, result in (
            ("cwbench train", ours),
            ("official train", theirs),
            ("cwbench predict", ours_p),
            ("official predict", theirs_p),
        ):
            if "error" in result:
                errors.append(f"{name}: {result['error']}")
        frames["ours"] = ours.get("batch", 0) * ours.get("seq_len", 0)
        frames["official"] = theirs.get("frames", 0)
        gflop = ours.get("train_gflop_per_step", gflop)
        steps["ours"] += ours.get("train_step_s_all", [])
        steps["official"] += theirs.get("seconds", [])
        runs["ours"] += ours_p.get("predict_s_all", [])
        runs["official"] += theirs_p.get("seconds", [])
    for e in errors:
        console.print(f"[red]{e}[/red]")
    if not all(steps.values()) or not all(runs.values()):
        return 1
    pred_frames = eval_batch * horizon
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    row = {
        "time": stamp,
        **machine_info(),
        "rounds": args.rounds,
        "load_avg_1min_per_round": " ".join(f"{x:.2f}" for x in loads),
        "allocator": args.allocator,
        "off": " ".join(args.off),
    }
    table = Table(title=f"CW-VAE ({args.preset} preset) and the official code, {args.rounds} rounds, medians")
    for col in (
        "implementation",
        "training s/step",
        "training frames/s",
        "training GFLOP/s ¹",
        f"open loop {eval_batch} x {horizon}: frames/s",
    ):
        table.add_column(col, justify="right")
    for who in ("official", "ours"):
        step_s, pred_s = statistics.median(steps[who]), statistics.median(runs[who])
        row |= {
            f"{who}_train_step_s": step_s,
            f"{who}_train_frames_per_step": frames[who],
            f"{who}_train_frames_per_s": frames[who] / step_s,
            f"{who}_train_gflop_per_s": gflop / step_s,
            f"{who}_predict_frames_per_s": pred_frames / pred_s,
            f"{who}_train_steps_s": " ".join(f"{x:.3f}" for x in steps[who]),
            f"{who}_predict_runs_s": " ".join(f"{x:.3f}" for x in runs[who]),
        }
        label = "official TF code" if who == "official" else "cwbench"
        table.add_row(
            label,
            f"{step_s:.2f}",
            f"{frames[who] / step_s:,.0f}",
            f"{gflop / step_s:,.0f}",
            f"{pred_frames / pred_s:,.0f}",
        )
    row["train_gflop_per_step"] = gflop
    row["train_ratio"] = row["ours_train_frames_per_s"] / row["official_train_frames_per_s"]
    row["predict_ratio"] = row["ours_predict_frames_per_s"] / row["official_predict_frames_per_s"]
    table.add_row("ratio (cwbench / official)", "", f"{row['train_ratio']:.2f}x", "", f"{row['predict_ratio']:.2f}x")
    console.print(table)
    console.print(
        f"¹ {gflop:,.0f} GFLOP per step (torch's count of the model's products and convolutions, cwbench's speed "
        "features off: what both compute) / s per step"
    )
    path = Path(args.out) / "speed_official.csv"
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    write_csv(path, pd.concat([old, pd.DataFrame([row])], ignore_index=True))
    console.print(f"appended to {path}")
    return 0


def cell_format(quantity: str) -> str:
    """How the speed table shows a quantity: counts whole, ratios and losses to 4 digits, seconds to 2 places."""
    if quantity == "params":
        return "{:,.0f}"
    if quantity.startswith(("x_", "amp_", "ssim_", "loss_")):
        return "{:.4g}"
    return "{:,.2f}" if quantity.endswith("_step_s") else "{:,.1f}"


def print_profile(console, model: str, rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=f"{model}: one training step, the operators with the most time of their own")
    for col in ("operator", "s", "share", "calls", "input shapes"):
        table.add_column(col, justify="left" if col in ("operator", "input shapes") else "right")
    for r in rows:
        table.add_row(r["op"], f"{r['self_s']:.3f}", f"{r['share']:.1%}", str(r["calls"]), r["shapes"])
    console.print(table)


def main(argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from models import get_model_class, model_names

    args = parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)  # logs keep the whole table
    from models.fastpaths import check_names

    try:
        check_names(args.off)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        worker_env(args.allocator)  # jemalloc: is it installed?
    except AllocatorUnavailable as e:
        raise UsageError(f"--allocator {args.allocator}: {e}") from None
    if args.against_official:
        return against_official(args, console)
    known = model_names()
    models = args.model or [m for m in DEFAULT_MODELS if m in known]
    unknown = [m for m in models if m not in known and ":" not in m]
    if unknown:
        raise UsageError(f"unknown model(s) {unknown}; valid: {', '.join(known)}")
    base = {"device": args.device, "preset": args.preset, "warmup": args.warmup, "sets": args.sets, "tf32": args.tf32}
    base |= {"allocator": args.allocator, "off": args.off, "compile": args.compile}
    info = machine_info()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    rows = []
    for model in models:
        console.print(f"[bold]{model}[/bold]: training ({args.steps} steps) ...")
        row = {"time": stamp, **info, "device": args.device, "preset": args.preset, "model": model}
        row |= {"allocator": args.allocator, "off": " ".join(args.off), "compile": args.compile}
        spec = {**base, "kind": "train", "model": model, "steps": args.steps, "batch": args.batch}
        train = run_isolated(spec | {"profile": args.profile})
        if train.get("train_profile"):
            print_profile(console, model, train.pop("train_profile"))
        row |= {
            f"train_{k}" if k in ("peak_rss_mb", "cuda_max_alloc_mb", "error", "note") else k: v
            for k, v in train.items()
        }
        if "train_step_s_all" in row:  # one cell: the timed steps' seconds
            row["train_step_s_all"] = " ".join(f"{x:.3f}" for x in row["train_step_s_all"])
        for horizon in args.horizons:
            console.print(f"[bold]{model}[/bold]: open loop, horizon {horizon} ...")
            pred = run_isolated(
                {**base, "kind": "predict", "model": model, "horizon": horizon, "eval_batch": args.eval_batch}
            )
            row[f"predict_frames_per_s@{horizon}"] = pred.get("predict_frames_per_s")
            row[f"predict_peak_rss_mb@{horizon}"] = pred.get("peak_rss_mb")
            row[f"predict_cuda_max_alloc_mb@{horizon}"] = pred.get("cuda_max_alloc_mb")
            if "error" in pred:
                row[f"predict_error@{horizon}"] = pred["error"]
        if args.amp_check:
            console.print(f"[bold]{model}[/bold]: bf16 against fp32 ...")
            amp = run_isolated({**base, "kind": "amp", "model": model, "batch": args.batch})
            row |= {k: v for k, v in amp.items() if k.startswith(("loss_", "ssim_", "amp_"))}
            if "error" in amp:
                row["amp_error"] = amp["error"]
        ref = paper_rate(get_model_class(model).paper_label)
        row["paper_titan_xp_frames_per_s"] = ref
        if ref and row.get("train_frames_per_s"):
            row["x_paper_rate"] = row["train_frames_per_s"] / ref
        rows.append(row)
    if args.peak:
        console.print("the device's best float32 rates ...")
        peak = run_isolated({**base, "kind": "peak"})
        best = max(peak.get("peak_matmul_gflop_per_s", 0), peak.get("peak_conv3x3_gflop_per_s", 0))
        for row in rows:
            row |= {k: v for k, v in peak.items() if k.startswith("peak_")}
            if best and row.get("train_gflop_per_step"):
                row["train_shortest_step_s"] = row["train_gflop_per_step"] / best  # every product at the best rate
                row["x_peak"] = row["train_gflop_per_s"] / best
    if not args.no_metrics:
        console.print("metrics throughput ...")
        metrics = run_isolated({**base, "kind": "metrics"})
        for row in rows:
            row |= {k: v for k, v in metrics.items() if k not in ("peak_rss_mb", "cuda_max_alloc_mb")}
    frame = pd.DataFrame(rows)
    # one column per model, one row per quantity (reads well in a terminal of any width)
    table = Table(title=f"cwbench speed ({args.device}, preset {args.preset}, torch {info['torch']})")
    shown = [
        "params",
        "batch",
        "seq_len",
        "train_frames_per_s",
        "paper_titan_xp_frames_per_s",
        "x_paper_rate",
        "train_gflop_per_step",
        "train_gflop_per_s",
        "peak_matmul_gflop_per_s",
        "peak_conv3x3_gflop_per_s",
        "train_shortest_step_s",
        "x_peak",
        *[f"predict_frames_per_s@{h}" for h in args.horizons],
        "train_peak_rss_mb",
        *[f"predict_peak_rss_mb@{h}" for h in args.horizons],
        "train_cuda_max_alloc_mb",
        *[f"predict_cuda_max_alloc_mb@{h}" for h in args.horizons],
        "loss_fp32",
        "loss_bf16",
        "amp_loss_rel_diff",
        "ssim_fp32",
        "ssim_bf16",
        "amp_ssim_abs_diff",
    ]
    shown = [c for c in shown if c in frame and frame[c].notna().any()]
    table.add_column("quantity")
    for model in frame["model"]:
        table.add_column(model, justify="right")
    for c in shown:
        cells = []
        for v in frame[c]:
            cells.append("" if pd.isna(v) else cell_format(c).format(v))
        table.add_row(c, *cells)
    console.print(table)
    for c in [c for c in frame if c.endswith("_frames_per_s") and c.startswith(("ssim", "lpips", "i3d"))]:
        console.print(f"{c}: {frame[c].iloc[0]:,.1f}")
    errors = {c: frame[c].dropna().tolist() for c in frame if "error" in c}
    for c, v in errors.items():
        if v:
            console.print(f"[red]{c}: {v}[/red]")
    out = Path(args.out)
    path = out / "speed.csv"
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    write_csv(path, pd.concat([old, frame], ignore_index=True))
    console.print(f"appended to {path}")
    return 0
