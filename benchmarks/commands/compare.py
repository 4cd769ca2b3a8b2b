"""`python bench.py compare A B`: paired comparison of two models or runs on the same test examples.

    python bench.py compare cwvae copy_last --dataset mmnist --preset quick
    python bench.py compare results/runs/mmnist/cwvae/quick-s0-1234abcd copy_last --format md

A and B are run directories or model names (all their runs under --out for one dataset
and preset, paired by seed). See reports/compare.py for the statistics and docs/compare.md.
Exit 0 on success, 2 when the two cannot be compared (CompareError; the message says why).
"""

from __future__ import annotations

import argparse
import sys

from reports.compare import AGGREGATES, Comparison, compare, formatted, to_csv, to_markdown


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench.py compare",
        description="Paired comparison of two models (or runs) on the same test examples: mean difference A - B "
        "per metric and horizon band, 95% bootstrap interval, Wilcoxon signed-rank p-value.",
    )
    p.add_argument("a", metavar="RUN_OR_MODEL_A", help="a run directory or a model name")
    p.add_argument("b", metavar="RUN_OR_MODEL_B", help="a run directory or a model name")
    p.add_argument("--dataset", help="dataset of the runs of a model name (default: the one both have)")
    p.add_argument("--preset", help="preset of the runs of a model name (default: the one both have)")
    p.add_argument("--out", default="results", help="results directory holding runs/ (default: results)")
    p.add_argument("--format", choices=("table", "md", "csv"), default="table", help="output format (default: table)")
    p.add_argument(
        "--aggregate",
        choices=AGGREGATES,
        default="best",
        help="per example over samples: best (Table 1, default) or mean",
    )
    p.add_argument("--bands", help="horizon bands of predicted frames, e.g. 1-100,101-500 (default: by the horizon)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default: 10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    return p


def print_table(cmp: Comparison) -> None:
    from rich.console import Console
    from rich.table import Table

    t = formatted(cmp).drop(columns=["n"])
    t.columns = ["metric", "frames", "A", "B", *t.columns[4:]]  # names in the A:/B: lines above
    table = Table(title=f"A - B: {cmp.label_a} vs {cmp.label_b}", caption=cmp.setup)
    for col in t.columns:
        table.add_column(col, justify="left" if col in ("metric", "frames", "better") else "right")
    for row in t.itertuples(index=False):
        style = "bold" if row.better != "-" else None
        table.add_row(*[str(v) for v in row], style=style)
    console = Console()
    console.print(f"A: {cmp.a}", highlight=False, soft_wrap=True)
    console.print(f"B: {cmp.b}", highlight=False, soft_wrap=True)
    console.print(table)
    for note in cmp.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    cmp = compare(
        args.a,
        args.b,
        args.out,
        args.dataset,
        args.preset,
        bands=args.bands,
        aggregate=args.aggregate,
        n_resamples=args.resamples,
        seed=args.seed,
    )
    if args.format == "md":
        sys.stdout.write(to_markdown(cmp))
    elif args.format == "csv":
        sys.stdout.write(to_csv(cmp))
        for note in cmp.notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        print_table(cmp)
    return 0
