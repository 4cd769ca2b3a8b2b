"""Convert a checkpoint of the official CW-VAE code (vaibhavsaxena11/cwvae) into harness weights.

    python tools/convert_official_cwvae.py OFFICIAL_RUN --out cwvae_mmnist.safetensors
    python bench.py --model cwvae --dataset mmnist_official --preset paper --from-weights cwvae_mmnist.safetensors

OFFICIAL_RUN is what the official train.py wrote: the experiment directory (with config.yml
and model/), a checkpoint directory (model/, model_5000/, ...; its parent holds config.yml),
or a checkpoint prefix (.../model/model.ckpt). The TF variables map one to one onto the
harness's CW-VAE (models/official_cwvae.py; optimizer slots are left out); the model is
`cwvae`, `notmpabs` (factor 1) or `rssm` (one level) as the official config says. Writes
the weights as safetensors and the sidecar JSON that `bench.py export` writes (model name,
resolved model config, parameter count, sha256 of the weights, ...).

Reading a TF checkpoint needs tensorflow (not a cwbench dependency: `pip install
tensorflow-cpu`). Exit 0 on success, 2 with a one-line message otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

# the official configs' `dataset` -> the harness dataset made from the same archive
DATASETS = {"mmnist": "mmnist_official", "minerl": "minerl", "mazes": "mazes"}
NEEDS_TF = (
    "reading an official TF checkpoint needs tensorflow, which cwbench does not depend on: "
    "pip install tensorflow-cpu (into this environment or another one that has cwbench's requirements)"
)


class ConvertError(ValueError):
    """A user error: the message says what is wrong and what to do."""


def find_checkpoint(path: Path) -> tuple[str, Path]:
    """(checkpoint prefix, config.yml) of an official run, a checkpoint directory or a prefix."""
    import tensorflow as tf

    if path.is_dir() and (path / "model").is_dir():  # the experiment directory
        path = path / "model"
    if path.is_dir():
        prefix = tf.train.latest_checkpoint(str(path))
        if prefix is None:
            prefix = str(path / "model.ckpt") if (path / "model.ckpt.index").exists() else None
        if prefix is None:
            raise ConvertError(f"{path} holds no TF checkpoint (model.ckpt.index): give the official run's directory")
    else:
        prefix = str(path)
        if not Path(prefix + ".index").exists():
            raise ConvertError(f"{prefix}.index does not exist: give the official run's directory or a .ckpt prefix")
    config = Path(prefix).parent.parent / "config.yml"
    return prefix, config


def read_variables(prefix: str) -> dict:
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise ConvertError(f"cannot read the TF checkpoint {prefix}: {str(e).splitlines()[0]}") from None
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def convert(path: Path, out: Path, config_path: Path | None = None, dataset: str | None = None) -> dict:
    """Write `out` (.safetensors) and its sidecar from the official checkpoint at `path`; returns the sidecar."""
    import yaml

    from benchmarks.config import resolve_config
    from benchmarks.model_weights import check_suffix, write_weights
    from models.official_cwvae import OfficialWeightsError, harness_config, registry_name, to_state_dict

    check_suffix(out)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise ConvertError(NEEDS_TF) from None
    prefix, found_config = find_checkpoint(path)
    config_path = config_path or found_config
    if not config_path.is_file():
        raise ConvertError(
            f"{config_path} does not exist: pass --config with the config.yml the official train.py wrote for this run"
        )
    official = yaml.safe_load(config_path.read_text()) or {}
    variables = read_variables(prefix)
    try:
        model_config = harness_config(variables, official)
        state = to_state_dict(variables)
    except OfficialWeightsError as e:
        raise ConvertError(f"{prefix}: {e}") from None
    name = registry_name(model_config)
    dataset = dataset or DATASETS.get(str(official.get("dataset")))
    if dataset is None:
        raise ConvertError(
            f"the official config's dataset {official.get('dataset')!r} is not one of {sorted(DATASETS)}: pass --dataset"
        )
    cfg = resolve_config(name, dataset, "paper", overrides={"model": model_config})
    model = cfg.build_model()
    model.load_state_dict(state, strict=True)  # the same names and shapes, or a clear torch error
    step = next((int(variables[k]) for k in ("optimizer/Adam/iter", "step") if k in variables), 0)
    info = {
        "model": name,
        "model_config": cfg.to_dict()["model"],
        "dataset": dataset,
        "preset": "paper",
        "seed": 0,
        "params": model.num_params(),
        "config_hash": "",  # not trained by cwbench
        "code_commit": "",  # the official code's commit is not recorded in its checkpoints
        "step": step,
        "total_steps": step,
        "source": f"official CW-VAE checkpoint {prefix} (github.com/vaibhavsaxena11/cwvae), "
        "converted by tools/convert_official_cwvae.py",
    }
    return write_weights(out, model.state_dict(), info)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("official", type=Path, help="the official run directory, a checkpoint directory or a .ckpt prefix")
    p.add_argument("--out", type=Path, required=True, help="output .safetensors (its sidecar: the same name .json)")
    p.add_argument("--config", type=Path, help="the run's config.yml (default: beside the checkpoint directory)")
    p.add_argument("--dataset", help="harness dataset (default: from the official config: mmnist -> mmnist_official)")
    args = p.parse_args(argv)
    from benchmarks.model_weights import WeightsFileError

    try:
        info = convert(args.official, args.out, args.config, args.dataset)
    except (ConvertError, WeightsFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out} ({info['model']}, {info['params']:,} parameters, step {info['step']}, "
        f"sha256 {info['weights_sha256'][:12]}...) and {args.out.with_suffix('.json')}"
    )
    print(
        f"evaluate them: python bench.py --model {info['model']} --dataset {info['dataset']} --preset paper "
        f"--from-weights {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
