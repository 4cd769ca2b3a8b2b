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
import time
from pathlib import Path

from benchmarks.commands import (
    SLURM_ARGUMENTS,
    UsageError,
    add_set_argument,
    add_slurm_arguments,
    available_commands,
    slurm_options,
)
from benchmarks.config import DEFAULT_PRESET


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench.py",
        description="Train and evaluate video-prediction models open loop (cwbench). "
        f"The default preset is {DEFAULT_PRESET} everywhere. Other commands: {', '.join(available_commands())}.",
    )
    p.add_argument("--model", help="registered model name, or path/to/file.py:ClassName")
    p.add_argument("--dataset", help="dataset name (default: mmnist)")
    p.add_argument(
        "--preset", default=None, help=f"smoke | quick | paper (default: {DEFAULT_PRESET}; with --suite: the suite's)"
    )
    p.add_argument("--seed", type=int, help="seed of the run (default: 0)")
    p.add_argument("--seeds", type=int, help="with --suite: seeds 0..N-1 per (model, dataset) (default: the suite's)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
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
    p.add_argument(
        "--tuned",
        nargs="?",
        const="baselines",
        help="with --suite: apply each model's tuning study (bench.py tune); alone: every model but CW-VAE, "
        "or a list: --tuned rssm,cwvae",
    )
    p.add_argument("--launcher", help="with --suite: local | slurm (default: local)")
    p.add_argument("--jobs", type=int, help="with --suite --launcher local: processes at once (default: 1)")
    add_slurm_arguments(p, "--suite --launcher slurm")
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
    cfg = resolve_config(args.model, args.dataset or "mmnist", preset, args.sets, args.seed or 0)
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

    from benchmarks.suite import run_suite
    from reports.build import write_report
    from reports.leaderboard import print_leaderboard, write_leaderboard

    out = Path(args.out)
    progress = SuiteProgress()
    slurm = slurm_options(args)
    outcome = run_suite(
        args.suite,
        out,
        preset=args.preset,
        seeds=args.seeds,
        device=args.device,
        launcher=args.launcher or "local",
        jobs=args.jobs or 1,
        sets=list(args.sets),
        progress=not args.no_progress,
        slurm=slurm,
        on_plan=progress.plan,
        on_result=progress.result,
        tuned=args.tuned,
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


class SuiteProgress:
    """What a suite prints: its plan, then one line per run done, with runs done/total and an ETA
    (the suite's wall time so far per run done, times the runs left; also right with --jobs N)."""

    def __init__(self):
        self.total, self.done, self.start = 0, 0, time.monotonic()

    def plan(self, plan, description: str) -> None:
        self.total, self.start = sum(len(c) for c in plan.chains), time.monotonic()
        print(
            f"suite {plan.suite}{f' ({description})' if description else ''}: preset {plan.preset}, {plan.seeds} seed(s); "
            f"{self.total} run(s) to do, {len(plan.finished)} already finished",
            flush=True,
        )
        for d in plan.missing_datasets:
            print(f"  skipped dataset {d['dataset']}: not prepared; run: {d['command']}")
        for s in plan.substitutes:
            print(f"  dataset {s['dataset']} is not prepared: {s['used']} stands in ({s['command']} prepares it)")
        for t in getattr(plan, "tuned", []):
            keys = ", ".join(f"{k}={v:.4g}" for k, v in t["keys"].items())
            print(f"  tuned {t['model']} on {t['dataset']}: {keys} (from {t['study']})")
        for t in getattr(plan, "untuned", []):
            print(f"  not tuned {t['model']} on {t['dataset']}: {t['reason']}")

    def result(self, r: dict) -> None:
        from reports.leaderboard import format_duration

        self.done += 1
        elapsed = time.monotonic() - self.start
        left = self.total - self.done
        eta = f"; ETA {format_duration(elapsed / self.done * left)}" if left > 0 else ""
        where = f"[{self.done}/{self.total}{eta}]"
        if r["status"] == "done":
            print(f"  {where} done    {r['run']}  ({r.get('seconds', 0):.0f} s)", flush=True)
        else:
            print(f"  {where} FAILED  {r['run']}: {r['error']}", flush=True)


# options that only mean something with --suite, and with --launcher slurm
SUITE_OPTIONS = ("seeds", "launcher", "jobs", *SLURM_ARGUMENTS, "tuned")
POSITIVE = {"seeds": 1, "jobs": 1, "time": 1, "gpus": 0, "cpus_per_task": 1}  # the least each may be


def flags(names: list[str]) -> str:
    """['jobs', 'cpus_per_task'] -> '--jobs and --cpus-per-task go'; one name: '--jobs goes'."""
    shown = [f"--{n.replace('_', '-')}" for n in names]
    text = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    return f"{text} {'goes' if len(shown) == 1 else 'go'}"


def check_options(args) -> None:
    """Refuse options that do not go together (or are out of range), saying which do."""
    given = [k for k in vars(args) if getattr(args, k) not in (None, False, [])]
    if args.suite:
        alone = [k for k in ("model", "dataset", "seed") if k in given]
        if alone:
            raise UsageError(
                f"--suite does not go with {flags(alone).rsplit(' ', 1)[0]}: --suite runs the models, "
                "datasets and seeds its YAML lists (--seeds N for seeds 0..N-1); --model, --dataset and --seed "
                "make one run"
            )
        one_run = [k for k in ("force", "re_eval", "wait", "from_weights") if k in given]
        if one_run:
            names = flags(one_run).rsplit(" ", 1)[0]
            raise UsageError(f"{names} appl{'ies' if len(one_run) == 1 else 'y'} to one run (--model), not to --suite")
        if args.launcher not in (None, "local", "slurm"):
            raise UsageError(f"--launcher {args.launcher}: valid: local, slurm")
        slurm_only = [k for k in SLURM_ARGUMENTS if k in given]
        if slurm_only and args.launcher != "slurm":
            raise UsageError(f"{flags(slurm_only)} with --suite --launcher slurm")
        if args.jobs is not None and args.launcher == "slurm":
            raise UsageError("--jobs goes with --launcher local (processes on this machine); SLURM runs a job per run")
    else:
        suite_only = [k for k in SUITE_OPTIONS if k in given]
        if suite_only:
            seed = "; a single run (--model) takes --seed N" if "seeds" in suite_only else ""
            raise UsageError(f"{flags(suite_only)} with --suite NAME (a suite of runs){seed}")
    for key, least in POSITIVE.items():
        value = getattr(args, key)
        if value is not None and value < least:
            raise UsageError(f"{flags([key]).rsplit(' ', 1)[0]} {value}: must be >= {least}")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.list:
        return list_everything()
    check_options(args)
    if args.suite:
        return run_suite(args)
    if not args.model:
        raise UsageError(
            "give --model NAME (see --list), --suite NAME or a command: " + ", ".join(available_commands())
        )
    return run_one(args)
