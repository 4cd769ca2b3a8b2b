"""The leaderboard: one row per run with its settings and its Table-1 numbers.

Reads run directories only: config.yaml, status.json and eval/summary.csv.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.atomic import write_csv, write_text
from benchmarks.runs import iter_runs, model_label, read_config, read_status

METRIC_ORDER = ["ssim", "psnr", "lpips", "fvd"]


def collect_runs(out: Path) -> pd.DataFrame:
    """One row per evaluated run: model, dataset, preset, seed, params, training time, metrics."""
    rows = []
    for directory in iter_runs(out):
        summary_path = directory / "eval" / "summary.csv"
        if not summary_path.exists():
            continue
        cfg, status = read_config(directory), read_status(directory)
        summary = pd.read_csv(summary_path)
        summary = summary[summary["aggregate"] == "best"] if "aggregate" in summary else summary
        row = {
            "model": model_label(cfg["model_name"]),
            "dataset": cfg["dataset"],
            "preset": cfg["preset"],
            "seed": cfg["seed"],
            "params": status.get("params", 0),
            "train_time_s": round(status.get("train_time_s", 0.0), 1),
            "steps": status.get("steps", 0),
            "run": str(directory.relative_to(out)),
        }
        for _, r in summary.iterrows():
            row[r["metric"]] = r["value"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    metrics = [m for m in METRIC_ORDER if m in frame] + sorted(
        c for c in frame if c not in METRIC_ORDER and c not in rows[0] and c != "run"
    )
    cols = ["model", "dataset", "preset", "seed", "params", "train_time_s", "steps", *metrics, "run"]
    return frame[[c for c in cols if c in frame]].sort_values(["dataset", "preset", "model", "seed"]).reset_index(drop=True)


def format_params(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{int(n):,}"


def to_markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_no evaluated runs yet_\n"
    shown = frame.drop(columns=["run"]).copy()
    shown["params"] = shown["params"].map(format_params)
    for m in METRIC_ORDER:
        if m in shown:
            shown[m] = shown[m].map(lambda v: "" if pd.isna(v) else f"{v:.3f}" if m != "fvd" else f"{v:.0f}")
    header = "| " + " | ".join(shown.columns) + " |"
    sep = "|" + "|".join("---" for _ in shown.columns) + "|"
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, sep, *lines]) + "\n"


def write_leaderboard(out: Path) -> pd.DataFrame:
    out = Path(out)
    frame = collect_runs(out)
    write_csv(out / "leaderboard.csv", frame)
    title = "# Leaderboard\n\nOne row per run; metrics are means over predicted frames (Table 1 convention).\n\n"
    write_text(out / "leaderboard.md", title + to_markdown(frame))
    return frame


def print_leaderboard(frame: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="cwbench leaderboard")
    cols = [c for c in frame.columns if c != "run"]
    for c in cols:
        table.add_column(c, justify="right" if c not in ("model", "dataset", "preset") else "left")
    for row in frame[cols].itertuples(index=False):
        cells = []
        for c, v in zip(cols, row):
            if c == "params":
                cells.append(format_params(v))
            elif isinstance(v, float):
                cells.append("" if pd.isna(v) else f"{v:.3f}")
            else:
                cells.append(str(v))
        table.add_row(*cells)
    Console().print(table)
