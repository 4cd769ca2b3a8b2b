"""The whole report: a deterministic function of the run directories under <results>/runs.

    write_report(results, out)   table1, mean_rank, curves, samples, training, leaderboard,
                                 studies, index.md (links to everything) and index.html (the
                                 same page, self-contained: every table and figure inline) into `out`
    write_paper_report(out)      table1 and mean_rank of the paper's own numbers

Nothing here trains, loads a model or reads a dataset, and nothing imports the harness
or torch: runs are read through rundir/ only (tests/test_architecture.py checks it). The
same run directories give the same files (byte for byte: no dates, sorted everywhere,
PNGs without metadata).

Table 1, the mean rank, the curves and the sample strips show the runs of the paper's
comparison (a Table 1 label in run.json) and the naive references, each at its preset's
own config; `variants=True` adds runs whose config differs from their preset's,
`all_models=True` models outside the paper's comparison (your own, `rssm_planet`). The
leaderboard and the studies show every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reports import markdown
from reports.aggregate import curves_over_seeds, over_seeds, run_rows
from reports.curves import write_curves
from reports.html import write_html
from reports.leaderboard import leaderboard_frame, write_leaderboard_files
from reports.reference import dataset_order, dataset_title, paper_datasets, paper_models
from reports.samples import write_strip
from reports.significance import significance_frame
from reports.studies import write_studies
from reports.table1 import mean_rank_frame, table1_frame, write_mean_rank, write_table1
from reports.training import write_training
from reports.tuning import TUNED_LEGEND, tuning_lines
from rundir.atomic import write_text
from rundir.run import Run, Skipped, collect, read_samples, read_suites, results_root

RELABEL = "python bench.py relabel --out DIR"


@dataclass
class Report:
    out: Path
    files: list[Path] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # run directories left out: a file is damaged
    mean_rank: object = None  # the mean_rank frame (pandas)


def colors_for(runs: list[Run]) -> dict[str, int]:
    """A stable colour index per entry: the paper's models first, in the paper's order."""
    order = paper_models()
    rank = {r.entry: order.index(r.paper_label) if r.paper_label in order else len(order) for r in runs}
    return {e: i for i, e in enumerate(sorted(rank, key=lambda e: (rank[e], e)))}


def in_table1(run: Run, variants: bool = False, all_models: bool = False) -> bool:
    """Whether a run is one of Table 1's (see the module docstring); runs without run.json never are."""
    if run.legacy:
        return False
    return (variants or not run.variant) and (all_models or bool(run.paper_label) or run.is_reference)


def stand_in_notes(results: Path) -> dict[str, list[str]]:
    """{preset: notes} of the datasets that stood in for others in a suite (its manifest)."""
    notes: dict[str, list[str]] = {}
    for suite in read_suites(results):
        for item in suite.get("stand_ins", []):
            notes.setdefault(suite.get("preset", ""), []).append(f"suite `{suite['suite']}`: {item['note']}")
    return {p: list(dict.fromkeys(n)) for p, n in notes.items()}


def paper_names(runs: list[Run]) -> dict[str, str]:
    """{dataset: its name in the paper} as the runs recorded it."""
    return {r.dataset: r.paper_dataset for r in runs if r.paper_dataset}


def write_samples(runs: list[Run], out: Path) -> list[Path]:
    """Per (preset, dataset): ground truth and each model's first sample of test video 0, PNG and GIF."""
    files = []
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if run.finished and (run.directory / "samples" / "samples.npz").exists():
            groups.setdefault((run.preset, run.dataset), []).append(run)
    for (preset, dataset), members in sorted(groups.items()):
        first_by_entry: dict[str, Run] = {}
        for run in sorted(members, key=lambda r: (r.entry, r.seed)):
            first_by_entry.setdefault(run.entry, run)
        gt, context, rows = None, None, []
        for entry, run in sorted(first_by_entry.items(), key=lambda kv: (kv[1].is_reference, kv[0])):
            s = read_samples(run.directory)
            if gt is None:
                gt, context = s["gt"][0], s["context"]
            if s["context"] != context or s["gt"][0].shape != gt.shape or not np.array_equal(s["gt"][0], gt):
                continue  # another test set (a variant with other data): not comparable in one strip
            rows.append((f"{entry} (s{run.seed})", s["pred"][0, 0]))
        if rows:
            name = dataset_title(dataset, members[0].paper_dataset)
            title = f"{name}, preset {preset}: test video 1, open loop after {context} frames"
            files += write_strip(gt, rows, context, title, out / "samples" / preset / dataset)
    return files


def missing_section(runs: list[Run], results: Path, skipped: list[Skipped] = ()) -> str:
    """What the paper has and these runs lack; what suites skipped and why; runs left out as damaged."""
    lines = [f"- run `{s.rel}` left out: {s.reason}" for s in skipped]
    for suite in read_suites(results):
        for item in suite.get("missing_datasets", []):
            lines.append(
                f"- suite `{suite['suite']}`: dataset `{item['dataset']}` not prepared; run `{item['command']}`"
            )
        for item in suite.get("missing_models", []):
            lines.append(f"- suite `{suite['suite']}`: model `{item['model']}` not available ({item['reason']})")
        for item in suite.get("failed", []):
            lines.append(f"- suite `{suite['suite']}`: run `{item['run']}` failed: {item['error']}")
        for item in suite.get("stand_ins", []):
            lines.append(f"- suite `{suite['suite']}`: {item['note']}")
    have_datasets = {r.paper_dataset for r in runs if r.finished}
    have_models = {r.paper_label for r in runs if r.finished}
    no_data = [d for d in paper_datasets() if d not in have_datasets]
    no_model = [m for m in paper_models() if m not in have_models]
    if no_data:
        lines.append("- the paper's datasets without a finished run: " + ", ".join(no_data))
    if no_model:
        lines.append("- the paper's models without a finished run: " + ", ".join(no_model))
    legacy = [r for r in runs if r.legacy and r.finished]
    if legacy:
        lines.append(
            f"- {len(legacy)} run(s) written before run directories recorded their variant and Table 1 label "
            "(run.json): shown in the leaderboard as `[?]`, left out of Table 1, the mean rank, the curves and "
            f"the strips; `{RELABEL}` records it (DIR: this results directory; nothing is retrained): "
            + ", ".join(f"`{r.rel}`" for r in legacy[:10])
            + (" ..." if len(legacy) > 10 else "")
        )
    unfinished = [r for r in runs if not r.finished]
    if unfinished:
        lines.append(
            f"- {len(unfinished)} run(s) not finished (re-run the command or suite to resume): "
            + ", ".join(f"`{r.rel}`" for r in unfinished[:10])
            + (" ..." if len(unfinished) > 10 else "")
        )
    return "\n".join(dict.fromkeys(lines)) + "\n" if lines else "_nothing missing_\n"


def link(path: Path, out: Path, text: str | None = None) -> str:
    rel = path.relative_to(out).as_posix()
    return f"[{text or rel}]({rel})"


def write_index(report: Report, results: Path, studies: dict[str, list[Path]]) -> Path:
    out, files, runs = report.out, report.files, report.runs
    finished = [r for r in runs if r.finished]
    lines = ["# cwbench report", ""]
    lines.append(
        f"{len(finished)} finished run(s) of {len(runs)} under `runs/`; presets: "
        + (", ".join(f"`{p}`" for p in sorted({r.preset for r in finished})) or "none")
        + "; datasets: "
        + (", ".join(f"`{d}`" for d in dataset_order({r.dataset for r in finished}, paper_names(finished))) or "none")
        + "."
    )
    lines.append("Written by `python bench.py report`; every file is a function of the run directories only.\n")
    lines.append("## Tables\n")
    for name, text in [
        ("table1.md", "Table 1: per dataset and metric, best and within 5% in bold, the paper's rows as reference"),
        ("mean_rank.md", "Mean rank over datasets x metrics (Figure 5)"),
        ("leaderboard.md", "Leaderboard: per (model, dataset, preset) over seeds, params, time"),
    ]:
        if (out / name).exists():
            lines.append(f"- [{name}]({name}): {text}")
    if (out / "mean_rank.png").exists():
        lines.append("\n![mean rank](mean_rank.png)\n")
    if report.mean_rank is not None and len(report.mean_rank):
        mr = report.mean_rank
        lines.append(
            markdown.table(
                ["source", "model", "mean rank", "cells"],
                [[r.source, r.model, r.printed, f"{r.cells}/{r.total_cells}"] for r in mr.itertuples()],
            )
        )
    sections = [
        ("Per-horizon curves", "curves/", ".png"),
        ("Sample strips", "samples/", ".png"),
        ("Sample videos", "samples/", ".gif"),
        ("Training curves", "training/", ".png"),
    ]
    for title, prefix, suffix in sections:
        chosen = [f for f in files if f.relative_to(out).as_posix().startswith(prefix) and f.suffix == suffix]
        if chosen:
            lines.append(f"\n## {title}\n")
            lines += [f"- {link(f, out)}" for f in chosen]
    if any(studies.values()):
        lines.append("\n## Studies\n")
        for name, paths in studies.items():
            shown = [p for p in paths if p.suffix in (".md", ".png", ".gif")]
            if shown:
                lines.append(
                    f"- {name}: " + ", ".join(link(p, out, p.relative_to(out / "studies").as_posix()) for p in shown)
                )
    tuning = tuning_lines(finished)
    if any(r.tuned for r in finished):
        lines.append("\n## Tuning\n")
        lines += [TUNED_LEGEND, "", *tuning]
    lines.append("\n## Missing\n")
    lines.append(missing_section(runs, results, report.skipped))
    path = out / "index.md"
    write_text(path, "\n".join(lines))
    return path


def table1_of(runs: list[Run], aggregate: str = "best", variants: bool = False, all_models: bool = False):
    """(the runs of Table 1, its frame: reports.table1.TABLE1_COLUMNS, the paper's rows included)."""
    main = [r for r in runs if in_table1(r, variants, all_models)]
    rows = run_rows(main, aggregate)
    seeds = over_seeds(rows) if len(rows) else None
    return main, table1_frame(seeds, significance_frame(main, seeds, aggregate))


def write_report(
    results: Path, out: Path | None = None, variants: bool = False, aggregate: str = "best", all_models: bool = False
) -> Report:
    """Every report file for the runs under <results>/runs into `out` (default <results>/report)."""
    results = results_root(Path(results))
    out = Path(out) if out is not None else results / "report"
    skipped: list[Skipped] = []
    runs = collect(results, skipped)
    report = Report(out=out, runs=runs, skipped=skipped)
    colors = colors_for(runs)
    main, table1 = table1_of(runs, aggregate, variants, all_models)  # Table 1, ranks, curves, strips
    report.files += write_table1(table1, out, aggregate, stand_in_notes(results))
    report.files += write_mean_rank(table1, out)
    report.mean_rank = mean_rank_frame(table1)
    report.files += write_curves(curves_over_seeds(main, aggregate), out, colors, paper_names(runs))
    report.files += write_samples(main, out)
    report.files += write_training(main, out, colors)
    report.files += write_leaderboard_files(leaderboard_frame(runs), out)
    studies = write_studies(runs, out, colors)
    for paths in studies.values():
        report.files += paths
    report.files.append(write_index(report, results, studies))
    report.files.append(write_html(out))  # index.html: index.md with every table and figure inline
    return report


def write_paper_report(out: Path) -> Report:
    """table1.md/.csv and mean_rank.csv/.md/.png of the paper's numbers alone."""
    out = Path(out)
    report = Report(out=out)
    table1 = table1_frame(None)
    report.files += write_table1(table1, out)
    report.files += write_mean_rank(table1, out)
    report.mean_rank = mean_rank_frame(table1)
    return report
