"""`python bench.py report`: turn run directories into tables, plots and leaderboards.

    python bench.py report [--runs DIR] [--out DIR] [--variants] [--all-models] [--aggregate best|mean]
    python bench.py report --paper [--out DIR]

--runs is the results directory (the one holding runs/; default results); --out
defaults to <runs>/report (with --paper: <runs>/report/paper). See docs/reports.md.

Reads run directories only (through rundir/): it loads neither torch nor any model
(tests/test_architecture.py runs it and checks).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.commands import UsageError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.py report", description="Write the report of the runs under DIR/runs.")
    p.add_argument("--runs", default="results", help="results directory holding runs/ (default: results)")
    p.add_argument(
        "--out", default=None, help="output directory (default: <runs>/report; --paper: <runs>/report/paper)"
    )
    p.add_argument("--paper", action="store_true", help="Table 1 and the mean rank of the paper's numbers alone")
    p.add_argument(
        "--variants",
        action="store_true",
        help="also put runs whose config differs from their preset's into Table 1 and the mean rank",
    )
    p.add_argument(
        "--all-models",
        action="store_true",
        help="also put models outside the paper's comparison (no Table 1 label: your own models, rssm_planet) "
        "into Table 1 and the mean rank",
    )
    p.add_argument(
        "--aggregate",
        default="best",
        choices=["best", "mean"],
        help="with several samples per video: best sample (default, as the paper) or mean over samples",
    )
    return p


def print_mean_rank(frame) -> None:
    for source in sorted(frame["source"].unique(), key=lambda s: (s == "paper", s)):
        sub = frame[frame["source"] == source]
        print(f"mean rank ({source}; lower is better):")
        for r in sub.itertuples():
            paper = f"   paper Fig 5: {r.paper_printed:.2f}" if source == "paper" else ""
            counted = f"   counted on {r.counted_on}" if r.counted_on else ""
            print(f"  {r.model:<10} {r.printed:>5}  ({r.cells}/{r.total_cells} cells){paper}{counted}")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from reports.build import write_paper_report, write_report
    from rundir.run import results_root

    runs = results_root(Path(args.runs))
    if args.paper:
        out = Path(args.out) if args.out else runs / "report" / "paper"
        report = write_paper_report(out)
    else:
        if not (runs / "runs").is_dir():
            raise UsageError(f"no runs/ under {runs}; pass --runs DIR (the --out of your runs) or use --paper")
        out = Path(args.out) if args.out else runs / "report"
        report = write_report(runs, out, variants=args.variants, aggregate=args.aggregate, all_models=args.all_models)
        finished = sum(r.finished for r in report.runs)
        damaged = f"; {len(report.skipped)} left out (listed in index.md)" if report.skipped else ""
        print(f"{finished} finished run(s) of {len(report.runs)} under {runs / 'runs'}{damaged}")
    print_mean_rank(report.mean_rank)
    print(f"wrote {len(report.files)} files to {out}" + ("" if args.paper else f"; start at {out / 'index.md'}"))
    return 0
