"""Exported model weights: a safetensors file and a JSON sidecar beside it.

    model.safetensors   the model's state_dict: tensors only, so loading it runs no code
    model.json          what they are (`FIELDS`), with the sha256 of model.safetensors

`write_weights` / `read_weights` are the one pair that every writer (`bench.py export`,
tools/convert_official_cwvae.py) and every reader (`bench.py --from-weights`) uses.
`check_fits` refuses weights that do not fit a model, naming the first tensor that differs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from rundir.atomic import atomic_open, write_json

FORMAT = "cwbench-weights/1"
SUFFIX = ".safetensors"
# the sidecar's fields; a writer gives all but the last two, which write_weights fills in
FIELDS = {
    "model": "registry name (or path/to/file.py:Class) of the model",
    "model_config": "the resolved `model` section the weights were trained with",
    "dataset": "dataset trained on",
    "preset": "preset trained at",
    "seed": "training seed",
    "params": "number of trainable parameters",
    "config_hash": "hash of the training run's resolved config ('' when not trained by cwbench)",
    "code_commit": "git commit of the code that trained them ('' when unknown)",
    "step": "training step of the weights",
    "total_steps": "steps the training was configured for",
    "source": "where they came from (a run directory, an official checkpoint)",
    "format": f"always {FORMAT!r}",
    "weights_sha256": "sha256 of the .safetensors file",
}


class WeightsFileError(ValueError):
    """Exported weights that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class ExportedWeights:
    path: Path
    tensors: dict  # name -> Tensor, on the CPU
    info: dict  # the sidecar
    sha256: str


def sidecar_path(path: str | os.PathLike) -> Path:
    """model.safetensors -> model.json"""
    return Path(path).with_suffix(".json")


def check_suffix(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix != SUFFIX:
        raise WeightsFileError(f"{path}: weights files end in {SUFFIX} (their sidecar is the same name with .json)")
    return path


def write_weights(path: str | os.PathLike, tensors: dict, info: dict) -> dict:
    """Write `tensors` to `path` (.safetensors) and `info` plus format and sha256 to its sidecar; returns the sidecar.

    Both files are written atomically; the sidecar last, so a sidecar always describes a complete file."""
    from safetensors.torch import save

    path = check_suffix(path)
    missing = sorted(set(FIELDS) - {"format", "weights_sha256"} - set(info))
    if missing:
        raise ValueError(f"sidecar fields missing: {missing} (see benchmarks.model_weights.FIELDS)")
    plain = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}  # no shared storage
    data = save(plain)
    sidecar = {**info, "format": FORMAT, "weights_sha256": hashlib.sha256(data).hexdigest()}
    with atomic_open(path, "wb") as f:
        f.write(data)
    write_json(sidecar_path(path), sidecar)
    return sidecar


def read_weights(path: str | os.PathLike) -> ExportedWeights:
    """The tensors and sidecar of an exported file, its sha256 checked against the sidecar's."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load

    path = check_suffix(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path} does not exist; make it with `python bench.py export RUN_DIR --out {path}`")
    if not side.is_file():
        raise WeightsFileError(
            f"{side} is missing: the sidecar says which model and config {path.name} holds. Export the weights with "
            "`python bench.py export RUN_DIR --out FILE.safetensors`, which writes both files"
        )
    try:
        info = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise WeightsFileError(f"{side} is unreadable ({e}); export the weights again") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise WeightsFileError(f"{side} is not a cwbench weights sidecar (format {FORMAT!r}); export the weights again")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha != info.get("weights_sha256"):
        raise WeightsFileError(
            f"{path} has sha256 {sha[:12]}..., but {side.name} says {str(info.get('weights_sha256'))[:12]}...: the "
            "file was changed or the sidecar belongs to another file; export the weights again"
        )
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise WeightsFileError(f"{path} is not a readable safetensors file ({e}); export the weights again") from None
    return ExportedWeights(path=path, tensors=tensors, info=info, sha256=sha)


def check_fits(expected: dict, weights: ExportedWeights) -> None:
    """Refuse `weights` unless they have exactly the tensors of `expected` (a state_dict), in the same shapes."""
    hint = (
        f"the weights were made for another model or config (their sidecar: model {weights.info.get('model')}, "
        f"preset {weights.info.get('preset')})"
    )
    for name, tensor in expected.items():
        if name not in weights.tensors:
            raise WeightsFileError(f"{weights.path} has no tensor {name!r} {tuple(tensor.shape)}: {hint}")
        theirs = weights.tensors[name]
        if tuple(theirs.shape) != tuple(tensor.shape):
            raise WeightsFileError(
                f"tensor {name!r} has shape {tuple(theirs.shape)} in {weights.path} but {tuple(tensor.shape)} in this "
                f"model: {hint}"
            )
    extra = [name for name in weights.tensors if name not in expected]
    if extra:
        raise WeightsFileError(f"{weights.path} has tensor {extra[0]!r}, which this model does not: {hint}")


def load_into(model: torch.nn.Module, weights: ExportedWeights) -> None:
    """Check that `weights` fit `model`, then load them (strictly)."""
    check_fits(model.state_dict(), weights)
    model.load_state_dict(weights.tensors, strict=True)


def check_config(weights: ExportedWeights, model_name: str, model_config: dict) -> None:
    """Refuse weights whose sidecar names another model, or a model config that differs from `model_config`."""
    from benchmarks.checkpoint import differing_keys
    from rundir.run import model_label

    theirs = str(weights.info.get("model", ""))
    if model_label(theirs) != model_label(model_name):
        raise WeightsFileError(
            f"{weights.path} holds weights of model {theirs!r}, not {model_name!r}; pass --model {theirs}"
        )
    diffs = differing_keys(weights.info.get("model_config") or {}, model_config)
    if diffs:
        key, trained, here = diffs[0]
        raise WeightsFileError(
            f"model.{key} is {here!r} here but the weights in {weights.path} were trained with {trained!r}; "
            f"pass --preset {weights.info.get('preset')} (theirs) or --set model.{key}={trained}"
        )


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, warn=None) -> dict:
    """Write the model weights of `run_dir`'s newest readable checkpoint to `out` (+ sidecar); returns the sidecar."""
    import yaml

    from benchmarks.checkpoint import RunCheckpoints
    from rundir.run import read_config, read_status

    run_dir, out = Path(run_dir), check_suffix(out)
    if not (run_dir / "config.yaml").is_file():
        raise WeightsFileError(
            f"{run_dir} is not a run directory (no config.yaml); give a directory under results/runs/"
        )
    try:
        cfg = read_config(run_dir)
        status = read_status(run_dir)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise WeightsFileError(f"{run_dir}: config.yaml or status.json is unreadable ({e})") from None
    found = RunCheckpoints(run_dir, warn).load()
    if found is None:
        raise WeightsFileError(f"{run_dir} has no checkpoint to export; train it first (the same bench.py command)")
    state, _ = found
    params = status.get("params")
    if params is None:  # a run directory from before status.json held it: count on a fresh model
        from benchmarks.config import config_from_dict

        params = config_from_dict(cfg).build_model().num_params()
    info = {
        "model": cfg["model_name"],
        "model_config": cfg.get("model", {}),
        "dataset": cfg["dataset"],
        "preset": cfg["preset"],
        "seed": cfg.get("seed", 0),
        "params": int(params),
        "config_hash": state.get("config_hash", ""),
        "code_commit": status.get("git_commit", ""),
        "step": int(state["step"]),
        "total_steps": int(state.get("total_steps", state["step"])),
        "source": str(run_dir.resolve()),
    }
    return write_weights(out, state["model"], info)
