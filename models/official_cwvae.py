"""The official CW-VAE's TensorFlow variables (vaibhavsaxena11/cwvae at 62dd505) as the harness's
CW-VAE state_dict: the one place that knows the mapping. Used by tests/test_cwvae_official.py
(weights from fixtures made by the official code) and tools/convert_official_cwvae.py (an
official checkpoint -> harness weights). Needs numpy and torch only, never TensorFlow.

The official variables have Keras' automatic names, e.g. `scan_2/while/cell_0/dense_22/kernel`
(cells.py creates its layers without names). A layer is therefore identified by its scope
(`encoder_convdense`, `decoder_conv`, `cell_<level>`), its type (`conv2d`, `dense`, `gru_cell`,
`conv2d_transpose`) and the order of creation, which is the order of the numeric suffix that
Keras appends (`dense`, `dense_1`, ...). Per scope that order is fixed by the official code:

    encoder_convdense  conv2d x4 (h1..h4_conv); dense: `enc_dense_layers` per level >= 2 (cnns.py)
    cell_<l>           dense: prior_h1, prior_h2, prior_mean, prior_stddev, posterior_h1,
                       posterior_h2, posterior_mean, posterior_stddev; gru_cell (cells.py)
    decoder_conv       dense (h1), conv2d_transpose x4 (h2, h3, h4, out)

Layouts: Dense kernel (in, out) -> Linear weight (out, in); Conv2D kernel (kh, kw, in, out)
and Conv2DTranspose kernel (kh, kw, out, in) -> (out, in, kh, kw) and (in, out, kh, kw), both
transpose(3, 2, 0, 1); GRUCell kernel (in, 3H) and recurrent_kernel (H, 3H) with gate blocks
(z, r, h), bias (2, 3H) = (input, recurrent) -> weight_ih (3H, in), weight_hh (3H, H), bias_ih,
bias_hh with torch's gate order (r, z, n).
"""

from __future__ import annotations

import re

import numpy as np
import torch

CELL_DENSES = [
    "prior_in",  # prior_h1_dense
    "prior_hidden",  # prior_h2_dense
    "prior_head.mean",  # prior_mean_dense
    "prior_head.std",  # prior_stddev_dense
    "post_hidden1",  # posterior_h1_dense
    "post_hidden2",  # posterior_h2_dense
    "post_head.mean",  # posterior_mean_dense
    "post_head.std",  # posterior_stddev_dense
]
_LAYER = re.compile(r"^(?P<type>conv2d_transpose|conv2d|dense|gru_cell)(?:_(?P<index>\d+))?$")
_CELL = re.compile(r"^cell_(?P<level>\d+)(?:_\d+)?$")  # cell_2, or cell_2_1 where the posterior re-enters it
_PARAMS = ("kernel", "recurrent_kernel", "bias")


class OfficialWeightsError(ValueError):
    """Variables that are not the official CW-VAE's; the message says which and why."""


def parse(name: str) -> tuple[str, str, int, str] | None:
    """'scan_2/while/cell_0/dense_22/kernel:0' -> ('cell_0', 'dense', 22, 'kernel'); None for a
    variable outside the model (optimizer slots, step counters)."""
    parts = name.split(":")[0].split("/")
    if len(parts) < 3 or parts[0] == "optimizer" or parts[-1] not in _PARAMS:
        return None
    layer = _LAYER.match(parts[-2])
    if layer is None:
        return None
    scope = parts[-3]
    if scope not in ("encoder_convdense", "decoder_conv") and not _CELL.match(scope):
        return None
    return scope, layer["type"], int(layer["index"] or 0), parts[-1]


def group_layers(variables: dict[str, np.ndarray]) -> dict[tuple[str, str], list[dict[str, np.ndarray]]]:
    """{(scope, type): [layer params, in creation order]}, scope 'cell_<l>' normalised to the level."""
    found: dict[tuple[str, str], dict[int, dict[str, np.ndarray]]] = {}
    for name, value in variables.items():
        parsed = parse(name)
        if parsed is None:
            continue
        scope, kind, index, param = parsed
        cell = _CELL.match(scope)
        key = (f"cell_{int(cell['level'])}" if cell else scope, kind)
        layer = found.setdefault(key, {}).setdefault(index, {})
        if param in layer:
            raise OfficialWeightsError(f"variable {name} appears twice (two models in one checkpoint?)")
        layer[param] = np.asarray(value, dtype=np.float32)
    return {key: [layers[i] for i in sorted(layers)] for key, layers in found.items()}


def _expect(layers: dict, key: tuple[str, str], count: int) -> list[dict[str, np.ndarray]]:
    got = layers.get(key, [])
    if len(got) != count:
        raise OfficialWeightsError(
            f"expected {count} {key[1]} layer(s) in scope {key[0]} of the official CW-VAE, found {len(got)}"
        )
    return got


def _gru_gates(x: np.ndarray, hidden: int) -> np.ndarray:
    """Keras gate blocks (z, r, h) along the last axis -> torch's (r, z, n)."""
    z, r, h = (x[..., i * hidden : (i + 1) * hidden] for i in range(3))
    return np.concatenate([r, z, h], axis=-1)


def infer_config(variables: dict[str, np.ndarray]) -> dict:
    """The CWVAEConfig fields that the weights determine: levels, stoch, deter, hidden, cnn_depth,
    channels, and with two or more levels enc_dense_layers and enc_dense_hidden. (factor,
    min_std and dec_std are not in the weights: `config_from_official` reads them.)"""
    layers = group_layers(variables)
    levels = len({k[0] for k in layers if k[0].startswith("cell_")})
    if levels == 0 or any((f"cell_{lvl}", "gru_cell") not in layers for lvl in range(levels)):
        raise OfficialWeightsError(
            "no complete set of official CW-VAE cells (scopes cell_0, cell_1, ... with a gru_cell each) among "
            f"{len(variables)} variables: is this a checkpoint of vaibhavsaxena11/cwvae?"
        )
    convs = _expect(layers, ("encoder_convdense", "conv2d"), 4)
    cell = _expect(layers, ("cell_0", "dense"), len(CELL_DENSES))
    gru = _expect(layers, ("cell_0", "gru_cell"), 1)[0]
    config = {
        "levels": levels,
        "stoch": int(cell[2]["kernel"].shape[1]),
        "deter": int(gru["recurrent_kernel"].shape[0]),
        "hidden": int(cell[0]["kernel"].shape[1]),
        "cnn_depth": int(convs[0]["kernel"].shape[3]),
        "channels": int(convs[0]["kernel"].shape[2]),
    }
    enc_denses = layers.get(("encoder_convdense", "dense"), [])
    if levels > 1:
        if len(enc_denses) % (levels - 1) or not enc_denses:
            raise OfficialWeightsError(f"{len(enc_denses)} encoder dense layers do not split over {levels - 1} levels")
        config["enc_dense_layers"] = len(enc_denses) // (levels - 1)
        if config["enc_dense_layers"] > 1:
            config["enc_dense_hidden"] = int(enc_denses[0]["kernel"].shape[1])
    return config


def config_from_official(official: dict) -> dict:
    """The CWVAEConfig fields that an official config.yml (train.py writes one per run) sets:
    factor, min_std, dec_std, and enc_dense_layers / enc_dense_hidden where it has them."""
    missing = [k for k in ("tmp_abs_factor", "cell_min_stddev", "dec_stddev") if official.get(k) is None]
    if missing:
        raise OfficialWeightsError(f"the official config lacks {missing}; pass the run's config.yml")
    config = {
        "factor": int(official["tmp_abs_factor"]),
        "min_std": float(official["cell_min_stddev"]),
        "dec_std": float(official["dec_stddev"]),
    }
    for ours, theirs in (("enc_dense_layers", "enc_dense_layers"), ("enc_dense_hidden", "enc_dense_embed_size")):
        if official.get(theirs) is not None:
            config[ours] = int(official[theirs])
    return config


def harness_config(variables: dict[str, np.ndarray], official: dict) -> dict:
    """The whole CWVAEConfig of official weights and their config.yml; a config.yml that
    contradicts the weights is refused, naming the field."""
    from_weights = infer_config(variables)
    from_yaml = config_from_official(official)
    for key in sorted(set(from_weights) & set(from_yaml)):
        if from_weights[key] != from_yaml[key]:
            raise OfficialWeightsError(
                f"{key} is {from_yaml[key]} in the config but {from_weights[key]} in the weights: "
                "pass the config.yml of the run that wrote the checkpoint"
            )
    config = {**from_yaml, **from_weights}
    if config["levels"] == 1:
        config["factor"] = 1  # does nothing with one level; 1 is what `rssm` says (base_config.yml has 6)
    return config


def to_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Official variables (name -> array; optimizer slots and other extras are ignored) -> the
    state_dict of `CWVAE(**infer_config(variables), ...)`."""
    cfg = infer_config(variables)
    layers = group_layers(variables)
    out: dict[str, np.ndarray] = {}

    def dense(prefix: str, layer: dict) -> None:
        out[f"{prefix}.weight"] = layer["kernel"].T
        out[f"{prefix}.bias"] = layer["bias"]

    def conv(prefix: str, layer: dict) -> None:
        out[f"{prefix}.weight"] = layer["kernel"].transpose(3, 2, 0, 1)
        out[f"{prefix}.bias"] = layer["bias"]

    for i, layer in enumerate(_expect(layers, ("encoder_convdense", "conv2d"), 4)):
        conv(f"encoder.convs.{i}", layer)
    per_level = cfg.get("enc_dense_layers", 0)
    enc_denses = _expect(layers, ("encoder_convdense", "dense"), per_level * (cfg["levels"] - 1))
    for i, layer in enumerate(enc_denses):
        dense(f"level_mlps.{i // per_level}.{2 * (i % per_level)}", layer)  # Linear, ReLU, Linear, ...
    for level in range(cfg["levels"]):
        for name, layer in zip(CELL_DENSES, _expect(layers, (f"cell_{level}", "dense"), len(CELL_DENSES))):
            dense(f"cells.{level}.{name}", layer)
        gru = _expect(layers, (f"cell_{level}", "gru_cell"), 1)[0]
        hidden = cfg["deter"]
        out[f"cells.{level}.gru.weight_ih"] = _gru_gates(gru["kernel"], hidden).T
        out[f"cells.{level}.gru.weight_hh"] = _gru_gates(gru["recurrent_kernel"], hidden).T
        out[f"cells.{level}.gru.bias_ih"] = _gru_gates(gru["bias"][0], hidden)
        out[f"cells.{level}.gru.bias_hh"] = _gru_gates(gru["bias"][1], hidden)
    dense("decoder.dense", _expect(layers, ("decoder_conv", "dense"), 1)[0])
    for i, layer in enumerate(_expect(layers, ("decoder_conv", "conv2d_transpose"), 4)):
        conv(f"decoder.deconvs.{i}", layer)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def registry_name(config: dict) -> str:
    """The harness model that the official config is: rssm (one level), notmpabs (factor 1), cwvae."""
    if config["levels"] == 1:
        return "rssm"
    return "notmpabs" if config["factor"] == 1 else "cwvae"
