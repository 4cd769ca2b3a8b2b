"""`python bench.py check-model MODEL`: the conformance kit as a pass/fail table.

    python bench.py check-model examples/my_model.py:TinyConvGRU
    python bench.py check-model cwvae --set model.levels=2

Exit 0 when every check passes (skipped ones included), 1 when one fails, 2 on bad input
(unknown model, dataset or preset: KitInputError, turned into the exit code by benchmarks/cli.py).
"""

from __future__ import annotations

import argparse

from benchmarks.commands import add_set_argument
from benchmarks.config import DEFAULT_PRESET
from benchmarks.conformance import CHECKS, FAIL, PASS, KitConfig, KitReport, run_checks

EXIT_FAILED = 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench.py check-model",
        description="Check that a model keeps the VideoModel contract (seconds, on CPU).",
    )
    p.add_argument("model", help="registered model name, or path/to/file.py:ClassName")
    p.add_argument(
        "--dataset", default="mmnist", help="dataset whose frame size and channels are used (default: mmnist)"
    )
    p.add_argument(
        "--preset", default=DEFAULT_PRESET, help=f"preset whose model sizes are built (default: {DEFAULT_PRESET})"
    )
    add_set_argument(p, example="model.hidden=16", what="a config key")
    p.add_argument("--steps", type=int, default=KitConfig.steps, help="Adam steps of the training check")
    p.add_argument("--seed", type=int, default=0)
    return p


def print_report(report: KitReport) -> None:
    from rich.console import Console
    from rich.table import Table

    marks = {PASS: "[green]pass[/]", FAIL: "[bold red]FAIL[/]"}
    table = Table(title=f"check-model {report.model}", caption=report.setup, show_lines=True, expand=True)
    table.add_column("check (what it asks)", ratio=2)
    table.add_column("result")
    table.add_column("s", justify="right")
    table.add_column("details", overflow="fold", ratio=3)
    for r in report.results:
        check = f"[bold]{r.name}[/]\n[dim]{CHECKS[r.name]}[/]"
        table.add_row(check, marks.get(r.status, "[yellow]skip[/]"), f"{r.seconds:.2f}", r.message)
    console = Console()
    console.print(table)
    failed = [r for r in report.results if r.status == FAIL]
    for r in failed:  # printed in full too: a table cell may wrap a long message
        console.print(f"[bold red]FAIL[/] {r.name}: {r.message}", highlight=False, soft_wrap=True)
    verdict = "[green]all checks passed[/]" if not failed else f"[bold red]{len(failed)} check(s) failed[/]"
    console.print(verdict)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    kit = KitConfig(steps=args.steps, seed=args.seed, preset=args.preset)
    report = run_checks(args.model, args.dataset, args.sets, kit)  # KitInputError: bad input, exit 2
    print_report(report)
    return 0 if report.passed else EXIT_FAILED
