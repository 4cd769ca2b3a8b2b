"""`python bench.py export`: take what runs produced out of the results tree.

    python bench.py export RUN_DIR --out model.safetensors   # a run's model weights + model.json (sidecar)
    python bench.py export --format json|csv [--runs DIR] [--out FILE] [--aggregate best|mean] [--variants] [--all-models]
                                                             # the leaderboard and Table 1 (docs/results_schema.md)

The format follows from --format or the suffix of --out. Results default to
<runs>/results.json (.csv); their Table 1 is the report's (the same --variants,
--all-models, --aggregate). Errors are raised (UsageError, WeightsFileError,
CheckpointError) and turned into one line and exit code 2 by benchmarks/cli.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.commands import UsageError


def export_weights(args) -> int:
    from benchmarks.model_weights import WeightsFileError, export_run  # (torch: only for weights)

    if not args.run or not args.out:
        raise UsageError("give the run directory whose weights to export: export RUN_DIR --out FILE.safetensors")
    try:
        sidecar = export_run(args.run, args.out, warn=lambda message: print(message, file=sys.stderr))
    except OSError as e:  # disk full, permissions: nothing half-written is left (atomic writes)
        raise WeightsFileError(f"could not write {args.out} ({e.strerror or e}); choose another --out") from None
    out = Path(args.out)
    if sidecar["step"] < sidecar["total_steps"]:
        print(f"note: step {sidecar['step']} of {sidecar['total_steps']}: the run has not finished training")
    print(
        f"wrote {out} ({sidecar['model']}, {sidecar['params']:,} parameters, step {sidecar['step']}, "
        f"sha256 {sidecar['weights_sha256'][:12]}...) and {out.with_suffix('.json')}"
    )
    print(
        f"evaluate them: python bench.py --model {sidecar['model']} --dataset {sidecar['dataset']} --from-weights {out}"
    )
    return 0


def export_results(args) -> int:
    """The leaderboard and Table 1 as one table (reports/results.py) in args.format."""
    from rundir.run import results_root

    if args.run:
        raise UsageError(
            f"the results export reads a whole results directory, not the run {args.run}: "
            f"pass --runs DIR (default: results), e.g. export --format {args.format} --runs results"
        )
    runs = results_root(Path(args.runs))
    if not (runs / "runs").is_dir():
        raise UsageError(f"no runs/ under {runs}; pass --runs DIR (the --out of your runs)")
    from reports.results import results_rows, write_results

    out = Path(args.out) if args.out else runs / f"results.{args.format}"
    rows = results_rows(runs, args.aggregate, args.variants, args.all_models)
    try:
        write_results(rows, out, args.format, args.aggregate)
    except OSError as e:  # disk full, permissions: nothing half-written is left (atomic writes)
        raise UsageError(f"could not write {out} ({e.strerror or e}); choose another --out") from None
    counts = {t: sum(r["table"] == t for r in rows) for t in ("leaderboard", "table1")}
    n_runs = len({run for r in rows for run in r["runs"]})
    print(
        f"wrote {out}: {counts['leaderboard']} leaderboard and {counts['table1']} Table 1 rows (one per metric) "
        f"from {n_runs} runs; schema: docs/results_schema.md"
    )
    return 0


EXPORTERS = {"safetensors": export_weights, "json": export_results, "csv": export_results}  # format -> function
SUFFIXES = {".safetensors": "safetensors", ".json": "json", ".csv": "csv"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench.py export",
        description="Export a run's model weights (safetensors), or the leaderboard and Table 1 (json, csv).",
    )
    p.add_argument("run", nargs="?", metavar="RUN_DIR", help="weights: a run directory (results/runs/<dataset>/...)")
    p.add_argument(
        "--out", help="output file: model.safetensors (sidecar model.json); results: default <runs>/results.<format>"
    )
    p.add_argument("--format", choices=sorted(EXPORTERS), help="default: from the suffix of --out")
    p.add_argument("--runs", default="results", help="results: the results directory holding runs/ (default: results)")
    p.add_argument("--aggregate", default="best", choices=["best", "mean"], help="results: over a video's samples")
    p.add_argument("--variants", action="store_true", help="results: Table 1 with variants (as `report --variants`)")
    p.add_argument(
        "--all-models", action="store_true", help="results: Table 1 with every model (`report --all-models`)"
    )
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    args.format = args.format or SUFFIXES.get(Path(args.out).suffix if args.out else "")
    if args.format is None:
        what = f"cannot tell the format of {args.out}: end it in {', '.join(SUFFIXES)} or pass" if args.out else "give"
        raise UsageError(
            f"{what} --format json or csv (the leaderboard and Table 1), or export RUN_DIR --out FILE.safetensors "
            "(a run's weights)"
        )
    return EXPORTERS[args.format](args)
