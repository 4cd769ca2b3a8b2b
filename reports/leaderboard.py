"""The leaderboard: one row per (model, dataset, preset) -- and per variant -- over its seeds.

Each metric is the mean over seeds of the run's mean over predicted frames (Table 1
convention, best of the samples) with a 95% interval: a t-interval over seeds when
there are two or more, else the single run's interval over test videos (marked †).
Parameters, training time (mean over seeds) and steps come from status.json.
Reads run directories only. `bench.py` calls `write_leaderboard` after every run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports import markdown
from reports.aggregate import over_seeds, run_rows
from reports.reference import dataset_title, directions, higher_is_better, metric_order, metric_title
from rundir.atomic import write_csv, write_text
from rundir.run import collect

KEY = ["dataset", "preset", "entry"]


def format_params(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{int(n):,}"


def format_duration(seconds: float) -> str:
    if not seconds or pd.isna(seconds):
        return "0 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def group_columns(members) -> dict:
    """params (max), train_time_s (mean over seeds), steps (max) of the runs of one leaderboard row."""
    return dict(
        params=max(r.params for r in members),
        train_time_s=round(sum(float(r.status.get("train_time_s", 0.0)) for r in members) / len(members), 1),
        steps=max(int(r.status.get("steps", 0)) for r in members),
    )


def leaderboard_frame(runs) -> pd.DataFrame:
    """One row per (dataset, preset, entry) of finished runs, best first by the first metric."""
    rows = run_rows(runs)
    if rows.empty:
        return pd.DataFrame()
    agg = over_seeds(rows)
    metrics = metric_order(agg["metric"].unique())
    info = {}
    for run in runs:
        if run.finished:
            info.setdefault((run.dataset, run.preset, run.entry), []).append(run)
    out = []
    for key, g in agg.groupby(KEY, sort=True):
        members = info[key]
        row = dict(zip(KEY, key))
        row.update(
            reference=bool(g["reference"].iloc[0]),
            model=g["model"].iloc[0],
            variant=g["variant"].iloc[0],
            seeds=int(g["n_seeds"].max()),
            **group_columns(members),
        )
        for m in metrics:
            sub = g[g["metric"] == m]
            if len(sub):
                r = sub.iloc[0]
                row.update({m: r["value"], f"{m}_ci_low": r["ci_low"], f"{m}_ci_high": r["ci_high"]})
        row["ci_over"] = "seeds" if row["seeds"] >= 2 else "videos"
        row["runs"] = ";".join(r.rel for r in members)
        out.append(row)
    frame = pd.DataFrame(out)
    first = metrics[0]
    recorded = directions(agg)
    frame["_score"] = frame[first] * (-1 if higher_is_better(first, recorded) else 1)
    frame = frame.sort_values(["dataset", "preset", "_score", "entry"], na_position="last").drop(columns="_score")
    cols = ["model", "variant", "dataset", "preset", "reference", "seeds", "params", "train_time_s", "steps"]
    cols += [c for m in metrics for c in (m, f"{m}_ci_low", f"{m}_ci_high") if c in frame]
    frame = frame[cols + ["ci_over", "runs", "entry"]].reset_index(drop=True)
    # what the markdown needs beside the CSV's columns: directions and the datasets' names, as recorded
    frame.attrs = {"higher_is_better": recorded, "paper_dataset": dict(zip(agg["dataset"], agg["paper_dataset"]))}
    return frame


def metric_cell(row, m: str) -> str:
    value = row.get(m)
    if value is None or pd.isna(value):
        return ""
    text = markdown.number(value, m)
    half = (row[f"{m}_ci_high"] - row[f"{m}_ci_low"]) / 2
    if pd.notna(half) and half > 0:
        text += f" ± {markdown.number(half, m)}"
        if row["ci_over"] == "videos":
            text += "†"
    return text


def to_markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_no evaluated runs yet_\n"
    metrics = [c for c in metric_order([c for c in frame.columns if f"{c}_ci_low" in frame.columns])]
    lines = []
    for (dataset, preset), g in frame.groupby(["dataset", "preset"], sort=True):
        name = dataset_title(dataset, frame.attrs.get("paper_dataset", {}).get(dataset))
        lines.append(f"## {name} (`{dataset}`), preset `{preset}`\n")
        header = [
            "model",
            "seeds",
            "params",
            "train time",
            "steps",
            *[
                metric_title(m) + (" ↑" if higher_is_better(m, frame.attrs.get("higher_is_better")) else " ↓")
                for m in metrics
            ],
        ]
        rows = []
        for _, r in g.iterrows():
            name = r["model"] + (f" [{r['variant']}]" if r["variant"] else "")
            name = f"_{name}_" if r["reference"] else name  # a naive reference: nothing trained
            rows.append(
                [
                    name,
                    r["seeds"],
                    format_params(r["params"]),
                    format_duration(r["train_time_s"]),
                    r["steps"],
                    *[metric_cell(r, m) for m in metrics],
                ]
            )
        lines.append(markdown.table(header, rows))
    return "\n".join(lines)


def write_leaderboard(out: Path, runs_dir: Path | None = None) -> pd.DataFrame:
    """Write <out>/leaderboard.md and .csv for the runs under <runs_dir or out>/runs; returns the frame."""
    out = Path(out)
    frame = leaderboard_frame(collect(runs_dir if runs_dir is not None else out))
    write_leaderboard_files(frame, out)
    return frame


def write_leaderboard_files(frame: pd.DataFrame, out: Path) -> list[Path]:
    """<out>/leaderboard.csv and <out>/leaderboard.md of a `leaderboard_frame`."""
    write_csv(out / "leaderboard.csv", frame.drop(columns=["entry"], errors="ignore"))
    title = (
        "# Leaderboard\n\nOne row per (model, dataset, preset) and per variant (the config keys that differ "
        "from the preset's). Metrics: mean over predicted frames (best of the samples), mean over seeds "
        "± half of a 95% interval over seeds; † marks a single seed, whose interval is over test videos. "
        "Training time: mean over seeds.\n\n"
    )
    write_text(out / "leaderboard.md", title + to_markdown(frame))
    return [out / "leaderboard.csv", out / "leaderboard.md"]


def print_leaderboard(frame: pd.DataFrame) -> None:
    """The leaderboard as a rich table on the terminal (the variant column only when some run has one).
    Nothing is cut: every column keeps its longest cell's width, and the table is printed as wide
    as it needs (wider than a narrow terminal or a log's 80 columns)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if frame.empty:
        console.print("no evaluated runs yet")
        return
    table = Table(title="cwbench leaderboard")
    metrics = metric_order([c for c in frame.columns if f"{c}_ci_low" in frame.columns])
    show_variant = bool((frame["variant"] != "").any())
    cols = ["model", *(["variant"] if show_variant else []), "dataset", "preset", "seeds", "params", "train time"]
    rows = []
    for _, r in frame.iterrows():
        cells = [r["model"], *([r["variant"]] if show_variant else []), r["dataset"], r["preset"], str(r["seeds"])]
        cells += [format_params(r["params"]), format_duration(r["train_time_s"])]
        rows.append([*cells, *[metric_cell(r, m) for m in metrics]])
    for i, c in enumerate([*cols, *metrics]):  # every column as wide as its longest cell: nothing cut
        left = c in ("model", "variant", "dataset", "preset")
        width = max(len(c), *(len(row[i]) for row in rows))
        table.add_column(c, justify="left" if left else "right", no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    needed = console.measure(table, options=console.options.update_width(10_000)).minimum  # unclamped
    if needed > console.width:
        console = Console(width=needed)
    console.print(table)
