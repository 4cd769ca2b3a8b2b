"""The training's progress as the user sees it: a rich bar on a terminal, plain lines elsewhere.

In a log file or under SLURM (stdout is not a terminal) a rich bar shrinks to nothing
useful, so `TrainProgress` prints one plain line every `train.log_every` steps instead:

    train cwvae: step 120/800 (15%)  loss=1.234e+03 kl1=2.10 kl2=0.95  4,210 frames/s  ETA 3.2 min

The ETA is the wall time per step of this process so far times the steps left.
"""

from __future__ import annotations

import sys
import time

from reports.leaderboard import format_duration


def is_terminal() -> bool:
    """Whether progress can be drawn in place (rich's test: a tty, or FORCE_TERMINAL)."""
    from rich.console import Console

    return Console().is_terminal


class TrainProgress:
    """`with TrainProgress(name, total, start, enabled) as p:` then `p.logged(step, stats)` on logged
    steps and `p.advance(step)` after every step. `plain=None`: plain lines unless on a terminal."""

    def __init__(self, name: str, total: int, start: int, enabled: bool = True, plain: bool | None = None):
        self.name, self.total, self.start = name, total, start
        self.enabled = enabled
        self.plain = (not is_terminal()) if plain is None else plain
        self.bar, self.task, self.stats = None, None, ""
        self.t0 = time.monotonic()

    def __enter__(self):
        if self.enabled and not self.plain:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = [
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[stats]}"),
            ]
            self.bar = Progress(*columns).__enter__()
            self.task = self.bar.add_task(f"train {self.name}", total=self.total, completed=self.start, stats="")
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False

    def line(self, step: int, stats: str) -> str:
        """The plain line of `step`: step/total, the stats (loss, frames/s), the ETA."""
        done = step - self.start
        left = self.total - step
        elapsed = time.monotonic() - self.t0
        eta = f"  ETA {format_duration(elapsed / done * left)}" if done > 0 and left > 0 else ""
        percent = f" ({100 * step // self.total}%)" if self.total else ""
        return f"train {self.name}: step {step}/{self.total}{percent}  {stats}{eta}"

    def logged(self, step: int, stats: str) -> None:
        """A logged step: its stats on the bar, or one plain line."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, stats=stats)
        else:
            print(self.line(step, stats), file=sys.stdout, flush=True)

    def advance(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step)
