"""One resolved config per run, built from YAML and the command line.

Precedence (later wins):
    dataclass defaults
    < dataset YAML (benchmarks/configs/datasets/<name>.yaml) and model YAML (models/<name>.yaml)
      (a model given as path/to/file.py:Name: path/to/file.yaml, when it exists)
    < the model YAML's `datasets: <dataset>:` section
    < the preset file (presets/<preset>.yaml)
    < the model's and the dataset's `presets: <preset>:` sections
    < `--set section.key=value`

Sections: `model` (the model's config dataclass), `data` (the dataset's), `train`,
`eval`. The model fields `channels` and `dec_std` default to the dataset's values.
An unknown key is an error that names the nearest valid key and lists them all.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rundir.run import eval_key, run_path
from rundir.stats import METRICS

CONFIG_DIR = Path(__file__).parent / "configs"
# The one default preset of the CLI, `build_model`, `resolve_config` and `check-model`: a model
# you can train on a CPU in minutes (smoke is for tests, paper for a GPU).
DEFAULT_PRESET = "quick"
SECTIONS = ("model", "data", "train", "eval")


class ConfigError(ValueError):
    """A user error in a config: unknown key, bad value, malformed YAML, unknown name."""


# ---------------------------------------------------------------- ranges

# Every numeric or enumerated key states its valid values once, as its dataclass field's
# metadata: `field(default=..., metadata={"min": 1})`. `build_dataclass` checks every section
# (model, data, train, eval) against them before anything runs, naming key, value and range:
#   {"min": a} value >= a      {"above": a} value > a      {"max": b} value <= b
#   {"choices": (...)} one of these      {"or": v} this one value too (e.g. 0 = off)
#   {"why": "..."} said after the range in the message
# Numbers must be finite; on a tuple field the rule holds for every item. Models and datasets
# declare theirs the same way (plain dicts: they import nothing from here).
RANGE_KEYS = ("min", "above", "max", "choices", "or", "why")


def describe_range(rule: dict) -> str:
    """{'min': 9, 'or': 0} -> '0 or >= 9'; {'above': 0, 'max': 3} -> 'in (0, 3]'."""
    why = f" ({rule['why']})" if "why" in rule else ""
    if "choices" in rule:
        return ", ".join(str(c) for c in rule["choices"]) + why
    low = ("[", rule["min"]) if "min" in rule else ("(", rule["above"]) if "above" in rule else None
    if low and "max" in rule:
        text = f"in {low[0]}{low[1]}, {rule['max']}]"
    elif low:
        text = f"{'>=' if low[0] == '[' else '>'} {low[1]}"
    else:
        text = f"<= {rule['max']}"
    return (f"{rule['or']} or {text}" if "or" in rule else text) + why


def in_range(value, rule: dict) -> bool:
    if "or" in rule and value == rule["or"]:
        return True
    if "choices" in rule:
        return value in rule["choices"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if "min" in rule and value < rule["min"]:
        return False
    if "above" in rule and value <= rule["above"]:
        return False
    return not ("max" in rule and value > rule["max"])


def check_ranges(cls: type, values: dict, section: str) -> None:
    """Raise ConfigError for the first value of `values` (field name -> coerced value) outside
    its field's declared range (see RANGE_KEYS), naming key, value and the valid range."""
    for f in dataclasses.fields(cls):
        rule = field_rule(cls, f.name)
        if not rule or f.name not in values:
            continue
        value = values[f.name]
        several = isinstance(value, (tuple, list))
        for item in value if several else (value,):
            if in_range(item, rule):
                continue
            what = f"{section}.{f.name}={_show(value)}" + (f": {_show(item)}" if several else "")
            if "choices" in rule:
                raise ConfigError(f"{what} is not a valid choice; valid: {describe_range(rule)}")
            raise ConfigError(f"{what} is out of range; valid: {'each ' if several else ''}{describe_range(rule)}")


def field_rule(cls: type, name: str) -> dict:
    """The range of field `name`: its own metadata, or that of the nearest base class declaring one
    (a subclass that only changes a default, e.g. KTH's `channels: int = 1`, keeps the rule)."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        rule = {k: v for k, v in f.metadata.items() if k in RANGE_KEYS} if f is not None else {}
        if rule:
            return rule
    return {}


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


LOGGERS = ("jsonl", "tensorboard", "wandb")  # train.loggers: each one's class in benchmarks/loggers.py


@dataclass(frozen=True)
class TrainConfig:
    steps: int = field(default=0, metadata={"min": 0})  # optimizer steps; 0 = derive from epochs
    epochs: float = field(default=300.0, metadata={"above": 0})  # passes over the training videos (when steps == 0)
    batch_size: int = field(default=50, metadata={"min": 1})  # sequences per batch (official: 50; the paper: 100)
    seq_len: int = field(default=100, metadata={"min": 1})  # frames per training sequence (a window of a video)
    optimizer: str = field(default="adam", metadata={"choices": ("adam",)})  # the only optimizer of the paper's models
    lr: float = field(default=3e-4, metadata={"above": 0})  # Adam learning rate
    adam_eps: float = field(default=1e-4, metadata={"min": 0})  # Adam epsilon
    # torch (PyTorch Adam) | hat (TF/Keras epsilon-hat): benchmarks/optim.py
    adam_eps_form: str = field(
        default="torch", metadata={"choices": ("torch", "hat"), "why": "PyTorch Adam; TensorFlow/Keras epsilon-hat"}
    )
    amsgrad: bool = False  # Adam's AMSGrad variant (the official VTA's optimizer)
    clip_grad: float = field(default=10000.0, metadata={"min": 0})  # global-norm clip; 0 = off (official: 10000)
    log_every: int = field(default=10, metadata={"min": 1})  # steps between JSONL log lines
    ckpt_every: int = field(default=200, metadata={"min": 1})  # steps between checkpoints (and always at the end)
    deterministic: bool = True  # torch deterministic algorithms (bit-identical resume on CPU)
    skip_nonfinite: bool = False  # skip (and log) batches with a non-finite loss instead of stopping
    amp: str = field(
        default="off", metadata={"choices": ("off", "bf16")}
    )  # bf16 autocast in training (CUDA, CPU): off | bf16
    num_threads: int = field(default=0, metadata={"min": 0})  # torch CPU threads; 0 = torch's default
    # batches made ahead in a background thread (pinned memory and an async copy on CUDA); 0 = off.
    # The same batches in the same order: operational, not part of the run's hash (benchmarks/prefetch.py)
    prefetch: int = field(default=2, metadata={"min": 0})
    # where training can be watched (benchmarks/loggers.py): jsonl (train.jsonl, always on), tensorboard, wandb
    loggers: tuple[str, ...] = field(default=("jsonl",), metadata={"choices": LOGGERS})
    eval_every: int = field(default=0, metadata={"min": 0})  # steps between quick looks (a sample strip); 0 = none
    eval_videos: int = field(default=8, metadata={"min": 0})  # validation videos of its val/ssim, val/psnr (if any)
    val_horizon: int = field(default=100, metadata={"min": 1})  # predicted frames of the quick look (<= the horizon)


I3D_FRAMES = "I3D (FVD) needs at least 9 frames"


@dataclass(frozen=True)
class EvalConfig:
    context: int = field(default=36, metadata={"min": 1})  # context frames handed to the model; it predicts the rest
    n_videos: int = field(default=0, metadata={"min": 0})  # test videos evaluated; 0 = all
    n_samples: int = field(default=1, metadata={"min": 1})  # samples per test video (best-of-N and mean over samples)
    batch_size: int = field(default=8, metadata={"min": 1})  # test videos per batch
    # metrics computed: ssim, psnr, lpips (per frame), fvd (per set), ssim_official, psnr_official (rundir.stats)
    metrics: tuple[str, ...] = field(default=("ssim", "psnr"), metadata={"choices": tuple(METRICS)})
    # standard | official (the official CW-VAE evaluation, see metrics)
    mode: str = field(default="standard", metadata={"choices": ("standard", "official")})
    save_samples: int = field(default=4, metadata={"min": 0})  # test videos whose predictions go to samples/
    chunk: int = field(default=100, metadata={"min": 1})  # predicted frames held at once per batch (CW-VAE streams)
    use_obs: tuple[bool, ...] = ()  # CW-VAE: per level (bottom first), does the posterior see the context? () = all
    # FVD per horizon (paper Fig E.1): FVD of the first L predicted frames for each L here that is
    # shorter than the prediction, plus the whole prediction (the Table 1 number). I3D needs L >= 9.
    fvd_lengths: tuple[int, ...] = field(default=(16, 32, 64, 128, 256, 512), metadata={"min": 9, "why": I3D_FRAMES})
    # test videos used for FVD (the first ones); 0 = every evaluated video
    fvd_videos: int = field(default=0, metadata={"min": 2, "or": 0, "why": "a covariance needs 2 videos"})
    # predicted frames FVD covers ("whole prediction"); 0 = all
    fvd_frames: int = field(default=0, metadata={"min": 9, "or": 0, "why": I3D_FRAMES})
    # test: the test split. val: the data.val_videos training videos held out (never trained on),
    # predicted over their whole length after the context (what `bench.py tune` scores trials on)
    split: str = field(default="test", metadata={"choices": ("test", "val")})

    def __post_init__(self):
        repeated = sorted({m for m in self.metrics if self.metrics.count(m) > 1})
        if repeated:
            raise ConfigError(f"eval.metrics={_show(self.metrics)} names {', '.join(repeated)} twice; list each once")


# ---------------------------------------------------------------- YAML


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"malformed YAML at {where}: {problem}; fix that line") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top, got {type(data).__name__}")
    return data


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_set(item: str) -> tuple[list[str], Any]:
    """'train.lr=1e-3' -> (['train', 'lr'], 0.001). Values parse as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def nested(keys: list[str], value: Any) -> dict:
    out: Any = value
    for k in reversed(keys):
        out = {k: out}
    return out


# ---------------------------------------------------------------- typing


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Coerce a YAML/CLI value to a dataclass field's type, or raise naming key and value."""
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if hint is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
        if origin in (tuple, list):
            (item_hint, *_) = typing.get_args(hint) or (str,)
            if isinstance(value, str):
                value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            return tuple(coerce(v, item_hint, key) for v in value)
    except (TypeError, ValueError):
        name = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{key}: expected {name}, got {value!r}") from None
    return value


def build_dataclass(cls: type, values: dict, section: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise ConfigError(unknown_key_message(section, key, names))
    kwargs = {k: coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    check_ranges(cls, kwargs, section)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{section}: {e}") from None


def unknown_key_message(section: str, key: str, valid: list[str]) -> str:
    near = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {section}.{near[0]}? " if near else ""
    return f"unknown key {section}.{key}; {hint}valid keys in {section}: {', '.join(valid)}"


# ---------------------------------------------------------------- the resolved config


@dataclass(frozen=True)
class RunConfig:
    model_name: str
    dataset: str
    preset: str
    seed: int
    model: Any  # the model's config dataclass
    data: Any  # the dataset's config dataclass
    train: TrainConfig
    eval: EvalConfig
    model_file_sha256: str = ""  # for a model given as path/to/file.py:Class
    weights_sha256: str = ""  # for a run that evaluates exported weights (--from-weights) instead of training
    extra: dict = field(default_factory=dict)
    # Set when settings came from a tuning study (benchmarks/tuning): where from and which keys.
    # In config.yaml (so in the run's identity) only when set: untuned runs keep their directories.
    tuned: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {
            "model_name": self.model_name,
            "dataset": self.dataset,
            "preset": self.preset,
            "seed": self.seed,
        }
        if self.model_file_sha256:
            d["model_file_sha256"] = self.model_file_sha256
        if self.weights_sha256:
            d["weights_sha256"] = self.weights_sha256
        if self.tuned:
            d["tuned"] = dict(self.tuned)
        for section in SECTIONS:
            value = getattr(self, section)
            d[section] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value)
        for k, v in d["eval"].items():
            if isinstance(v, tuple):
                d["eval"][k] = list(v)
        return d

    def hash(self) -> str:
        """Identity of the run: its eval key (rundir/run.py), the last part of its directory name."""
        return eval_key(self.to_dict())

    def run_dir(self, out: Path) -> Path:
        """<out>/runs/<dataset>/<model>/<preset>-s<seed>-<hash>."""
        return run_path(out, self.to_dict())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def model_class(self):
        from models.base import get_model_class

        return get_model_class(self.model_name)

    def build_model(self):
        kwargs = dataclasses.asdict(self.model) if dataclasses.is_dataclass(self.model) else dict(self.model)
        return self.model_class(**kwargs)

    @property
    def total_steps(self) -> int:
        if self.train.steps > 0:
            return self.train.steps
        n_train = getattr(self.data, "n_train", 0) - self.data.val_videos  # epochs over the videos trained on
        if n_train <= 0:
            raise ConfigError("train.steps is 0 and the dataset size is unknown: set train.steps")
        windows = max(1, getattr(self.data, "train_length", self.train.seq_len) // self.train.seq_len)
        return max(1, round(self.train.epochs * n_train * windows / self.train.batch_size))


MAX_SEED = 2**32 - 1  # numpy's seed range (torch's is wider)


def check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed {seed}: a seed is an integer in [0, {MAX_SEED}]")


def model_yaml(name: str) -> dict:
    """configs/models/<name>.yaml, with `inherits:` resolved (see `inherit`)."""
    path = CONFIG_DIR / "models" / f"{name}.yaml"
    return inherit(load_yaml(path), path, (name,)) if path.exists() else {}


def inherit(data: dict, path: Path, seen: tuple[str, ...]) -> dict:
    """A model YAML with `inherits: <registered model>` is that model's YAML (its own `inherits`
    resolved too) with this file's keys merged over it: `rssm.yaml` is `cwvae.yaml` with
    `levels: 1`, so every dataset and preset section stays CW-VAE's."""
    base = data.get("inherits")
    if base is None:
        return data
    base_path = CONFIG_DIR / "models" / f"{base}.yaml"
    if not base_path.exists():
        valid = ", ".join(sorted(p.stem for p in (CONFIG_DIR / "models").glob("*.yaml")))
        raise ConfigError(f"{path}: inherits {base!r}, which has no YAML; valid: {valid}")
    if base in seen:
        raise ConfigError(f"{path}: `inherits: {base}` makes a cycle ({' -> '.join((*seen, base))}); remove one")
    own = {k: v for k, v in data.items() if k != "inherits"}
    return merge(inherit(load_yaml(base_path), base_path, (*seen, base)), own)


def dataset_yaml(name: str) -> dict:
    path = CONFIG_DIR / "datasets" / f"{name}.yaml"
    return load_yaml(path) if path.exists() else {}


def preset_names() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "presets").glob("*.yaml"))


def _model_yaml(model_cls, model: str) -> dict:
    """The model's YAML: configs/models/<name>.yaml, or for `path/to/file.py:Name` the file
    `path/to/file.yaml` next to it (same layout: model, train, datasets, presets), if present."""
    if ":" in model:
        from models.plugins import split_model_spec

        path = split_model_spec(model)[0].with_suffix(".yaml")
        return inherit(load_yaml(path), path, (path.stem,)) if path.is_file() else {}
    return model_yaml(getattr(model_cls, "registry_name", model))


def resolve_config(
    model: str,
    dataset: str = "mmnist",
    preset: str = DEFAULT_PRESET,
    sets: list[str] | tuple[str, ...] = (),
    seed: int = 0,
    overrides: dict | None = None,
) -> RunConfig:
    """Build the RunConfig of (model, dataset, preset) with `--set` items and `overrides` applied."""
    from datasets.base import get_dataset_class
    from models.base import get_model_class

    try:
        model_cls = get_model_class(model)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    try:
        data_cls = get_dataset_class(dataset)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    if preset not in preset_names():
        raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(preset_names())}")
    check_seed(seed)

    m_yaml = _model_yaml(model_cls, model)
    d_yaml = dataset_yaml(dataset)
    p_yaml = load_yaml(CONFIG_DIR / "presets" / f"{preset}.yaml")

    def sections(d: dict, where: str) -> dict:
        extra = set(d) - set(SECTIONS)
        if extra:
            raise ConfigError(f"{where}: unknown section(s) {sorted(extra)}; valid: {', '.join(SECTIONS)}")
        return d

    def body(d: dict) -> dict:
        return {k: v for k, v in d.items() if k in SECTIONS}

    layers = [
        ("dataset YAML", body(d_yaml)),
        ("model YAML", body(m_yaml)),
        (f"model YAML datasets.{dataset}", (m_yaml.get("datasets") or {}).get(dataset, {})),
        (f"preset {preset}", p_yaml),
        (f"model YAML presets.{preset}", (m_yaml.get("presets") or {}).get(preset, {})),
        (f"dataset YAML presets.{preset}", (d_yaml.get("presets") or {}).get(preset, {})),
    ]
    merged: dict = {s: {} for s in SECTIONS}
    for where, layer in layers:
        merged = merge(merged, sections(layer, where))
    for item in sets:
        keys, value = parse_set(item)
        if keys[0] not in SECTIONS or len(keys) != 2:
            raise ConfigError(f"--set {item!r}: keys look like section.key with section in {', '.join(SECTIONS)}")
        merged = merge(merged, nested(keys, value))
    for section, values in (overrides or {}).items():
        merged = merge(merged, {section: values})

    data_values = {"name": dataset, **merged["data"]}
    data_cfg = build_dataclass(data_cls.config_class, data_values, "data")
    if data_cfg.name != dataset:
        raise ConfigError(f"data.name is {data_cfg.name!r} but the run's dataset is {dataset!r}; use --dataset")

    model_values = dict(merged["model"])
    model_config_cls = model_cls.config_class
    if model_config_cls is not None:
        fields = {f.name for f in dataclasses.fields(model_config_cls)}
        for inherited in ("channels", "dec_std"):  # the dataset decides these unless the model sets them
            if inherited in fields:
                model_values.setdefault(inherited, getattr(data_cfg, inherited))
        model_cfg = build_dataclass(model_config_cls, model_values, "model")
    else:
        if model_values:
            raise ConfigError(f"model {model!r} takes no hyperparameters, got {sorted(model_values)}")
        model_cfg = {}

    sha = ""
    if ":" in model:
        from models.plugins import split_model_spec
        from rundir.atomic import sha256_file

        sha = sha256_file(split_model_spec(model)[0])
    return RunConfig(
        model_name=model,
        dataset=dataset,
        preset=preset,
        seed=seed,
        model=model_cfg,
        data=data_cfg,
        train=build_dataclass(TrainConfig, merged["train"], "train"),
        eval=build_dataclass(EvalConfig, merged["eval"], "eval"),
        model_file_sha256=sha,
    )


def resolve_data_config(name: str, preset: str | None = None, sets: list[str] | tuple[str, ...] = ()):
    """A dataset's config alone: its YAML (+ the preset's and the YAML's `presets:` data sections,
    + `--set data.k=v`). None for `preset`: the dataset's own YAML, as the paper preset has it."""
    from datasets.base import get_dataset_class

    try:
        cls = get_dataset_class(name)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    d_yaml = dataset_yaml(name)
    values = dict(d_yaml.get("data") or {})
    if preset:
        if preset not in preset_names():
            raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(preset_names())}")
        values = merge(values, load_yaml(CONFIG_DIR / "presets" / f"{preset}.yaml").get("data") or {})
        values = merge(values, ((d_yaml.get("presets") or {}).get(preset) or {}).get("data") or {})
    for item in sets:
        keys, value = parse_set(item)
        if len(keys) != 2 or keys[0] != "data":
            raise ConfigError(f"--set {item!r}: only data.KEY=VALUE applies to a dataset")
        values[keys[1]] = value
    return build_dataclass(cls.config_class, {**values, "name": name}, "data")


def build_model(name: str, dataset: str = "mmnist", preset: str = DEFAULT_PRESET, **overrides):
    """A ready model: `name` at `preset` for `dataset`, with `model.*` keys overridden
    (re-exported as `models.build_model`).

    >>> model = build_model("cwvae", dataset="mmnist", preset="paper")
    """
    return resolve_config(model=name, dataset=dataset, preset=preset, overrides={"model": overrides}).build_model()


def config_from_dict(d: dict) -> RunConfig:
    """Rebuild a RunConfig from a saved config.yaml (the run directory's)."""
    overrides = {s: d.get(s, {}) for s in SECTIONS}
    cfg = resolve_config(d["model_name"], d["dataset"], d["preset"], seed=d.get("seed", 0), overrides=overrides)
    return dataclasses.replace(cfg, tuned=dict(d.get("tuned") or {}))
