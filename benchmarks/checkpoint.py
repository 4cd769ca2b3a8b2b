"""A run's checkpoints: written atomically with the previous one kept, read without running code.

    checkpoints/last.pt   the newest training state
    checkpoints/prev.pt   the one before it: a damaged last.pt costs `train.ckpt_every` steps, not the run

A checkpoint holds only tensors and plain Python values (dict, list, tuple, str, int, float,
bool, None): model, optimizer, step, training time, every RNG state, the config. It is read
with `torch.load(weights_only=True)`, so a crafted file is refused, never executed. A
damaged last.pt (empty, truncated, unreadable) falls back to prev.pt with a warning.

Writing serialises in memory first and then writes the bytes: a full disk then surfaces as
the OSError it is (torch.save streaming to a full disk raises a RuntimeError such as
"unexpected pos 704 vs 598" that does not say why). Every failure is a CheckpointError
whose one-line message names the file and what to do.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from rundir.atomic import atomic_open, remove_stale_temps
from rundir.run import EVAL_ONLY, OPERATIONAL, train_key

LAST = Path("checkpoints") / "last.pt"
PREV = Path("checkpoints") / "prev.pt"
REQUIRED = ("model", "step", "config_hash")  # what makes a file a cwbench checkpoint
RESTART = "pass --force to discard it and retrain from scratch"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or written; the message names the file and what to do."""


class CheckpointUnsafe(CheckpointError):
    """A file that asks to import or call code when unpickled: refused, nothing executed."""


class CheckpointDamaged(CheckpointError):
    """No readable checkpoint (empty, truncated, not a checkpoint)."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint written under a different config."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, ...); the previous one is intact."""


def _first_line(e: BaseException, limit: int = 120) -> str:
    """An exception's message shortened to its first line, and a long one to its first sentence
    (torch's go on with advice that does not apply here)."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if len(text) > limit:
        cut = text.find(". ", 40)
        text = text[:cut] if 0 < cut < limit else text[: limit - 3] + "..."
    return text


def read(path: str | os.PathLike) -> dict:
    """One checkpoint file -> its state dict, loaded on the CPU without running any code.

    Raises CheckpointUnsafe for a file that wants to import something (a crafted pickle),
    CheckpointDamaged for an empty, truncated or foreign file.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise CheckpointDamaged(f"{path} is empty")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols on stderr
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))  # the restricted unpickler met an import: a crafted file
        if found:
            raise CheckpointUnsafe(
                f"refusing to load {path}: it imports {found.group(1)}, which a cwbench checkpoint never does; "
                f"nothing was executed. Delete it if you do not trust where it came from, or {RESTART}"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(e))  # not torch's advice to unpickle it
        raise CheckpointDamaged(f"{path} is unreadable ({detail.group(1) if detail else 'not a checkpoint'})") from None
    except (OSError, EOFError, RuntimeError, KeyError, ValueError, IndexError, AttributeError) as e:
        raise CheckpointDamaged(f"{path} is truncated or unreadable ({_first_line(e)})") from None
    missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointDamaged(f"{path} is not a cwbench checkpoint (no {', '.join(missing)})")
    return state


def differing_keys(a: dict, b: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, value in a, value in b) for every key both dicts have with different values."""
    out = []
    for key in sorted(set(a) & set(b)):
        va, vb = a[key], b[key]
        if isinstance(va, dict) and isinstance(vb, dict):
            out += differing_keys(va, vb, f"{prefix}{key}.")
        elif (list(va) if isinstance(va, tuple) else va) != (list(vb) if isinstance(vb, tuple) else vb):
            out.append((f"{prefix}{key}", va, vb))
    return out


def check_config(state: dict, path: Path, config: dict, config_hash: str, training_only: bool = False) -> None:
    """Refuse a checkpoint written under another config; with `training_only`, evaluation settings may differ."""
    if state.get("config_hash") == config_hash:
        return
    theirs = state.get("config") or {}
    if training_only and theirs and train_key(theirs) == train_key(config):
        return
    skip = OPERATIONAL + (EVAL_ONLY if training_only else ())
    diffs = [d for d in differing_keys(theirs, config) if not any(d[0] == k or d[0].startswith(k + ".") for k in skip)]
    shown = "; ".join(f"{k}={a!r} there, {b!r} here" for k, a, b in diffs[:3])
    raise CheckpointMismatch(
        f"{path} was written under config {state.get('config_hash')}"
        + (f" ({shown})" if shown else "")
        + f", this run is {config_hash}; refusing to resume from it. {RESTART.capitalize()}"
    )


class RunCheckpoints:
    """last.pt and prev.pt of one run directory."""

    def __init__(self, run_dir: str | os.PathLike, warn: Callable[[str], None] | None = None):
        self.run_dir = Path(run_dir)
        self.last, self.prev = self.run_dir / LAST, self.run_dir / PREV
        self.warn = warn or (lambda message: None)
        self._rotate = True  # False after falling back from a damaged last.pt: it is overwritten, not kept

    def exists(self) -> bool:
        return self.last.exists() or self.prev.exists()

    def load(self) -> tuple[dict, Path] | None:
        """The newest readable checkpoint and its path; None when there is none.

        A damaged last.pt falls back to prev.pt with a warning naming it; CheckpointDamaged
        when neither is readable, CheckpointUnsafe as soon as one is a crafted file.
        """
        damaged = []
        for path in (self.last, self.prev):
            if not path.exists():
                continue
            try:
                state = read(path)
            except CheckpointDamaged as e:
                damaged.append(str(e))
                continue
            if path == self.prev:
                why = damaged[0] if damaged else f"{self.last} is missing"
                self.warn(f"warning: {why}; resuming from {path} (step {state['step']})")
                self._rotate = False
            return state, path
        if damaged:
            raise CheckpointDamaged(
                f"no readable checkpoint in {self.last.parent}: {'; '.join(damaged)}. "
                f"Re-run the same command with --force to retrain from scratch"
            )
        return None

    def save(self, state: dict) -> Path:
        """Write `state` as last.pt atomically, keeping the current last.pt as prev.pt."""

        def keep_previous() -> None:
            if self._rotate and self.last.exists():
                os.replace(self.last, self.prev)

        step = state.get("step")
        try:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            with atomic_open(self.last, "wb", before_rename=keep_previous) as f:
                f.write(buffer.getbuffer())
        except (OSError, RuntimeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else _first_line(e)
            raise CheckpointWriteError(
                f"could not write {self.last} at step {step} ({reason}); the previous checkpoint is intact. "
                "Free disk space (or pass --out DIR elsewhere) and re-run the same command to resume"
            ) from None
        self._rotate = True
        return self.last

    def clear(self) -> None:
        """Remove every checkpoint of the run (--force retrains from scratch)."""
        for path in (self.last, self.prev):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        remove_stale_temps(self.last.parent)
