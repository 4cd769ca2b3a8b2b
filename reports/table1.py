"""Table 1 and the mean rank (Figure 5), for our runs and for the paper's numbers.

Inputs are long frames (dataset, metric, entry, value, ...): `aggregate.over_seeds` for
our runs, `reference.paper_table1` for the paper. Bold and ranks come from
reports/ranking.py; naive references (nothing trained) are shown in italics and take no
part in either. Metric directions are the ones the run directories recorded.

The paper's rows follow each of our datasets whose run.json names it as one of the
paper's (`paper_dataset`). The paper's SSIM and PSNR come from the official evaluation
(unclipped predictions, skimage's float data range 2.0, PSNR per channel): where our runs
have the official-mode twins (`ssim_official`, `psnr_official`, written at the paper
preset), the paper's rows sit in those columns, beside the numbers computed the same way.
Official-mode twins are not ranked (they would count SSIM and PSNR twice).
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
    directions,
    higher_is_better,
    metric_order,
    metric_title,
    paper_mean_rank,
    paper_table1,
)
from reports.tuning import TUNED_LEGEND
from rundir.atomic import write_csv, write_text

TABLE1_COLUMNS = [
    "source",
    "preset",
    "dataset",
    "paper_dataset",
    "paper_data",
    "metric",
    "higher_is_better",
    "official_of",
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
OFFICIAL_NOTE = (
    "The paper's SSIM and PSNR come from the official CW-VAE evaluation (unclipped predictions, scikit-image's "
    "float data range 2.0 for SSIM, PSNR per channel): its rows sit in the columns of our official-mode numbers "
    "({columns}), computed the same way. Our SSIM and PSNR columns are the standard ones (predictions clipped "
    "to [0, 1], data range 1.0); the official-mode columns are not ranked."
)


def add_bold(long: pd.DataFrame) -> pd.DataFrame:
    """long (dataset, metric, entry, value, reference, higher_is_better) -> + bold, per (dataset, metric)
    among non-references."""
    long = long.copy()
    long["bold"] = False
    for _, cell in long.groupby(["dataset", "metric"]):
        ranked = cell[~cell["reference"].astype(bool)]
        if len(ranked):
            long.loc[ranked.index, "bold"] = bold_mask(ranked["value"], bool(ranked["higher_is_better"].iloc[0]))
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
        paper_dataset=frame["dataset"],
        paper_data=True,
        higher_is_better=frame["metric"].map(higher_is_better),
        official_of="",
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
    frame["official_of"] = frame["official_of"].fillna("")
    frame["paper_dataset"] = frame["paper_dataset"].fillna("")
    return frame.sort_values(["source", "preset", "dataset", "metric", "entry"], kind="stable").reset_index(drop=True)


def paper_rows_for(paper: pd.DataFrame, ours: pd.DataFrame) -> pd.DataFrame:
    """The paper's rows as they sit beside `ours` (one preset): the metric an official-mode twin
    of ours reproduces moves into that twin's column."""
    twins = {r.official_of: r.metric for r in ours.itertuples() if r.official_of}
    return paper.assign(metric=paper["metric"].map(lambda m: twins.get(m, m)))


def dataset_table(cell: pd.DataFrame, metrics: list[str], with_seeds: bool) -> str:
    """One dataset's rows (ours, then the paper's) as a markdown table."""
    recorded = directions(cell)
    header = ["model", *[metric_title(m) + (" ↑" if higher_is_better(m, recorded) else " ↓") for m in metrics]]
    if with_seeds:
        header.append("seeds")
    rows = []
    order = cell[["source", "reference", "entry"]].drop_duplicates()
    order = order.assign(s=order["source"].map({"ours": 0, "paper": 1})).sort_values(["s", "reference", "entry"])
    for _, key in order.iterrows():
        sub = cell[(cell["source"] == key["source"]) & (cell["entry"] == key["entry"])].set_index("metric")
        name = f"{key['entry']} (paper)" if key["source"] == "paper" else key["entry"]
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
    notes = [
        (r.notes, f"{r.entry}/{r.dataset}/{metric_title(r.metric)}") for r in frame.fillna({"notes": ""}).itertuples()
    ]
    return markdown.notes_list("Notes from the evaluations:", notes)


def table1_markdown(frame: pd.DataFrame, aggregate: str = "best", notes: dict[str, list[str]] | None = None) -> str:
    """Markdown: one section per preset of our runs (paper rows as reference), or the paper alone.
    notes: {preset: lines} to add under a preset's tables (e.g. a dataset that stood in for another)."""
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
    if ours["entry"].str.contains(r"\[tuned", regex=True).any():
        lines.append(TUNED_LEGEND + "\n")
    presets = sorted(ours["preset"].unique()) if len(ours) else []
    for preset in presets or [None]:
        if preset is None:
            lines.append("## The paper's numbers\n")
            for dataset in dataset_order(paper["dataset"].unique()):
                cell = paper[paper["dataset"] == dataset]
                lines.append(f"### {dataset}\n")
                lines.append(dataset_table(cell, metric_order(cell["metric"].unique()), with_seeds=False))
            continue
        lines.append(f"## Preset `{preset}`\n")
        mine = ours[ours["preset"] == preset]
        names = dict(zip(mine["dataset"], mine["paper_dataset"]))
        official = sorted({r.metric for r in mine.itertuples() if r.official_of})
        for dataset in dataset_order(mine["dataset"].unique(), names):
            ours_cell = mine[mine["dataset"] == dataset]
            paper_cell = (
                paper_rows_for(paper[paper["dataset"] == names.get(dataset)], ours_cell)
                if names.get(dataset)
                else paper.iloc[:0]
            )
            cell = pd.concat([ours_cell, paper_cell])
            lines.append(f"### {dataset_title(dataset, names.get(dataset))} (`{dataset}`)\n")
            lines.append(dataset_table(cell, metric_order(cell["metric"].unique()), with_seeds=True))
        lines.append(significance.legend(aggregate) + "\n")
        if official:
            lines.append(OFFICIAL_NOTE.format(columns=", ".join(metric_title(m) for m in official)) + "\n")
        lines += [f"- {n}" for n in (notes or {}).get(preset, [])] + ([""] if (notes or {}).get(preset) else [])
        lines += notes_lines(mine)
        lines += significance.notes_lines(mine)
    return "\n".join(lines)


def write_table1(
    frame: pd.DataFrame, out: Path, aggregate: str = "best", notes: dict[str, list[str]] | None = None
) -> list[Path]:
    write_csv(out / "table1.csv", frame)
    write_text(out / "table1.md", table1_markdown(frame, aggregate, notes))
    return [out / "table1.csv", out / "table1.md"]


# ---------------------------------------------------------------- mean rank


def counted_once(rows: pd.DataFrame) -> pd.DataFrame:
    """One preset's rows (dataset, paper_dataset, paper_data, model, ...) with each of the paper's
    datasets counted once: where several of our datasets carry one paper name (Moving MNIST generated,
    and its official archive), every model keeps the rows of one of them, the paper's own data
    (`paper_data` in run.json) where the model has it, else the other (by name). Adds `cell`, the
    dataset a cell is ranked under (the paper's name for a merged one), and `counted_on`, the dataset
    a model's merged cells took ('' where nothing was merged)."""
    rows = rows.assign(cell=rows["dataset"], counted_on="")
    keep = pd.Series(True, index=rows.index)
    for name, group in rows[rows["paper_dataset"] != ""].groupby("paper_dataset"):
        if group["dataset"].nunique() < 2:
            continue
        own = {d: bool(g["paper_data"].eq(True).any()) for d, g in group.groupby("dataset")}
        for _, mine in group.groupby("model"):
            chosen = min(mine["dataset"].unique(), key=lambda d: (not own[d], d))
            keep[mine.index] = mine["dataset"] == chosen
            rows.loc[mine.index, "counted_on"] = f"{name}: {chosen}"
        rows.loc[group.index, "cell"] = name
    return rows[keep]


def mean_rank_frame(table1: pd.DataFrame) -> pd.DataFrame:
    """Per source (ours:<preset>, paper): model, mean_rank, cells, printed, counted_on; paper rows add the
    printed Fig 5. Ours ranks every trained entry over its (dataset, metric) cells, official-mode twins
    aside, each of the paper's datasets counted once (`counted_once`)."""
    parts = []
    recorded = directions(table1)

    def hib(metric: str) -> bool:
        return higher_is_better(metric, recorded)

    ours = table1[(table1["source"] == "ours") & ~table1["reference"].astype(bool) & (table1["official_of"] == "")]
    for preset in sorted(ours["preset"].unique()):
        sub = counted_once(ours[ours["preset"] == preset].rename(columns={"entry": "model"}))
        ranks = mean_rank(sub[["cell", "metric", "model", "value"]].rename(columns={"cell": "dataset"}), hib)
        counted_on = (
            sub[sub["counted_on"] != ""].groupby("model")["counted_on"].agg(lambda s: "; ".join(sorted(set(s))))
        )
        parts.append(
            ranks.assign(
                source=f"ours:{preset}",
                total_cells=sub.groupby(["cell", "metric"]).ngroups,
                counted_on=ranks["model"].map(counted_on).fillna(""),
            )
        )
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
    frame["counted_on"] = frame["counted_on"].fillna("") if "counted_on" in frame else ""
    columns = ["source", "model", "mean_rank", "printed", "cells", "total_cells", "paper_printed", "counted_on"]
    return frame[columns]


COUNTED_ONCE_NOTE = (
    "Our runs hold one of the paper's datasets twice (e.g. Moving MNIST generated, and its official archive); "
    "it is counted once, as one dataset: each model is ranked on the paper's own data where it has runs on it, "
    "else on the other (`counted on` names which). Table 1 shows both. Models counted on different ones were "
    "not scored on the same test videos."
)


def mean_rank_markdown(frame: pd.DataFrame) -> str:
    lines = ["# Mean rank over datasets x metrics", ""]
    lines.append(
        "As the paper computes it (Table 1 'Rank', Figure 5): in every (dataset, metric) cell the models are "
        "ranked with ties sharing the best rank (1, 1, 3, ...); a model's mean rank is the average of its ranks "
        "over the cells (lower is better). Naive references are not ranked, nor are official-mode twins of a "
        "metric. `cells` counts the cells a model was ranked in, out of `total`.\n"
    )
    for source in sorted(frame["source"].unique(), key=lambda s: (s == "paper", s)):
        sub = frame[frame["source"] == source]
        if source == "paper":
            lines.append("## The paper's Table 1, recomputed\n")
            header = ["model", "mean rank", "cells", "paper (Fig 5)"]
            rows = [
                [r.model, r.printed, f"{r.cells}/{r.total_cells}", f"{r.paper_printed:.2f}"] for r in sub.itertuples()
            ]
        else:
            lines.append(f"## Our runs, preset `{source.split(':', 1)[1]}`\n")
            header = ["model", "mean rank", "cells"]
            rows = [[r.model, r.printed, f"{r.cells}/{r.total_cells}"] for r in sub.itertuples()]
            if (sub["counted_on"] != "").any():
                lines.append(COUNTED_ONCE_NOTE + "\n")
                header.append("counted on")
                rows = [[*row, r.counted_on] for row, r in zip(rows, sub.itertuples())]
        lines.append(markdown.table(header, rows))
    return "\n".join(lines)


def mean_rank_plot(frame: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars per source, best at the top (like Figure 5). Each bar says on how many
    (dataset, metric) cells the model was ranked; one ranked on fewer cells than the most any
    model of its source has is hatched and starred (its mean is over those cells only)."""
    sources = sorted(frame["source"].unique(), key=lambda s: (s == "paper", s))
    fig, axes = new_figure(4.8 * len(sources), 0.7 + 0.45 * max(frame.groupby("source").size()), ncols=len(sources))
    partial = False
    for ax, source in zip(axes[0], sources):
        sub = frame[frame["source"] == source].sort_values("mean_rank", ascending=False)
        most = int(sub["cells"].max())
        fewer = (sub["cells"] < most).to_numpy()
        partial |= bool(fewer.any())
        names = [f"{m} *" if f else m for m, f in zip(sub["model"], fewer)]
        bars = ax.barh(names, sub["mean_rank"], color=["#a6bddb" if f else "#4c72b0" for f in fewer])
        for bar, f in zip(bars, fewer):
            bar.set_hatch("//" if f else "")
        for y, (v, cells, total) in enumerate(zip(sub["mean_rank"], sub["cells"], sub["total_cells"])):
            ax.text(v, y, f" {format_rank(v)} ({int(cells)}/{int(total)} cells)", va="center", fontsize=8)
        ax.set_xlim(0, max(5.0, float(sub["mean_rank"].max()) + 2.0))
        ax.set_xlabel("mean rank (lower is better)")
        ax.set_ylabel("model")
        ax.set_title("paper (Table 1)" if source == "paper" else f"ours ({source.split(':', 1)[1]})")
    if partial:  # below the first panel's x label, whatever the figure's height
        note = "* hatched: ranked on fewer (dataset, metric) cells than the others; its mean rank is over those only"
        axes[0][0].annotate(note, (0, 0), xycoords="axes fraction", xytext=(0, -34), textcoords="offset points",
                            fontsize=7, color="0.3", va="top")  # fmt: skip
    return save(fig, path)


def write_mean_rank(table1: pd.DataFrame, out: Path) -> list[Path]:
    frame = mean_rank_frame(table1)
    write_csv(out / "mean_rank.csv", frame)
    write_text(out / "mean_rank.md", mean_rank_markdown(frame))
    return [out / "mean_rank.csv", out / "mean_rank.md", mean_rank_plot(frame, out / "mean_rank.png")]
