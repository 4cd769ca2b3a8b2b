"""`python bench.py export`: take what a run produced out of the results tree.

    python bench.py export RUN_DIR --out model.safetensors   # the model's weights + model.json (sidecar)

The format follows from --out's suffix or --format. Only model weights exist so far;
results tables (`--format json|csv`, issue 19) are meant to join EXPORTERS here.
Errors are raised (WeightsFileError, CheckpointError, UsageError) and turned into one line
and exit code 2 by benchmarks/cli.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.commands import UsageError
from benchmarks.model_weights import WeightsFileError, export_run


def export_weights(args) -> int:
    if not args.run:
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


EXPORTERS = {"safetensors": export_weights}  # format -> function(args) -> exit code
SUFFIXES = {".safetensors": "safetensors"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.py export", description="Export a run's model weights as safetensors.")
    p.add_argument("run", nargs="?", metavar="RUN_DIR", help="a run directory (results/runs/<dataset>/<model>/...)")
    p.add_argument("--out", required=True, help="output file, e.g. model.safetensors (its sidecar: model.json)")
    p.add_argument("--format", choices=sorted(EXPORTERS), help="default: from the suffix of --out")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    fmt = args.format or SUFFIXES.get(Path(args.out).suffix)
    if fmt is None:
        raise UsageError(f"cannot tell the format of {args.out}: end it in {', '.join(SUFFIXES)} or pass --format")
    return EXPORTERS[fmt](args)
