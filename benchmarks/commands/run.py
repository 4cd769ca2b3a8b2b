"""`python bench.py [--model M | --suite S | --list]`: one run, a suite of runs, or what there is.

    python bench.py --model cwvae --dataset mmnist [--preset quick] [--seed 0] [--set k=v ...]
    python bench.py --suite quick [--preset P] [--seeds N] [--jobs N | --launcher slurm ...]
    python bench.py --list

A run trains (or resumes) and evaluates one model into its run directory, then the
leaderboard is rewritten. A suite does so for every run of benchmarks/configs/suites/S.yaml
that is not finished yet (benchmarks/suite.py), then writes the report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.commands import UsageError, add_set_argument, available_commands
from benchmarks.config import DEFAULT_PRESET


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench.py",
        description="Train and evaluate video-prediction models open loop (cwbench). "
        f"The default preset is {DEFAULT_PRESET} everywhere. Other commands: {', '.join(available_commands())}.",
    )
    p.add_argument("--model", help="registered model name, or path/to/file.py:ClassName")
    p.add_argument("--dataset", default="mmnist", help="dataset name (default: mmnist)")
    p.add_argument(
        "--preset", default=None, help=f"smoke | quick | paper (default: {DEFAULT_PRESET}; with --suite: the suite's)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--seeds", type=int, default=None, help="with --suite: seeds per (model, dataset) (default: the suite's)"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--out", default="results", help="output directory (default: results)")
    add_set_argument(p)
    p.add_argument("--force", action="store_true", help="retrain from scratch, discarding the run's checkpoints")
    p.add_argument("--re-eval", action="store_true", help="evaluate a finished run's checkpoint again; train nothing")
    p.add_argument("--wait", action="store_true", help="wait for another process running the same run, then go on")
    p.add_argument(
        "--from-weights",
        metavar="FILE.safetensors",
        help="evaluate exported weights (bench.py export) without training; --preset defaults to theirs",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--list", action="store_true", help="list models, datasets, presets, suites and commands")
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
    from benchmarks.suite import suite_names
    from datasets import dataset_names
    from models import model_names

    print("models:   " + ", ".join(model_names()))
    print("datasets: " + ", ".join(dataset_names()))
    print(f"presets:  {', '.join(preset_names())} (default: {DEFAULT_PRESET})")
    print("suites:   " + ", ".join(suite_names()))
    print("commands: " + ", ".join(available_commands()))
    return 0


def run_one(args) -> int:
    from benchmarks.config import resolve_config
    from benchmarks.model_weights import read_weights
    from benchmarks.pipeline import run_one
    from reports.leaderboard import print_leaderboard, write_leaderboard

    if args.force and args.re_eval:
        raise UsageError(
            "--force retrains from scratch and --re-eval re-scores the existing checkpoint: give one of them"
        )
    weights = read_weights(args.from_weights) if args.from_weights else None
    preset = args.preset or (weights.info.get("preset") if weights else None) or DEFAULT_PRESET
    cfg = resolve_config(args.model, args.dataset, preset, sets=args.sets, seed=args.seed)
    directory = run_one(
        cfg,
        Path(args.out),
        args.device,
        progress=not args.no_progress,
        force=args.force,
        re_eval=args.re_eval,
        wait=args.wait,
        weights=weights,
    )
    print(f"run directory: {directory}")
    frame = write_leaderboard(Path(args.out))
    print_leaderboard(frame)
    print(f"leaderboard: {Path(args.out) / 'leaderboard.md'}")
    return 0


def run_suite(args) -> int:
    """Plan, run what is missing, write the suite's manifest, the leaderboard and the report."""
    import sys

    from benchmarks.suite import SlurmOptions, run_suite
    from reports.build import write_report
    from reports.leaderboard import print_leaderboard, write_leaderboard

    out = Path(args.out)
    slurm = SlurmOptions(partition=args.partition, time=args.time, gpus=args.gpus, cpus_per_task=args.cpus_per_task)
    outcome = run_suite(
        args.suite,
        out,
        preset=args.preset,
        seeds=args.seeds,
        device=args.device,
        launcher=args.launcher,
        jobs=args.jobs,
        sets=list(args.sets),
        progress=not args.no_progress,
        slurm=slurm,
        on_plan=print_plan,
        on_result=print_result,
    )
    frame = write_leaderboard(out)
    report = write_report(out, out / "report")
    print_leaderboard(frame)
    print(f"report: {out / 'report' / 'index.md'} ({len(report.files)} files); leaderboard: {out / 'leaderboard.md'}")
    if outcome.failed:
        print(
            f"{len(outcome.failed)} run(s) failed; fix the cause and run the suite again (finished runs are kept)",
            file=sys.stderr,
        )
        return 1
    return 0


def print_result(r: dict) -> None:
    if r["status"] == "done":
        print(f"  done    {r['run']}  ({r.get('seconds', 0):.0f} s)")
    else:
        print(f"  FAILED  {r['run']}: {r['error']}")


def print_plan(plan, description: str) -> None:
    todo = sum(len(c) for c in plan.chains)
    print(
        f"suite {plan.suite} ({description}): preset {plan.preset}, {plan.seeds} seed(s); "
        f"{todo} run(s) to do, {len(plan.finished)} already finished"
    )
    for m in plan.missing_models:
        print(f"  skipped model {m['model']}: {m['reason']}")
    for d in plan.missing_datasets:
        print(f"  skipped dataset {d['dataset']}: not prepared; run: {d['command']}")
    for s in plan.substitutes:
        print(f"  dataset {s['dataset']} is not prepared: {s['used']} stands in ({s['command']} prepares it)")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.list:
        return list_everything()
    if args.suite:
        one_run = [f"--{o.replace('_', '-')}" for o in ("re_eval", "wait", "from_weights") if getattr(args, o)]
        if one_run:
            verb = "applies" if len(one_run) == 1 else "apply"
            raise UsageError(f"{' and '.join(one_run)} {verb} to one run (--model), not to --suite")
        return run_suite(args)
    if not args.model:
        raise UsageError(
            "give --model NAME (see --list), --suite NAME or a command: " + ", ".join(available_commands())
        )
    return run_one(args)
