"""`python bench.py tune`: tune a model's learning rate and decoder std as the paper does (benchmarks/tuning).

    python bench.py tune --model rssm --dataset mmnist [--preset quick] [--trials 20] [--jobs K]
                         [--launcher slurm] [--objective lpips|ssim|psnr] [--storage URL] [--set k=v ...]

Run the same command again to continue a study (finished trials are kept; a trial whose
worker died resumes its run). The outputs are in <out>/tuning/<model>/<dataset>/<preset>/:
best.yaml, trials.csv, objective.png; `--suite NAME --tuned` applies best.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.commands import add_set_argument, add_slurm_arguments, slurm_options
from benchmarks.config import DEFAULT_PRESET


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench.py tune",
        description="Tune a model's learning rate and decoder std on a validation split of the training videos "
        "(the paper's protocol; optuna TPE with median pruning). The test split is never read.",
    )
    p.add_argument("--model", required=True, help="registered model name (see bench.py --list)")
    p.add_argument("--dataset", default="mmnist", help="dataset name (default: mmnist)")
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"smoke | quick | paper (default: {DEFAULT_PRESET})")
    p.add_argument("--trials", type=int, help="finished trials the study aims at (default: benchmarks/configs/tuning)")
    p.add_argument("--jobs", type=int, default=1, help="workers sharing the study: local processes or SLURM jobs")
    p.add_argument("--launcher", default="local", help="local | slurm (one submitit job per worker)")
    p.add_argument("--objective", choices=("lpips", "ssim", "psnr"), help="default: LPIPS if fetched, else SSIM")
    p.add_argument(
        "--storage",
        default="",
        help="optuna storage URL shared by the workers (default: sqlite in the study directory; "
        "e.g. postgresql://user:pass@host/db on a cluster)",
    )
    p.add_argument("--seed", type=int, default=0, help="the trials' run seed (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--out", default="results", help="results directory (default: results)")
    add_set_argument(p, "train.steps=200", "a config key of every trial (e.g. a step budget)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_slurm_arguments(p, "--launcher slurm")
    return p


def main(argv: list[str]) -> int:
    from benchmarks.tuning import prepare, tune

    args = parser().parse_args(argv)
    spec = prepare(
        args.model,
        args.dataset,
        args.preset,
        Path(args.out),
        trials=args.trials,
        objective=args.objective,
        sets=tuple(args.sets),
        seed=args.seed,
        storage=args.storage,
        device=args.device,
        progress=not args.no_progress,
    )
    slurm = slurm_options(args)
    outcome = tune(spec, jobs=args.jobs, launcher=args.launcher, slurm=slurm, progress=not args.no_progress)
    states = ", ".join(f"{n} {state}" for state, n in sorted(outcome.counts.items()))
    print(f"study {spec.name}: {states} ({outcome.ran} run now, {outcome.seconds:.0f} s)")
    if outcome.best is None:
        print("no trial has completed yet: no best.yaml; run the same command again to continue")
        return 1
    b = outcome.best
    chosen = ", ".join(f"{k}={v:.4g}" for k, v in b["set"].items())
    print(f"best: trial {b['trial']}: {chosen} -> validation {b['objective']} {b['value']:.4g}")
    for path in outcome.files:
        print(f"  {path}")
    print(f"in a suite: python bench.py --suite NAME --preset {spec.preset} --tuned")
    return 0
