"""Command line of cwbench (bench.py is a thin wrapper around `main`).

    python bench.py --model cwvae --dataset mmnist [--preset quick] [--seed 0] [--set k=v ...]
    python bench.py --list
    python bench.py <command> ...   with command in SUBCOMMANDS

Exit codes: 0 ok, 1 unexpected error, 2 bad input (unknown name/key, dataset not
prepared, unwritable output), 3 non-finite loss.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# subcommand -> module with `main(argv: list[str]) -> int`
SUBCOMMANDS = {
    "data": "benchmarks.commands.data",
    "weights": "benchmarks.commands.weights",
    "report": "benchmarks.commands.report",
    "speed": "benchmarks.commands.speed",
    "params": "benchmarks.commands.params",
    "check-model": "benchmarks.commands.check_model",
    "compare": "benchmarks.commands.compare",
}

EXIT_BAD_INPUT = 2
EXIT_NONFINITE = 3


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench.py",
        description="Train and evaluate video-prediction models open loop (cwbench). "
        f"Other commands: {', '.join(SUBCOMMANDS)}.",
    )
    p.add_argument("--model", help="registered model name, or path/to/file.py:ClassName")
    p.add_argument("--dataset", default="mmnist", help="dataset name (default: mmnist)")
    p.add_argument("--preset", default=None, help="smoke | quick | paper (default: quick; with --suite: the suite's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--seeds", type=int, default=None, help="with --suite: seeds per (model, dataset) (default: the suite's)"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--out", default="results", help="output directory (default: results)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any config key, e.g. --set train.lr=1e-3 (repeatable)",
    )
    p.add_argument("--force", action="store_true", help="redo a finished run / load a checkpoint of another config")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--list", action="store_true", help="list models, datasets and presets")
    p.add_argument("--suite", help="run a suite of (model, dataset, seed) runs defined in YAML")
    p.add_argument("--launcher", default="local", help="with --suite: local | slurm")
    p.add_argument("--jobs", type=int, default=1, help="with --suite: local processes at once")
    p.add_argument("--partition", help="with --launcher slurm: SLURM partition")
    p.add_argument("--time", type=int, default=24 * 60, help="with --launcher slurm: minutes per job (default: 1440)")
    p.add_argument("--gpus", type=int, default=1, help="with --launcher slurm: GPUs per job (default: 1)")
    p.add_argument("--cpus-per-task", type=int, default=4, help="with --launcher slurm: CPUs per job (default: 4)")
    return p


def list_everything() -> int:
    from benchmarks.config import preset_names
    from datasets import dataset_names
    from models import model_names

    print("models:   " + ", ".join(model_names()))
    print("datasets: " + ", ".join(dataset_names()))
    print("presets:  " + ", ".join(preset_names()))
    print("commands: " + ", ".join(SUBCOMMANDS))
    return 0


def run_command(args) -> int:
    from benchmarks.config import ConfigError, resolve_config
    from benchmarks.metrics.weights import WeightsError
    from benchmarks.pipeline import run_one
    from benchmarks.protocol import ProtocolError
    from benchmarks.trainer import CheckpointMismatch, CheckpointWriteError, NonFiniteLoss
    from datasets import DatasetCorrupt, DatasetNotReady
    from reports.leaderboard import print_leaderboard, write_leaderboard

    try:
        cfg = resolve_config(args.model, args.dataset, args.preset or "quick", sets=args.sets, seed=args.seed)
        directory = run_one(cfg, Path(args.out), args.device, progress=not args.no_progress, force=args.force)
    except (
        ConfigError,
        DatasetNotReady,
        DatasetCorrupt,
        ProtocolError,
        CheckpointMismatch,
        CheckpointWriteError,
        WeightsError,
        PermissionError,
    ) as e:
        return fail(str(e))
    except ValueError as e:  # e.g. --device cuda without CUDA, too-short training videos
        return fail(str(e))
    except NonFiniteLoss as e:
        return fail(str(e), EXIT_NONFINITE)
    print(f"run directory: {directory}")
    frame = write_leaderboard(Path(args.out))
    print_leaderboard(frame)
    print(f"leaderboard: {Path(args.out) / 'leaderboard.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        try:
            module = importlib.import_module(SUBCOMMANDS[argv[0]])
        except ModuleNotFoundError as e:
            if e.name == SUBCOMMANDS[argv[0]]:
                return fail(f"command {argv[0]!r} is not available in this version")
            raise
        return module.main(argv[1:])
    args = run_parser().parse_args(argv)
    if args.list:
        return list_everything()
    if args.suite:
        try:
            module = importlib.import_module("benchmarks.suite")
        except ModuleNotFoundError:
            return fail("--suite is not available in this version")
        return module.main(args)
    if not args.model:
        return fail("give --model NAME (see --list), --suite NAME or a command: " + ", ".join(SUBCOMMANDS))
    return run_command(args)
