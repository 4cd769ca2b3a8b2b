"""`python bench.py params`: trainable parameters of every registered model at the paper preset.

    python bench.py params                 a table: model, variant, dataset, params, paper (Table D.2)
    python bench.py params --format csv    the same as CSV on stdout
    python bench.py params --model svg     only some models (repeatable)

Variants follow the paper's Table D.2: `small` is the Moving MNIST config and `large` the
MineRL config, except SVG, whose large version is its VGG-64 model (the KTH config), and
VTA, which has no large version. A dataset that is not registered gives a row with a note.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass

from benchmarks.commands import UsageError

SMALL_DATASET = "mmnist"
LARGE_DATASET = "minerl"
LARGE_OVERRIDES = {"svg": "kth", "vta": None}  # Table D.2: SVG large = VGG-64 (KTH); no large VTA


@dataclass
class Row:
    model: str
    variant: str
    dataset: str
    params: int | None
    paper: str = ""
    note: str = ""

    @property
    def matches(self) -> bool | None:
        """Whether the count rounds to the paper's (e.g. 12,474,123 -> '12M'); None without a paper value."""
        if not self.paper or self.params is None:
            return None
        return paper_rounding(self.params) == self.paper


def paper_rounding(n: int) -> str:
    """The paper's format: millions rounded to the nearest integer, '12M'."""
    return f"{round(n / 1e6)}M"


def variants(model: str) -> list[tuple[str, str]]:
    large = LARGE_OVERRIDES.get(model, LARGE_DATASET)
    return [("small", SMALL_DATASET)] + ([("large", large)] if large else [])


def paper_counts(models: list[str]) -> dict[tuple[str, str], str]:
    """(registry name, variant) -> Table D.2's value (reports/paper/table_d2_params.csv), for the
    models whose Table 1 label (`paper_label`) is one of the paper's."""
    from models import get_model_class
    from reports.reference import paper_params

    table = paper_params()
    labels = {m: get_model_class(m).paper_label for m in models}
    return {(m, v): table[(label, v)] for m, label in labels.items() for v in ("small", "large") if (label, v) in table}


def count(model: str, dataset: str) -> tuple[int | None, str]:
    """Trainable parameters of `model` built for `dataset` at the paper preset, or (None, why not)."""
    from benchmarks.config import ConfigError, resolve_config

    try:
        cfg = resolve_config(model, dataset, "paper")
    except ConfigError as e:
        return None, str(e).split(";")[0]  # e.g. "unknown dataset 'minerl'" while it is not registered
    return cfg.build_model().num_params(), ""


def collect_rows(models: list[str]) -> list[Row]:
    paper = paper_counts(models)
    rows = []
    for model in models:
        for variant, dataset in variants(model):
            n, note = count(model, dataset)
            rows.append(Row(model, variant, dataset, n, paper.get((model, variant), ""), note))
    return rows


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Trainable parameters at the paper preset (paper: Table D.2)")
    for name in ("model", "variant", "dataset", "params", "millions", "paper", "check"):
        table.add_column(name, justify="right" if name in ("params", "millions", "paper") else "left", no_wrap=True)
    for r in rows:
        shown = f"{r.params:,}" if r.params is not None else "-"
        millions = f"{r.params / 1e6:.2f}M" if r.params is not None else "-"
        mark = {True: "rounds to the paper's", False: "DIFFERS from the paper's", None: ""}[r.matches]
        table.add_row(r.model, r.variant, r.dataset, shown, millions, r.paper, r.note or mark)
    Console(width=max(Console().width, 110)).print(table)


def write_csv(rows: list[Row], out) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "variant", "dataset", "params", "paper", "note"])
    for r in rows:
        writer.writerow([r.model, r.variant, r.dataset, "" if r.params is None else r.params, r.paper, r.note])


def main(argv: list[str]) -> int:
    from models import model_names

    p = argparse.ArgumentParser(prog="bench.py params", description=__doc__.splitlines()[0])
    p.add_argument("--format", choices=("table", "csv"), default="table", help="table (default) or csv on stdout")
    p.add_argument("--model", action="append", default=[], help="only this registered model (repeatable)")
    args = p.parse_args(argv)
    known = model_names()
    unknown = [m for m in args.model if m not in known]
    if unknown:
        raise UsageError(f"unknown model(s) {unknown}; valid: {', '.join(known)}")
    rows = collect_rows(args.model or known)
    if args.format == "csv":
        write_csv(rows, sys.stdout)
    else:
        print_table(rows)
    return 0
