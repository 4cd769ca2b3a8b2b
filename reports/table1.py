"""Table 1 and the mean rank (Figure 5), for our runs and for the paper's numbers.

Inputs are long frames (dataset, metric, entry, value, ...): `aggregate.over_seeds` for
our runs, `reference.paper_table1` for the paper. Bold and ranks come from
reports/ranking.py; naive references (0 parameters) are shown in italics and take no
part in either.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports import markdown, significance
from reports.plotting import new_figure, save
from reports.ranking import bold_mask, format_rank, mean_rank
from reports.reference import (
    dataset_order,
    dataset_title,
    higher_is_better,
    metric_order,
    metric_title,
    model_title,
    paper_mean_rank,
    paper_table1,
)
from rundir.atomic import write_csv, write_text

TABLE1_COLUMNS = [
    "source",
    "preset",
    "dataset",
    "metric",
    "entry",
    "value",
    "ci_low",
    "ci_high",
    "ci_over",
    "n_seeds",
    "reference",
    "bold",
    "notes",
    *significance.COLUMNS,  # not_significant, p_value, diff, diff_ci_low, diff_ci_high against the cell's best
]


def add_bold(long: pd.DataFrame) -> pd.DataFrame:
    """long (dataset, metric, entry, value, reference) -> + bold, per (dataset, metric) among non-references."""
    long = long.copy()
    long["bold"] = False
    for (_, metric), cell in long.groupby(["dataset", "metric"]):
        ranked = cell[~cell["reference"].astype(bool)]
        if len(ranked):
            long.loc[ranked.index, "bold"] = bold_mask(ranked["value"], higher_is_better(metric))
    return long


def ours_long(over_seeds: pd.DataFrame, preset: str) -> pd.DataFrame:
    frame = over_seeds[over_seeds["preset"] == preset].copy()
    frame["source"] = "ours"
    return add_bold(frame)


def paper_long() -> pd.DataFrame:
    frame = paper_table1().rename(columns={"model": "entry"})
    frame = frame.assign(
        source="paper",
        preset="",
        ci_low=float("nan"),
        ci_high=float("nan"),
        ci_over="",
        n_seeds=0,
        reference=False,
        notes="",
    )
    return add_bold(frame)


def table1_frame(over_seeds: pd.DataFrame | None, sig: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every preset of our runs, then the paper's rows: columns TABLE1_COLUMNS.

    sig: `significance.significance_frame` of the same runs (None: no cell marked)."""
    parts = []
    if over_seeds is not None and len(over_seeds):
        parts += [ours_long(over_seeds, p) for p in sorted(over_seeds["preset"].unique())]
    parts.append(paper_long())
    frame = significance.with_significance(pd.concat(parts, ignore_index=True), sig)[TABLE1_COLUMNS]
    return frame.sort_values(["source", "preset", "dataset", "metric", "entry"], kind="stable").reset_index(drop=True)


def entry_title(entry: str, source: str) -> str:
    name = model_title(entry)
    return f"{name} (paper)" if source == "paper" else name


def dataset_table(cell: pd.DataFrame, metrics: list[str], with_seeds: bool) -> str:
    """One dataset's rows (ours, then the paper's) as a markdown table."""
    header = ["model", *[metric_title(m) + (" ↑" if higher_is_better(m) else " ↓") for m in metrics]]
    if with_seeds:
        header.append("seeds")
    rows = []
    order = cell[["source", "reference", "entry"]].drop_duplicates()
    order = order.assign(s=order["source"].map({"ours": 0, "paper": 1})).sort_values(["s", "reference", "entry"])
    for _, key in order.iterrows():
        sub = cell[(cell["source"] == key["source"]) & (cell["entry"] == key["entry"])].set_index("metric")
        name = entry_title(key["entry"], key["source"])
        row = [f"_{name}_" if key["reference"] else name]
        for m in metrics:
            if m in sub.index:
                r = sub.loc[m]
                text = markdown.bold(markdown.number(r["value"], m, key["source"] == "paper"), bool(r["bold"]))
                row.append(f"{text} {significance.MARK}" if r["not_significant"] else text)
            else:
                row.append("–")
        if with_seeds:
            row.append(str(int(sub["n_seeds"].max())) if key["source"] == "ours" else "")
        rows.append(row)
    return markdown.table(header, rows)


def notes_lines(frame: pd.DataFrame) -> list[str]:
    """The evaluation's own notes (e.g. FVD on fewer videos than the paper), once each, with where they apply."""
    where: dict[str, list[str]] = {}
    for r in frame[frame["notes"].fillna("") != ""].itertuples():
        for note in str(r.notes).split("; "):
            where.setdefault(note, []).append(f"{model_title(r.entry)}/{r.dataset}/{metric_title(r.metric)}")
    if not where:
        return []
    lines = ["Notes from the evaluations:\n"]
    for note, places in where.items():
        shown = ", ".join(sorted(set(places))[:6]) + (" ..." if len(set(places)) > 6 else "")
        lines.append(f"- {note} ({shown})")
    return [*lines, ""]


def table1_markdown(frame: pd.DataFrame, aggregate: str = "best") -> str:
    """Markdown: one section per preset of our runs (paper rows as reference), or the paper alone."""
    lines = ["# Table 1", ""]
    lines.append(
        "Mean over all predicted frames of the test videos (best of the samples when a run drew several), "
        "mean over seeds. Per dataset and metric the best model and those within 5% of it are in **bold** "
        "(higher-better: >= 0.95 x best; lower-better: <= 1.05 x best). _Italic_ rows are naive references "
        "(nothing trained): never bold, never ranked. Rows marked (paper) are the paper's Table 1, bold among "
        "themselves.\n"
    )
    ours = frame[frame["source"] == "ours"]
    paper = frame[frame["source"] == "paper"]
    presets = sorted(ours["preset"].unique()) if len(ours) else []
    if not presets:
        presets = [None]
    for preset in presets:
        if preset is not None:
            lines.append(f"## Preset `{preset}`\n")
            sub = pd.concat([ours[ours["preset"] == preset], paper])
            datasets = dataset_order(ours[ours["preset"] == preset]["dataset"].unique())
        else:
            lines.append("## The paper's numbers\n")
            sub, datasets = paper, dataset_order(paper["dataset"].unique())
        for dataset in datasets:
            cell = sub[sub["dataset"] == dataset]
            metrics = metric_order(cell["metric"].unique())
            lines.append(f"### {dataset_title(dataset)} (`{dataset}`)\n")
            lines.append(dataset_table(cell, metrics, with_seeds=preset is not None))
        if preset is not None:
            lines.append(significance.legend(aggregate) + "\n")
            lines += notes_lines(ours[ours["preset"] == preset])
            lines += significance.notes_lines(ours[ours["preset"] == preset])
    return "\n".join(lines)


def write_table1(frame: pd.DataFrame, out: Path, aggregate: str = "best") -> list[Path]:
    write_csv(out / "table1.csv", frame)
    write_text(out / "table1.md", table1_markdown(frame, aggregate))
    return [out / "table1.csv", out / "table1.md"]


# ---------------------------------------------------------------- mean rank


def mean_rank_frame(table1: pd.DataFrame) -> pd.DataFrame:
    """Per source (ours:<preset>, paper): model, mean_rank, cells, printed; paper rows add the printed Fig 5."""
    parts = []
    ours = table1[(table1["source"] == "ours") & ~table1["reference"].astype(bool)]
    for preset in sorted(ours["preset"].unique()):
        sub = ours[ours["preset"] == preset].rename(columns={"entry": "model"})
        ranks = mean_rank(sub[["dataset", "metric", "model", "value"]], higher_is_better)
        parts.append(ranks.assign(source=f"ours:{preset}", total_cells=sub.groupby(["dataset", "metric"]).ngroups))
    paper = table1[table1["source"] == "paper"].rename(columns={"entry": "model"})
    ranks = mean_rank(paper[["dataset", "metric", "model", "value"]], higher_is_better)
    printed = paper_mean_rank().set_index("model")["mean_rank"]
    ranks = ranks.assign(
        source="paper",
        total_cells=paper.groupby(["dataset", "metric"]).ngroups,
        paper_printed=ranks["model"].map(printed),
    )
    parts.append(ranks)
    frame = pd.concat(parts, ignore_index=True)
    frame["printed"] = frame["mean_rank"].map(format_rank)
    if "paper_printed" not in frame:
        frame["paper_printed"] = float("nan")
    return frame[["source", "model", "mean_rank", "printed", "cells", "total_cells", "paper_printed"]]


def mean_rank_markdown(frame: pd.DataFrame) -> str:
    lines = ["# Mean rank over datasets x metrics", ""]
    lines.append(
        "As the paper computes it (Table 1 'Rank', Figure 5): in every (dataset, metric) cell the models are "
        "ranked with ties sharing the best rank (1, 1, 3, ...); a model's mean rank is the average of its ranks "
        "over the cells (lower is better). Naive references are not ranked. `cells` counts the cells a model "
        "was ranked in, out of `total`.\n"
    )
    for source in sorted(frame["source"].unique(), key=lambda s: (s == "paper", s)):
        sub = frame[frame["source"] == source]
        if source == "paper":
            lines.append("## The paper's Table 1, recomputed\n")
            header = ["model", "mean rank", "cells", "paper (Fig 5)"]
            rows = [
                [model_title(r.model), r.printed, f"{r.cells}/{r.total_cells}", f"{r.paper_printed:.2f}"]
                for r in sub.itertuples()
            ]
        else:
            lines.append(f"## Our runs, preset `{source.split(':', 1)[1]}`\n")
            header = ["model", "mean rank", "cells"]
            rows = [[model_title(r.model), r.printed, f"{r.cells}/{r.total_cells}"] for r in sub.itertuples()]
        lines.append(markdown.table(header, rows))
    return "\n".join(lines)


def mean_rank_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars per source, best at the top (like Figure 5)."""
    sources = sorted(frame["source"].unique(), key=lambda s: (s == "paper", s))
    fig, axes = new_figure(4.2 * len(sources), 0.5 + 0.45 * max(frame.groupby("source").size()), ncols=len(sources))
    for ax, source in zip(axes[0], sources):
        sub = frame[frame["source"] == source].sort_values("mean_rank", ascending=False)
        ax.barh([model_title(m) for m in sub["model"]], sub["mean_rank"], color="#4c72b0")
        for y, v in enumerate(sub["mean_rank"]):
            ax.text(v, y, f" {format_rank(v)}", va="center", fontsize=8)
        ax.set_xlim(0, max(5.0, float(sub["mean_rank"].max()) + 0.8))
        ax.set_xlabel("mean rank (lower is better)")
        ax.set_title("paper (Table 1)" if source == "paper" else f"ours ({source.split(':', 1)[1]})")
    return save(fig, path)


def write_mean_rank(table1: pd.DataFrame, out: Path) -> list[Path]:
    frame = mean_rank_frame(table1)
    write_csv(out / "mean_rank.csv", frame)
    write_text(out / "mean_rank.md", mean_rank_markdown(frame))
    return [out / "mean_rank.csv", out / "mean_rank.md", mean_rank_plot(frame, out / "mean_rank.png")]
