"""Results others can load: the leaderboard and Table 1 as one long table, JSON or CSV (docs/results_schema.md).

    results_rows(results)            one row per (table, source, dataset, preset, entry, metric)
    write_results(rows, path, fmt)   json: {"schema", "version", "aggregate", "rows"}; csv: the rows, a header line
    read_results(path)               either file back into the same rows, typed as COLUMNS says

Every row carries what it takes to check its number against the run directories that made
it: their paths under the results directory, their config hashes (each directory name's
suffix), the code commit and the dataset manifest hash each recorded (status.json), the
protocol (context, horizon, test videos, samples per video, the aggregate over samples, the
eval mode) and the metric's direction and units. The values are those of leaderboard.csv and
table1.csv (the same functions make them). Reads run directories only, through rundir/.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from rundir.atomic import write_text
from rundir.run import Run, collect, eval_key, results_root
from rundir.stats import metric_info

SCHEMA, VERSION = "cwbench-results", 1
FORMATS = ("json", "csv")
PAPER_CONTEXT = 36  # the paper's protocol (Section 4, "Evaluation"): the first 36 frames as context

# What a metric's values are measured in (an official-mode twin: as its standard metric).
UNITS = {
    "ssim": "unitless, in [-1, 1] (1: identical frames)",
    "psnr": "dB",
    "lpips": "unitless distance (AlexNet, LPIPS v0.1)",
    "fvd": "unitless distance (Frechet distance of I3D Kinetics-400 logits)",
}

# name -> (type, meaning), in the CSV's column order. docs/results_schema.md documents each (a test checks).
# Types: str, int, float, bool (JSON null / an empty CSV cell: none), strs / ints (JSON lists; CSV: ';'-joined).
COLUMNS: dict[str, tuple[str, str]] = {
    "table": (
        "str",
        "`leaderboard` (every finished run) or `table1` (the paper's comparison, as the report's Table 1)",
    ),
    "source": ("str", "`ours` (run directories) or `paper` (the paper's Table 1: a reference row)"),
    "dataset": ("str", "our dataset name (`mmnist`, ...); the paper's name on paper rows"),
    "paper_dataset": ("str", "the dataset's name in the paper (`Moving MNIST`, ...); empty if not one of its four"),
    "preset": ("str", "`smoke`, `quick` or `paper`; empty on paper rows"),
    "model": ("str", "the model's registry name (a model file's class name); the paper's name on paper rows"),
    "entry": ("str", "the row's name in the tables: the Table 1 label (`CW-VAE`), plus ` [variant]` if any"),
    "variant": ("str", "the config keys that differ from the preset's own config; empty for the preset's config"),
    "reference": ("bool", "a naive reference (nothing trained): never ranked, never bold"),
    "metric": ("str", "`ssim`, `psnr`, `lpips`, `fvd`, or an official-mode twin (`ssim_official`, `psnr_official`)"),
    "direction": ("str", "`higher` or `lower`: which is better"),
    "units": ("str", "what the value is measured in"),
    "official_of": ("str", "for an official-mode twin: the metric it computes the paper's way; else empty"),
    "value": ("float", "mean over seeds of each run's mean over predicted frames and test videos"),
    "ci_low": ("float", "lower end of the 95% interval: over seeds with two or more, else over test videos"),
    "ci_high": ("float", "upper end of the 95% interval"),
    "ci_over": ("str", "`seeds` or `videos`: what the interval is over; empty without one"),
    "n_seeds": ("int", "seeds averaged (0 on paper rows)"),
    "seeds": ("ints", "the seeds"),
    "aggregate": ("str", "`best` (per test video the best of its samples, as the paper) or `mean` (over samples)"),
    "context": ("int", "context frames the model saw before it predicted alone"),
    "horizon": ("int", "frames predicted open loop after the context"),
    "n_test_videos": ("int", "test videos the value is over (FVD: the videos it used)"),
    "n_samples": ("int", "samples drawn per test video"),
    "eval_mode": ("str", "`standard` or `official` (the official CW-VAE evaluation)"),
    "bold": ("bool", "`table1`: the cell's best or within 5% of it (the paper's rule)"),
    "not_significant": ("bool", "`table1`: not significantly different from the cell's best (paired over test videos)"),
    "p_value": ("float", "`table1`: p-value of that paired test"),
    "params": ("int", "trainable parameters (largest over the seeds)"),
    "train_time_s": ("float", "training time in seconds, mean over the seeds"),
    "steps": ("int", "optimizer steps trained (largest over the seeds)"),
    "runs": ("strs", "the run directories, relative to the results directory"),
    "config_hashes": ("strs", "each run's config hash (its eval key): the suffix of its directory name"),
    "code_commits": ("strs", "the git commit of the code that made each run (`-dirty`: with uncommitted changes)"),
    "data_manifest_sha256": ("strs", "sha256 of the dataset manifest's splits (canonical JSON) each run read"),
    "notes": ("str", "the evaluation's own notes (e.g. FVD on fewer videos than the paper)"),
}
LIST_SEPARATOR = ";"  # list columns in CSV


def units_of(metric: str) -> str:
    return UNITS.get(metric_info(metric).official_of or metric, "")


def commit_of(run: Run) -> str:
    commit = str(run.status.get("git_commit") or "")
    return f"{commit}-dirty" if commit and run.status.get("git_dirty") else commit


def provenance(members: list[Run]) -> dict:
    """What one leaderboard row's runs (an entry's seeds) share, and what each of them recorded."""
    from reports.leaderboard import group_columns

    first = members[0]
    ev = first.cfg.get("eval") or {}
    return {
        **group_columns(members),
        "context": int(first.info.get("context") or ev.get("context") or 0),
        "horizon": int(first.info.get("horizon") or 0),
        "n_samples": int(ev.get("n_samples", 1)),
        "eval_mode": str(ev.get("mode", "standard")),
        "seeds": [r.seed for r in members],
        "runs": [r.rel for r in members],
        "config_hashes": [eval_key(r.cfg) for r in members],
        "code_commits": [commit_of(r) for r in members],
        "data_manifest_sha256": [str(r.status.get("data_manifest_sha256") or "") for r in members],
    }


def results_rows(
    results: Path, aggregate: str = "best", variants: bool = False, all_models: bool = False
) -> list[dict]:
    """The leaderboard (every finished run), then Table 1 as `bench.py report` makes it (the same
    `variants`, `all_models` and `aggregate`); rows of COLUMNS."""
    from reports.aggregate import over_seeds, run_rows
    from reports.build import table1_of

    runs = collect(results_root(Path(results)))
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.finished:
            groups.setdefault((run.dataset, run.preset, run.entry), []).append(run)
    known = {key: provenance(sorted(members, key=lambda r: (r.seed, r.rel))) for key, members in groups.items()}
    every = run_rows(runs, aggregate)
    videos = every.groupby(["dataset", "preset", "entry", "metric"])["n_videos"].max().to_dict()

    rows = [our_row("leaderboard", r, known, videos, aggregate) for r in records(over_seeds(every))]
    for r in records(table1_of(runs, aggregate, variants, all_models)[1]):
        rows.append(our_row("table1", r, known, videos, aggregate) if r["source"] == "ours" else paper_row(r))
    return [typed(row) for row in rows]


def records(frame) -> list[dict]:
    return frame.to_dict("records") if frame is not None and len(frame) else []


def our_row(table: str, r: dict, known: dict, videos: dict, aggregate: str) -> dict:
    key = (r["dataset"], r["preset"], r["entry"])
    return {
        **{k: v for k, v in r.items() if k != "seeds"},  # over_seeds' "0 1": the provenance's list instead
        **known[key],
        "table": table,
        "source": "ours",
        "direction": "higher" if r["higher_is_better"] else "lower",
        "units": units_of(r["metric"]),
        "aggregate": aggregate,
        "n_test_videos": videos.get((*key, r["metric"])),
    }


def paper_row(r: dict) -> dict:
    return {
        **r,
        "table": "table1",
        "model": r["entry"],
        "direction": "higher" if r["higher_is_better"] else "lower",
        "units": units_of(r["metric"]),
        "context": PAPER_CONTEXT,
    }


def typed(row: dict) -> dict:
    """The row as COLUMNS types it: NaN and missing are None (lists: [], strings: '')."""
    out = {}
    for name, (kind, _) in COLUMNS.items():
        value = row.get(name)
        if hasattr(value, "item") and not isinstance(value, (list, tuple)):
            value = value.item()  # numpy scalars
        if value is None or (isinstance(value, float) and math.isnan(value)):
            value = {"str": "", "strs": [], "ints": []}.get(kind)
        elif kind in ("strs", "ints"):
            value = [str(v) if kind == "strs" else int(v) for v in value]
        else:
            value = {"str": str, "int": int, "float": float, "bool": bool}[kind](value)
        out[name] = value
    return out


def write_results(rows: list[dict], path: Path, fmt: str, aggregate: str = "best") -> Path:
    """`rows` into `path` as json or csv (atomically)."""
    path = Path(path)
    if fmt == "json":
        doc = {"schema": SCHEMA, "version": VERSION, "aggregate": aggregate, "rows": rows}
        write_text(path, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([to_cell(row[name], kind) for name, (kind, _) in COLUMNS.items()])
        write_text(path, buf.getvalue())
    else:
        raise ValueError(f"results format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return path


def to_cell(value, kind: str) -> str:
    if value is None:
        return ""
    if kind in ("strs", "ints"):
        return LIST_SEPARATOR.join(str(v) for v in value)
    if kind == "bool":
        return "true" if value else "false"
    return repr(value) if kind == "float" else str(value)  # repr: the shortest text that reads back exactly


def from_cell(text: str, kind: str):
    if kind in ("strs", "ints"):
        items = text.split(LIST_SEPARATOR) if text else []
        return [int(v) for v in items] if kind == "ints" else items
    if kind == "str":
        return text
    if text == "":
        return None
    if kind == "bool":
        return text == "true"
    return int(text) if kind == "int" else float(text)


def read_results(path: Path) -> list[dict]:
    """The rows of a results file (.json or .csv) with the types COLUMNS gives them."""
    path = Path(path)
    if path.suffix == ".json":
        doc = json.loads(path.read_text())
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"{path} is not a {SCHEMA} file (its schema: {doc.get('schema')!r})")
        return doc["rows"]
    with path.open(newline="") as f:
        return [{name: from_cell(row[name], kind) for name, (kind, _) in COLUMNS.items()} for row in csv.DictReader(f)]
