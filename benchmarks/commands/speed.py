"""`python bench.py speed`: training/prediction/metric throughput and peak memory per model.

    python bench.py speed [--model M ...] [--preset paper] [--device cuda] [--steps N]
                          [--horizons 100 1000] [--batch B] [--out results]

Prints a rich table and appends one row per model to <out>/speed.csv with the machine,
device, torch version and git commit.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import pandas as pd

from benchmarks.commands import UsageError, add_set_argument
from benchmarks.pipeline import machine_info
from benchmarks.speed import paper_rate, run_isolated
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
    p.add_argument("--out", default="results")
    return p


def main(argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from models import get_model_class, model_names

    args = parser().parse_args(argv)
    known = model_names()
    models = args.model or [m for m in DEFAULT_MODELS if m in known]
    unknown = [m for m in models if m not in known and ":" not in m]
    if unknown:
        raise UsageError(f"unknown model(s) {unknown}; valid: {', '.join(known)}")
    base = {"device": args.device, "preset": args.preset, "warmup": args.warmup, "sets": args.sets, "tf32": args.tf32}
    info = machine_info()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    rows = []
    console = Console(width=None if sys.stdout.isatty() else 160)  # logs keep the whole table
    for model in models:
        console.print(f"[bold]{model}[/bold]: training ({args.steps} steps) ...")
        row = {"time": stamp, **info, "device": args.device, "preset": args.preset, "model": model}
        train = run_isolated({**base, "kind": "train", "model": model, "steps": args.steps, "batch": args.batch})
        row |= {
            f"train_{k}" if k in ("peak_rss_mb", "cuda_max_alloc_mb", "error", "note") else k: v
            for k, v in train.items()
        }
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
            precise = c.startswith(("x_", "amp_", "ssim_", "loss_"))
            fmt = "{:,.0f}" if c == "params" else "{:.4g}" if precise else "{:,.1f}"
            cells.append("" if pd.isna(v) else fmt.format(v))
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
