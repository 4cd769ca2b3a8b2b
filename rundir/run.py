"""The run directory: every file of a run is written and read here, and a run's identity is defined here.

    <out>/runs/<dataset>/<model>/<preset>-s<seed>-<eval key>/
        config.yaml              the resolved config                       write_config / read_config
        run.json                 what a report needs to know of the run    write_info / read_info
        status.json              params, steps, times, machine, commit     update_status / read_status
        train.jsonl              one flat dict per logged step             log_line / read_train_log
        checkpoints/             the trainer's (benchmarks/trainer.py), never read by a report
        eval/summary.csv         metric, aggregate, value, ci_low, ci_high, n[, notes, version]
        eval/curves.csv          metric, aggregate, t, mean, ci_low, ci_high, n[, notes, version]
        eval/per_example.parquet every score per (metric, example, sample, t) (.npz without pyarrow)
        samples/samples.npz      gt (S, T, H, W, C), pred (S, n, horizon, H, W, C) uint8, context
        samples/strip.png        test video 1: ground truth over the prediction at a few horizons
    <out>/suites/<name>.json     what a suite ran, skipped, and used in place of what

run.json (written by the pipeline when a run starts) holds what a report cannot know
without the harness: the model's label, its Table 1 row (`paper_label`, None: not in the
paper's comparison), the dataset's name in the paper, whether it is a naive reference, its
variant (the config keys that differ from its preset's, computed when it ran), each
metric's direction and the horizon bands. A run written before run.json existed is read
with what config.yaml and status.json tell (`legacy`: its variant and labels are unknown
until `python bench.py relabel` records them).

Identity, from config.yaml's dict alone (never re-resolved against today's YAML):

    eval_key(cfg)    the run itself: every setting that can change a number it writes; its directory name
    train_key(cfg)   its training: runs that differ only in evaluation settings (EVAL_ONLY) share it
    test_set(cfg)    its test examples and how they are scored: runs comparable example by example

Torch-free: reports import this module (and rundir.atomic, rundir.stats) and nothing else of the project.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rundir.atomic import atomic_open, write_csv, write_json, write_text
from rundir.stats import horizon_bands, metric_info

CONFIG, INFO, STATUS, TRAIN_LOG = "config.yaml", "run.json", "status.json", "train.jsonl"
SUMMARY, CURVES = Path("eval") / "summary.csv", Path("eval") / "curves.csv"
PER_EXAMPLE = Path("eval") / "per_example"  # .parquet or .npz
SAMPLES = Path("samples") / "samples.npz"
STRIP = Path("samples") / "strip.png"  # reports/samples.py write_run_strip
INFO_VERSION = 1

# Settings that change no number a run writes: part of no key. Frozen: the eval key names every
# run directory, so changing this list would orphan the runs already made. Only keys that no earlier
# config holds may join it (a new key left out keeps every existing key): the loggers' (benchmarks/loggers.py).
OPERATIONAL = (
    "data.root",
    "train.log_every",
    "train.ckpt_every",
    "train.num_threads",
    "eval.chunk",
    "train.loggers",
    "train.eval_every",
    "train.eval_videos",
    "train.val_horizon",
    "model.checkpoint_activations",  # SVG, VTA: memory against time, the same numbers (models/checkpointing.py)
    "train.prefetch",  # batches made ahead in a thread: the same batches (benchmarks/prefetch.py)
)
# What an evaluation may change without touching the training.
EVAL_ONLY = ("eval", "data.test_length", "data.n_test")
# Settings that do not make a run a different experiment (its variant), though some may change
# bits of its numbers (the seed; eval.batch_size seeds each batch's samples).
NOT_A_VARIANT = (
    *OPERATIONAL,
    "seed",
    "model_file_sha256",
    "train.skip_nonfinite",
    "eval.batch_size",
    "eval.save_samples",
)


class RunDirError(RuntimeError):
    """A run directory that cannot be read as one (the message names the file and what to do)."""

    def __init__(self, message: str, path: Path | None = None, reason: str = ""):
        super().__init__(message)
        self.path = path  # the damaged file, when one is to blame
        self.reason = reason  # what is wrong with it


# ---------------------------------------------------------------- identity


def _without(cfg: dict, dotted: tuple[str, ...]) -> dict:
    """A copy of the nested config dict without the given keys (`eval` drops the whole section)."""
    out = json.loads(json.dumps(cfg, default=list))  # a deep copy; tuples become lists as in config.yaml
    for key in dotted:
        *path, last = key.split(".")
        node = out
        for k in path:
            node = node.get(k, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def _digest(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


def eval_key(cfg: dict) -> str:
    """The run's identity (its directory name): everything but OPERATIONAL settings."""
    return _digest(_without(cfg, OPERATIONAL))


def train_key(cfg: dict) -> str:
    """The identity of the training: eval_key without the EVAL_ONLY settings."""
    return _digest(_without(cfg, OPERATIONAL + EVAL_ONLY))


def test_set(cfg: dict) -> dict:
    """What fixes the test examples and how they are scored: dataset, data config (root aside),
    context, eval mode."""
    data = {k: v for k, v in (cfg.get("data") or {}).items() if k != "root"}
    ev = cfg.get("eval") or {}
    return {"dataset": cfg["dataset"], "data": data, "context": ev.get("context"), "mode": ev.get("mode", "standard")}


def test_set_differences(a: dict, b: dict) -> tuple[list[str], list[str]]:
    """(differences, notes) between two configs' test sets. A data key only one config holds
    (written by another version of the harness) is no difference, only a note."""
    ta, tb = test_set(a), test_set(b)
    diffs = [f"{key}: {ta[key]!r} vs {tb[key]!r}" for key in ("dataset", "context", "mode") if ta[key] != tb[key]]
    shared = sorted(set(ta["data"]) & set(tb["data"]))
    diffs += [f"data.{k}: {ta['data'][k]!r} vs {tb['data'][k]!r}" for k in shared if ta["data"][k] != tb["data"][k]]
    one_sided = sorted(set(ta["data"]) ^ set(tb["data"]))
    notes = [f"data keys {one_sided} are in only one config (another harness version); not compared"]
    return diffs, notes if one_sided else []


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become tuples."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = tuple(v) if isinstance(v, list) else v
    return out


def _fmt(v) -> str:
    if isinstance(v, tuple):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def variant(cfg: dict, preset_cfg: dict) -> str:
    """'' when `cfg` is its preset's own config (`preset_cfg`, the same model, dataset and preset
    without --set), else 'key=value, ...' for the keys that differ, NOT_A_VARIANT aside. A run
    that evaluated exported weights (`--from-weights`) is always one: `from-weights=<sha256 prefix>`."""
    base, mine = flatten(preset_cfg), flatten(cfg)
    tuned = set((cfg.get("tuned") or {}).get("keys") or {})  # settings from a tuning study: the model's own
    diffs = [f"from-weights={cfg['weights_sha256'][:8]}"] if cfg.get("weights_sha256") else []
    for key in sorted(set(base) & set(mine)):
        if key in NOT_A_VARIANT or key in tuned or any(key.startswith(k + ".") for k in NOT_A_VARIANT):
            continue
        a, b = mine[key], base[key]
        if a != b and not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)):
            diffs.append(f"{key}={_fmt(a)}")
    return ", ".join(diffs)


def model_label(model_name: str) -> str:
    """Registry name, or `Name` for `path/to/file.py:Name`."""
    return model_name.rpartition(":")[2] if ":" in model_name else model_name


def run_path(out: Path, cfg: dict) -> Path:
    """<out>/runs/<dataset>/<model>/<preset>-s<seed>-<eval key>."""
    name = f"{cfg['preset']}-s{cfg['seed']}-{eval_key(cfg)}"
    return Path(out) / "runs" / cfg["dataset"] / model_label(cfg["model_name"]) / name


# ---------------------------------------------------------------- writing


def check_writable(out: Path) -> None:
    """Create `out` if needed and prove a file can be written there; else PermissionError."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-probe-"):
            pass
    except OSError as e:
        raise PermissionError(
            f"output directory {out} is not writable ({e.strerror or e}); pass --out DIR with a writable directory"
        ) from None


def write_config(directory: Path, cfg: dict) -> None:
    path = Path(directory) / CONFIG
    text = yaml.safe_dump(cfg, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        write_text(path, text)


def run_info(
    cfg: dict,
    preset_cfg: dict | None,
    paper_label: str | None,
    paper_dataset: str | None,
    reference: bool,
    paper_data: bool | None = None,
) -> dict:
    """The content of run.json for a run of config `cfg` (preset_cfg: its preset's own config,
    None when it cannot be resolved, e.g. a model file that has moved: then no variant).
    paper_data: the dataset's videos are the paper's own, not a generated stand-in (None: unknown)."""
    ev = cfg.get("eval") or {}
    context, length = int(ev.get("context", 0)), int((cfg.get("data") or {}).get("test_length", 0))
    horizon = max(length - context, 0)
    metrics = list(ev.get("metrics") or [])
    return {
        "version": INFO_VERSION,
        "label": model_label(cfg["model_name"]),
        "paper_label": paper_label,
        "paper_dataset": paper_dataset,
        "paper_data": paper_data,
        "reference": bool(reference),
        "variant": variant(cfg, preset_cfg) if preset_cfg is not None else "",
        "metrics": {m: metric_info(m).to_dict() for m in metrics},
        "context": context,
        "horizon": horizon,
        "bands": [list(b) for b in horizon_bands(horizon)] if horizon else [],
    }


def write_info(directory: Path, info: dict) -> None:
    write_json(Path(directory) / INFO, info)


def update_status(directory: Path, **fields) -> dict:
    status = {**read_status(directory), **fields}
    write_json(Path(directory) / STATUS, status)
    return status


def per_example_table(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long table: one row per (metric, example, sample, t) with the score."""
    frames = []
    for name, s in arrays.items():
        N, n, h = s.shape
        ex, sa, t = np.meshgrid(np.arange(N), np.arange(n), np.arange(1, h + 1), indexing="ij")
        frames.append(
            pd.DataFrame(
                {"metric": name, "example": ex.ravel(), "sample": sa.ravel(), "t": t.ravel(), "value": s.ravel()}
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_per_example(directory: Path, arrays: dict[str, np.ndarray]) -> Path:
    """eval/per_example.parquet (pyarrow installed) or .npz: every score {metric: (N, n_samples, horizon)},
    so that any number of a report can be recomputed."""
    base = Path(directory) / PER_EXAMPLE
    try:
        import pyarrow  # noqa: F401

        path = base.with_suffix(".parquet")
        with atomic_open(path, "wb") as f:
            per_example_table(arrays).to_parquet(f, index=False)
    except ImportError:
        path = base.with_suffix(".npz")
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
    return path


def write_evaluation(
    directory: Path,
    curves: pd.DataFrame,
    summary: pd.DataFrame,
    arrays: dict[str, np.ndarray],
    samples: dict[str, np.ndarray] | None = None,
) -> None:
    """Every evaluation file; summary.csv last, as it marks the evaluation complete.
    samples: gt (S, T, H, W, C) and pred (S, n_samples, horizon, H, W, C) uint8 and context."""
    directory = Path(directory)
    write_per_example(directory, arrays)
    write_csv(directory / CURVES, curves)
    if samples is not None:
        with atomic_open(directory / SAMPLES, "wb") as f:
            np.savez_compressed(f, **samples)
    write_csv(directory / SUMMARY, summary)


def log_line(record: dict) -> str:
    """One line of train.jsonl."""
    return json.dumps(record) + "\n"


def write_suite_manifest(out: Path, name: str, manifest: dict) -> Path:
    path = Path(out) / "suites" / f"{name}.json"
    write_json(path, manifest)
    return path


# ---------------------------------------------------------------- reading


def damaged(path: Path, reason: str) -> RunDirError:
    return RunDirError(
        f"{path} is damaged ({reason}); a re-run of its command refuses until it is repaired or redone with --force",
        path,
        reason,
    )


def read_yaml_file(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: bytes that are not text
        raise damaged(path, _why(e)) from None
    if not isinstance(data, dict):
        raise damaged(path, "it holds no config mapping")
    return data


def read_config(directory: Path) -> dict:
    return read_yaml_file(Path(directory) / CONFIG)


def _read_json(path: Path) -> dict:
    """A JSON object, {} when the file does not exist; RunDirError naming the file when it is damaged."""
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as e:  # JSONDecodeError and bytes that are not text are ValueErrors
        raise damaged(path, _why(e)) from None
    if not isinstance(data, dict):
        raise damaged(path, "it holds no JSON object")
    return data


def _why(e: Exception) -> str:
    """'truncated or empty' for an unfinished document, else what the parser says (and where)."""
    if isinstance(e, UnicodeDecodeError):
        return f"not text: {e.reason} at byte {e.start}"
    mark = getattr(e, "problem_mark", None)
    if isinstance(e, yaml.YAMLError) and mark is not None:
        return f"not YAML: {getattr(e, 'problem', None) or 'malformed'} at line {mark.line + 1}"
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, json.JSONDecodeError) and e.pos >= len(e.doc.rstrip()):
        return f"truncated or empty: {text}"
    return text


def read_status(directory: Path) -> dict:
    return _read_json(Path(directory) / STATUS)


def check_run_files(directory: Path) -> None:
    """Raise RunDirError naming the first of config.yaml, status.json, run.json and eval/summary.csv
    that exists in `directory` but cannot be read."""
    directory = Path(directory)
    if (directory / CONFIG).exists():
        read_config(directory)
    read_status(directory)
    _read_json(directory / INFO)
    if is_evaluated(directory):
        read_summary(directory)


def legacy_info(cfg: dict, status: dict) -> dict:
    """run.json of a run written before run.json existed, from config.yaml and status.json alone:
    metrics and bands derive from the config; the variant and the labels are unknown (None)."""
    info = run_info(cfg, None, None, None, reference="params" in status and int(status.get("params") or 0) == 0)
    return {**info, "variant": None, "legacy": True}


def read_info(directory: Path, cfg: dict | None = None, status: dict | None = None) -> dict:
    """run.json, or for a run that predates it `legacy_info` (`legacy`: True)."""
    info = _read_json(Path(directory) / INFO)
    if info:
        return {**info, "legacy": False}
    cfg = cfg if cfg is not None else read_config(directory)
    return legacy_info(cfg, status if status is not None else read_status(directory))


def is_evaluated(directory: Path) -> bool:
    return (Path(directory) / SUMMARY).exists()


def _with_aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    if "aggregate" not in frame:
        frame["aggregate"] = "best"  # written before several samples were supported: the only sample
    return frame


def read_summary(directory: Path) -> pd.DataFrame:
    """eval/summary.csv: metric, aggregate, value, ci_low, ci_high, n[, notes, version]."""
    path = Path(directory) / SUMMARY
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as e:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise damaged(path, _why(e)) from None
    if not {"metric", "value"} <= set(frame.columns):
        raise damaged(path, "no metric and value columns")
    return _with_aggregate(frame)


def read_curves(directory: Path) -> pd.DataFrame:
    """eval/curves.csv: metric, aggregate, t, mean, ci_low, ci_high, n (empty if absent)."""
    path = Path(directory) / CURVES
    if not path.exists():
        return pd.DataFrame(columns=["metric", "aggregate", "t", "mean", "ci_low", "ci_high", "n"])
    return _with_aggregate(pd.read_csv(path))


def has_per_example(directory: Path) -> bool:
    base = Path(directory) / PER_EXAMPLE
    return base.with_suffix(".parquet").exists() or base.with_suffix(".npz").exists()


def read_per_example(directory: Path) -> dict[str, np.ndarray]:
    """{metric: (N, n_samples, horizon)} from either per-example format."""
    base = Path(directory) / PER_EXAMPLE
    if base.with_suffix(".parquet").exists():
        table = pd.read_parquet(base.with_suffix(".parquet"))
        out = {}
        for name, g in table.groupby("metric", sort=False):
            N, n, h = g["example"].max() + 1, g["sample"].max() + 1, g["t"].max()
            arr = np.full((N, n, h), np.nan)
            arr[g["example"], g["sample"], g["t"] - 1] = g["value"]
            out[name] = arr
        return out
    with np.load(base.with_suffix(".npz")) as z:
        return {k: z[k] for k in z.files}


def read_train_log(directory: Path) -> pd.DataFrame:
    """train.jsonl as a frame (one row per logged step); a line cut by a kill ends the log."""
    path = Path(directory) / TRAIN_LOG
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


def read_samples(directory: Path) -> dict[str, np.ndarray] | None:
    """samples/samples.npz: gt (S, T, H, W, C) and pred (S, n, horizon, H, W, C) uint8, context."""
    path = Path(directory) / SAMPLES
    if not path.exists():
        return None
    with np.load(path) as z:
        return {"gt": z["gt"], "pred": z["pred"], "context": int(z["context"])}


def read_suites(results: Path) -> list[dict]:
    """<results>/suites/*.json written by `--suite`."""
    out = []
    for path in sorted((Path(results) / "suites").glob("*.json")):
        try:
            manifest = _read_json(path)
        except RunDirError as e:
            warn_once(path, f"skipped suite manifest {path}: {e}")
            continue
        if manifest:
            out.append(manifest)
    return out


def iter_runs(out: Path):
    """Every run directory under <out>/runs that has a config.yaml."""
    root = Path(out) / "runs"
    if root.exists():
        yield from sorted(p.parent for p in root.glob(f"*/*/*/{CONFIG}"))


@dataclass(frozen=True)
class Skipped:
    """A run directory that readers leave out: one of its files is damaged (`reason` names it), or
    a newer evaluated run of the same seed supersedes it (`one_per_seed`)."""

    directory: Path
    rel: str  # relative to the results directory
    reason: str


_WARNED: set[str] = set()


def warn_once(key, message: str) -> None:
    """`warning: message` on stderr, once per process for `key` (readers run several times per command)."""
    import sys

    if str(key) not in _WARNED:
        _WARNED.add(str(key))
        print(f"warning: {message}", file=sys.stderr)


def skip(directory: Path, results: Path, error: Exception, skipped: list[Skipped] | None) -> None:
    """Warn that a damaged run is left out; record it in `skipped` (the report's list)."""
    reason = str(error) if isinstance(error, RunDirError) else f"{directory / CONFIG} lacks the key {error}"
    warn_once(directory, f"skipped run {directory}: {reason}")
    if skipped is not None:
        try:
            rel = directory.relative_to(results).as_posix()
        except ValueError:
            rel = str(directory)
        skipped.append(Skipped(directory, rel, reason))


def readable_runs(out: Path, skipped: list[Skipped] | None = None):
    """(directory, config.yaml's dict) of every run under <out>/runs whose files can be read; a
    damaged one is skipped with a warning naming the file (and appended to `skipped`)."""
    for directory in iter_runs(out):
        try:
            check_run_files(directory)
            cfg = read_config(directory)
            cfg["model_name"], cfg["dataset"]  # noqa: B018 - every run's config has them
        except (RunDirError, KeyError) as e:
            skip(directory, Path(out), e, skipped)
            continue
        yield directory, cfg


def results_root(path: Path) -> Path:
    """Accept either the results directory (holding runs/) or its runs/ directory."""
    path = Path(path)
    if not (path / "runs").is_dir() and path.name == "runs":
        return path.parent
    return path


# ---------------------------------------------------------------- a run, as the reports see it


def title_of(label: str, paper_label: str | None, reference: bool) -> str:
    """A run's row name: its Table 1 label ('CW-VAE'), a naive reference's label in words
    ('copy_last' -> 'Copy last'), or its model label as it is."""
    if paper_label:
        return paper_label
    return label.replace("_", " ").capitalize() if reference else label


@dataclass(frozen=True)
class Run:
    directory: Path
    rel: str  # path relative to the results directory (for links)
    cfg: dict = field(repr=False)  # config.yaml
    status: dict = field(repr=False)  # status.json
    info: dict = field(repr=False)  # run.json (or legacy_info)
    model: str  # the model's label: registry name or class name
    dataset: str
    preset: str
    seed: int
    variant: str  # "" for its preset's own config, else the keys that differ; "?" unknown (legacy)
    title: str  # its row name (title_of)

    @property
    def tuned(self) -> dict:
        """Where its tuned settings came from (`bench.py tune`): study, trial, objective, keys; {} if untuned."""
        return self.cfg.get("tuned") or {}

    @property
    def entry(self) -> str:
        """The row of this run's group in tables and plots: its title, plus `tuned` and its variant if any."""
        marks = ", ".join(m for m in ("tuned" if self.tuned else "", self.variant) if m)
        return f"{self.title} [{marks}]" if marks else self.title

    @property
    def legacy(self) -> bool:
        """Written before run.json: variant and labels unknown (`python bench.py relabel` records them)."""
        return bool(self.info.get("legacy"))

    @property
    def paper_label(self) -> str | None:
        """Its row in the paper's Table 1; None: not in the paper's comparison."""
        return self.info.get("paper_label")

    @property
    def paper_dataset(self) -> str | None:
        """The dataset's name in the paper ('Moving MNIST'); None: not one of the paper's."""
        return self.info.get("paper_dataset")

    @property
    def paper_data(self) -> bool | None:
        """Its videos are the paper's own (the official archive), not a generated stand-in of the same
        paper dataset; None: unknown (run.json written before it recorded this)."""
        return self.info.get("paper_data")

    @property
    def is_reference(self) -> bool:
        """A naive reference (nothing trained), shown but never ranked or bolded."""
        return bool(self.info.get("reference"))

    @property
    def metrics(self) -> dict[str, dict]:
        """{metric: {higher_is_better, per_example, official_of}} as run.json records them."""
        return self.info.get("metrics") or {}

    def higher_is_better(self, metric: str) -> bool:
        recorded = self.metrics.get(metric) or {}
        return bool(recorded.get("higher_is_better", metric_info(metric).higher_is_better))

    @property
    def finished(self) -> bool:
        return is_evaluated(self.directory)

    @property
    def params(self) -> int:
        return int(self.status.get("params", 0) or 0)

    @property
    def train_key(self) -> str:
        return train_key(self.cfg)

    def get(self, dotted: str, default=None):
        """A config value by dotted key (`model.levels`), or `default`."""
        node = self.cfg
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def load_run(directory: Path, results: Path) -> Run:
    """The run in `directory` (under `results`) as config.yaml, status.json and run.json describe it."""
    cfg = read_config(directory)
    status = read_status(directory)
    info = read_info(directory, cfg, status)
    variant = info.get("variant")
    return Run(
        directory=directory,
        rel=directory.relative_to(results).as_posix(),
        cfg=cfg,
        status=status,
        info=info,
        model=info.get("label") or model_label(cfg["model_name"]),
        dataset=cfg["dataset"],
        preset=cfg["preset"],
        seed=int(cfg.get("seed", 0)),
        variant="?" if variant is None else variant,
        title=title_of(
            info.get("label") or model_label(cfg["model_name"]), info.get("paper_label"), info.get("reference")
        ),
    )


def collect(results: Path, skipped: list[Skipped] | None = None) -> list[Run]:
    """Every readable run under <results>/runs, sorted (dataset, model, preset, variant, seed, directory).
    A run with a damaged file is left out with a warning naming the file (and appended to `skipped`)."""
    results = Path(results)
    runs = []
    for directory in iter_runs(results):
        try:
            run = load_run(directory, results)
            if run.finished:
                read_summary(directory)  # a damaged table: left out here, not a traceback later
        except (RunDirError, KeyError) as e:
            skip(directory, results, e, skipped)
            continue
        runs.append(run)
    runs = one_per_seed(runs, results, skipped)
    return sorted(runs, key=lambda r: (r.dataset, r.model, r.preset, r.variant, r.seed, r.rel))


def one_per_seed(runs: list[Run], results: Path, skipped: list[Skipped] | None = None) -> list[Run]:
    """One finished run per (dataset, row, preset, seed): tables and curves average over seeds, so
    two evaluated runs of one seed (the same command before and after its config changed: a key
    added, a preset retuned) would count twice. The most recently evaluated one is kept; each
    other is left out with a warning naming the one kept (and appended to `skipped`)."""

    def seed_key(run: Run) -> tuple:
        return run.dataset, run.entry, run.preset, run.seed

    finished = [run for run in runs if run.finished]
    newest: dict[tuple, Run] = {}
    for run in sorted(finished, key=evaluated_at, reverse=True):  # the newest first (ties: in `runs`' order)
        newest.setdefault(seed_key(run), run)
    superseded = [run for run in finished if newest[seed_key(run)] is not run]
    for run in superseded:
        winner = newest[seed_key(run)]
        reason = (
            f"an older evaluated run of {run.entry} on {run.dataset}, preset {run.preset}, seed {run.seed} than "
            f"{winner.rel} (directories {run.directory.name} and {winner.directory.name}: their configs differ); "
            "a report counts one run per seed, the newest"
        )
        skip(run.directory, results, RunDirError(reason), skipped)
    return [run for run in runs if all(run is not old for old in superseded)]


def evaluated_at(run: Run) -> float:
    """When the run's evaluation was written (eval/summary.csv's modification time)."""
    return (run.directory / SUMMARY).stat().st_mtime
