"""Command line of cwbench: `bench.py`, the `cwbench` console script and `python -m benchmarks`
all call `run` (then `main`), which runs one command of benchmarks/commands/.

    python bench.py --model cwvae [--dataset mmnist] [--preset quick] [--set k=v ...]   one run
    python bench.py --suite NAME [--jobs N | --launcher slurm]                          many runs, then the report
    python bench.py --list
    python bench.py <command> ...            with command in COMMANDS

Commands raise; this module alone turns an exception into one line on stderr and an exit
code (ERRORS): 0 ok, 1 a run or check failed (the command said which), 2 bad input (an
unknown name or key, a dataset not prepared, unwritable output, an unusable checkpoint or
weights file, a run directory in use, ...), 3 non-finite loss, 130 interrupted (training
stopped by SIGINT / SIGTERM: 130 / 143, a checkpoint of the current step saved). Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

from benchmarks.commands import COMMANDS, RUN_COMMAND

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NONFINITE = 3
EXIT_INTERRUPTED = 130

# Exceptions that are the user's to fix, by qualified class name (matched along the MRO), so
# that a command that loads neither torch nor a model (report) is not made to import them.
ERRORS = {
    "benchmarks.trainer.NonFiniteLoss": EXIT_NONFINITE,
    "benchmarks.config.ConfigError": EXIT_BAD_INPUT,  # also the commands' UsageError
    "benchmarks.protocol.ProtocolError": EXIT_BAD_INPUT,
    "benchmarks.checkpoint.CheckpointError": EXIT_BAD_INPUT,  # unsafe, damaged, of another config, disk full
    "benchmarks.runlock.RunLocked": EXIT_BAD_INPUT,
    "benchmarks.model_weights.WeightsFileError": EXIT_BAD_INPUT,
    "benchmarks.metrics.weights.WeightsError": EXIT_BAD_INPUT,
    "benchmarks.conformance.KitInputError": EXIT_BAD_INPUT,
    "datasets.base.DatasetNotReady": EXIT_BAD_INPUT,
    "datasets.base.DatasetCorrupt": EXIT_BAD_INPUT,
    "datasets.prepare.PrepareError": EXIT_BAD_INPUT,
    "reports.compare.CompareError": EXIT_BAD_INPUT,
    "rundir.run.RunDirError": EXIT_BAD_INPUT,
    "builtins.PermissionError": EXIT_BAD_INPUT,  # an output directory that is not writable
}
INTERRUPTED = "interrupted; nothing incomplete is marked finished. Run the same command again to resume"


def exit_code(error: BaseException) -> int | None:
    """The exit code of an exception the user can act on, or None (a bug: keep the traceback)."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(getattr(error, "exit_code", None), int):  # TrainingInterrupted: 128 + the signal's number
        return error.exit_code
    for cls in type(error).__mro__:
        code = ERRORS.get(f"{cls.__module__}.{cls.__qualname__}")
        if code is not None:
            return code
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        name, module, argv = argv[0], COMMANDS[argv[0]], argv[1:]
    else:
        name, module = "run", RUN_COMMAND
    try:
        try:
            command = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            print(f"error: command {name!r} is not available in this version", file=sys.stderr)
            return EXIT_BAD_INPUT
        return command.main(argv)
    except BaseException as e:  # noqa: B036 - KeyboardInterrupt included: one message, exit 130
        code = exit_code(e)
        if code is None:
            raise
        message = INTERRUPTED if isinstance(e, KeyboardInterrupt) else str(e)
        print(f"error: {message}", file=sys.stderr)
        return code


def run() -> None:
    """The process entry point (bench.py, `cwbench`, `python -m benchmarks`): exit with main's code."""
    try:
        sys.exit(main())
    except BrokenPipeError:  # `cwbench --list | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
