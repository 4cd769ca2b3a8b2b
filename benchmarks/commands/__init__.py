"""The commands of bench.py, one module each with `main(argv) -> int` (benchmarks/cli.py dispatches).

A command raises on bad input (ConfigError, UsageError, DatasetNotReady, ...) and never
prints an error itself: benchmarks/cli.py turns exceptions into exit codes in one place.
The argparse pieces several commands share are defined here once.
"""

from __future__ import annotations

import argparse

from benchmarks.config import ConfigError

# command -> module with `main(argv: list[str]) -> int`; without a command: RUN_COMMAND
COMMANDS = {
    "data": "benchmarks.commands.data",
    "weights": "benchmarks.commands.weights",
    "report": "benchmarks.commands.report",
    "relabel": "benchmarks.commands.relabel",
    "speed": "benchmarks.commands.speed",
    "params": "benchmarks.commands.params",
    "check-model": "benchmarks.commands.check_model",
    "compare": "benchmarks.commands.compare",
    "export": "benchmarks.commands.export",
    "tune": "benchmarks.commands.tune",
}
RUN_COMMAND = "benchmarks.commands.run"


def available_commands() -> list[str]:
    """The commands whose module this checkout has."""
    import importlib.util

    return [c for c, module in COMMANDS.items() if importlib.util.find_spec(module) is not None]


class UsageError(ConfigError):
    """Arguments that do not fit together; the message says what to give instead."""


def add_set_argument(p: argparse.ArgumentParser, example: str = "train.lr=1e-3", what: str = "any config key") -> None:
    """`--set SECTION.KEY=VALUE` (repeatable) into `args.sets`."""
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help=f"override {what}, e.g. --set {example} (repeatable)",
    )


SLURM_ARGUMENTS = ("partition", "time", "gpus", "cpus_per_task")  # argparse dests of add_slurm_arguments


def add_slurm_arguments(p: argparse.ArgumentParser, when: str) -> None:
    """`--partition`, `--time`, `--gpus`, `--cpus-per-task` (the fields of benchmarks.suite.SlurmOptions),
    None when not given; `slurm_options(args)` fills in SlurmOptions' defaults. when: what they go with
    ("--launcher slurm"), printed in their help."""
    from benchmarks.suite import SlurmOptions

    default = SlurmOptions()
    p.add_argument("--partition", help=f"with {when}: SLURM partition")
    p.add_argument("--time", type=int, help=f"with {when}: minutes per job (default: {default.time})")
    p.add_argument("--gpus", type=int, help=f"with {when}: GPUs per job (default: {default.gpus})")
    p.add_argument("--cpus-per-task", type=int, help=f"with {when}: CPUs per job (default: {default.cpus_per_task})")


def slurm_options(args: argparse.Namespace):
    """The benchmarks.suite.SlurmOptions of the arguments `add_slurm_arguments` declared (defaults for those
    not given)."""
    from benchmarks.suite import SlurmOptions

    return SlurmOptions(**{k: getattr(args, k) for k in SLURM_ARGUMENTS if getattr(args, k) is not None})
