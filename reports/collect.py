"""Read run directories into tidy tables. The only module of reports/ that opens run files.

A run is *standard* when its config equals what `resolve_config(model, dataset, preset,
seed)` gives today, up to settings that do not change its numbers (`IGNORED_KEYS`).
Otherwise it is a *variant*, named by the keys that differ (`model.levels=2`); Table 1
and the mean rank use standard runs (or every variant with `--variants`), the studies
pick the variants they need, and the leaderboard lists all of them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rundir.run import iter_runs, model_label, read_config, read_status

# settings that change neither what a run computes nor its scores
IGNORED_KEYS = {
    "seed",
    "model_file_sha256",
    "data.root",
    "train.log_every",
    "train.ckpt_every",
    "train.num_threads",
    "train.skip_nonfinite",
    "eval.batch_size",
    "eval.save_samples",
}


@dataclass(frozen=True)
class Run:
    directory: Path
    rel: str  # path relative to the results directory (for links)
    cfg: dict = field(repr=False)
    status: dict = field(repr=False)
    model: str
    dataset: str
    preset: str
    seed: int
    variant: str  # "" for a standard run, else "key=value, ..." of the keys that differ

    @property
    def entry(self) -> str:
        """The row name of this run's group: model, plus its variant if any."""
        return f"{self.model} [{self.variant}]" if self.variant else self.model

    @property
    def finished(self) -> bool:
        return (self.directory / "eval" / "summary.csv").exists()

    @property
    def params(self) -> int:
        return int(self.status.get("params", 0) or 0)

    @property
    def is_reference(self) -> bool:
        """A naive reference (nothing trained: 0 parameters), shown but never ranked or bolded."""
        return "params" in self.status and self.params == 0

    def get(self, dotted: str, default=None):
        node = self.cfg
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    @property
    def train_key(self) -> str:
        """Identity of the training (model, data, train, seed): runs that differ only in eval share it."""
        data = {k: v for k, v in self.cfg.get("data", {}).items() if k not in ("root", "test_length", "n_test")}
        train = {k: v for k, v in self.cfg.get("train", {}).items() if f"train.{k}" not in IGNORED_KEYS}
        blob = {
            "model_name": self.cfg.get("model_name"),
            "model": self.cfg.get("model"),
            "data": data,
            "train": train,
            "seed": self.seed,
            "preset": self.preset,
        }
        return json.dumps(blob, sort_keys=True, default=str)


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


@functools.lru_cache(maxsize=256)
def _default_flat(model_name: str, dataset: str, preset: str) -> tuple | None:
    from benchmarks.config import ConfigError, resolve_config

    try:
        d = resolve_config(model_name, dataset, preset).to_dict()
    except (ConfigError, KeyError, ValueError, OSError, ImportError):
        return None  # a model or dataset this checkout does not know: treated as standard
    return tuple(sorted(flatten(d).items(), key=lambda kv: kv[0]))


def _fmt(v) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def variant_of(cfg: dict) -> str:
    """'' when cfg is the preset's own config, else 'key=value, ...' for the keys that differ."""
    default = _default_flat(cfg["model_name"], cfg["dataset"], cfg["preset"])
    if default is None:
        return ""
    base = dict(default)
    mine = flatten(cfg)
    diffs = []
    for key in sorted(set(base) & set(mine)):  # a key only one side has was added or removed since: no difference
        if key in IGNORED_KEYS:
            continue
        a, b = mine.get(key), base.get(key)
        if a != b and not (isinstance(a, float) and isinstance(b, (int, float)) and float(a) == float(b)):
            diffs.append(f"{key}={_fmt(a)}")
    return ", ".join(diffs)


def results_root(path: Path) -> Path:
    """Accept either the results directory (holding runs/) or its runs/ directory."""
    path = Path(path)
    if not (path / "runs").is_dir() and path.name == "runs":
        return path.parent
    return path


def collect(results: Path) -> list[Run]:
    """Every run under <results>/runs, sorted (dataset, model, preset, variant, seed, directory)."""
    results = Path(results)
    runs = []
    for directory in iter_runs(results):
        try:
            cfg = read_config(directory)
        except (OSError, ValueError):
            continue  # an unreadable config: not a run we can report
        runs.append(
            Run(
                directory=directory,
                rel=directory.relative_to(results).as_posix(),
                cfg=cfg,
                status=read_status(directory),
                model=model_label(cfg["model_name"]),
                dataset=cfg["dataset"],
                preset=cfg["preset"],
                seed=int(cfg.get("seed", 0)),
                variant=variant_of(cfg),
            )
        )
    return sorted(runs, key=lambda r: (r.dataset, r.model, r.preset, r.variant, r.seed, r.rel))


# ---------------------------------------------------------------- files of one run


def read_summary(run: Run) -> pd.DataFrame:
    """eval/summary.csv: metric, aggregate, value, ci_low, ci_high, n."""
    frame = pd.read_csv(run.directory / "eval" / "summary.csv")
    if "aggregate" not in frame:
        frame["aggregate"] = "best"
    return frame


def read_curves(run: Run) -> pd.DataFrame:
    """eval/curves.csv: metric, aggregate, t, mean, ci_low, ci_high, n (empty if absent)."""
    path = run.directory / "eval" / "curves.csv"
    if not path.exists():
        return pd.DataFrame(columns=["metric", "aggregate", "t", "mean", "ci_low", "ci_high", "n"])
    frame = pd.read_csv(path)
    if "aggregate" not in frame:
        frame["aggregate"] = "best"
    return frame


def read_train_log(run: Run) -> pd.DataFrame:
    """train.jsonl as a frame (one row per logged step); a line cut by a kill ends the log."""
    path = run.directory / "train.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if not record.get("skipped_nonfinite"):
                rows.append(record)
    return pd.DataFrame(rows)


def read_samples(run: Run) -> dict[str, np.ndarray] | None:
    """samples/samples.npz: gt (S, T, H, W, C) and pred (S, n, horizon, H, W, C) uint8, context."""
    path = run.directory / "samples" / "samples.npz"
    if not path.exists():
        return None
    with np.load(path) as z:
        return {"gt": z["gt"], "pred": z["pred"], "context": int(z["context"])}


def final_kl(run: Run, tail: float = 0.1) -> dict[int, float]:
    """{level: KL} from train.jsonl: the mean of `train/kl_levelN` over the last `tail` of the logged steps."""
    log = read_train_log(run)
    cols = sorted(
        (c for c in log if c.startswith("train/kl_level")), key=lambda c: int(c.removeprefix("train/kl_level"))
    )
    if log.empty or not cols:
        return {}
    last = log.tail(max(1, int(round(len(log) * tail))))
    return {int(c.removeprefix("train/kl_level")): float(last[c].mean()) for c in cols}


def read_suites(results: Path) -> list[dict]:
    """<results>/suites/*.json written by `--suite`: planned, missing datasets and models."""
    out = []
    for path in sorted((Path(results) / "suites").glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return out
