"""Make the CW-VAE / RSSM fixtures of tests/test_cwvae_official.py by running the official code
(run by hand, never by tests; see tests/data/README.md for the environment and command).

    python tests/data/make_cwvae_official.py --official /tmp/cwvae-official --out tests/data

`--official` is a checkout of github.com/vaibhavsaxena11/cwvae at 62dd505 (its cwvae.py,
cells.py, cnns.py, tools.py, train.py, loggers/). This script contains none of that code:
it imports it, builds the official model at a reduced size with the official
`build_model(cfg)`, trains it for a few steps with the official `train_setup` (Keras Adam,
global-norm clipping) and records, in float32:

    var/<TF variable name>     the initial weights (every trainable variable)
    video                      (B, T, H, W, C) uint8, the input (read as float32 / 255)
    noise                      (stoch,): the fixed noise of every latent sample (see below)
    enc<l>                     the encoder's embedding of level l, (B, ceil(T / k^l), E)
    prior_mean<l>, prior_std<l>, post_mean<l>, post_std<l>   the training unroll per level
    kl<l>                      KL(posterior || prior) per level and step, (B, T_l)
    loss, nll, kl              the official loss terms (divided by T, as logged)
    open_loop                  decoder means of the open-loop prediction from `context` frames
                               with mean latents (noise 0), (B, T - context, H, W, C)
    dec_in, dec_out            a state batch (N, 1, stoch + deter) and its decoded frames
    step<l>_*                  one prior and one posterior step of level l's cell on random inputs
    train/var/<name>           the weights after `train_steps` optimizer steps on `video`
    train/losses               the loss before each of those steps

Fixed noise: the official cell samples with tfd.MultivariateNormalDiag(mean, std).sample().
The script replaces that one call (cells.tfd) by mean + std * noise with a fed `noise`
vector, so both implementations see the same "random" numbers; noise 0 gives mean latents.
The `rssm` case (every case with `--checkpoint`) also saves the trained weights with the
official loggers.checkpoint.Checkpoint (a TF checkpoint, as train.py writes) and the run's
config.yml, for the converter (tools/convert_official_cwvae.py) and its test.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import yaml

# The official config keys every case shares (base_config.yml's defaults where they exist).
COMMON = dict(
    enc_dense_layers=3,
    cell_type="RSSMCell",
    cell_min_stddev=1e-4,
    cell_mean_only=False,
    cell_reset_state=False,
    lr=1e-3,
    clip_grad_norm_by=10000,
    kl_grad_post_perc=None,
    free_nats=None,
    beta=None,
    use_obs=True,
)
SMALL = dict(enc_dense_embed_size=16, cell_stoch_size=4, cell_deter_size=8, cell_embed_size=8)
# Reduced sizes: every layer of the official model, small enough for fixtures of a few hundred KB.
# T frames, the open loop from `context` of them; `channels_mult` scales the official 32 filters.
CASES = {
    # 3 levels, factor 2; 10 frames (the top level pads 10 -> 12); first conv 2 channels
    "cwvae": dict(SMALL, levels=3, tmp_abs_factor=2, channels=1, dec_stddev=1.0, channels_mult=1 / 16, T=10, context=4),
    # RSSM = the one-level model; RGB (channel layout of the likelihood); first conv 1 channel;
    # also saved as a TF checkpoint (with the optimizer's slots) for the converter test
    "rssm": dict(SMALL, levels=1, tmp_abs_factor=1, channels=3, dec_stddev=0.4, channels_mult=1 / 32, T=6, context=2),
    # the paper's Moving MNIST size (configs/mmnist.yml), 36 context frames: ~100 MB, not committed
    # (only with --case cwvae_paper; tests read it from CWBENCH_OFFICIAL_NPZ)
    "cwvae_paper": dict(
        enc_dense_embed_size=1000,
        cell_stoch_size=20,
        cell_deter_size=200,
        cell_embed_size=200,
        levels=3,
        tmp_abs_factor=6,
        channels=1,
        dec_stddev=1.0,
        channels_mult=1,
        T=48,
        context=36,
    ),
}
DEFAULT_CASES = ("cwvae", "rssm")
CHECKPOINT_CASES = ("rssm",)
BATCH = 2
TRAIN_STEPS = 3


def video(batch: int, length: int, channels: int, seed: int) -> np.ndarray:
    """(B, T, 64, 64, C) uint8: bright squares moving over a faint gradient, with mild noise.
    Both implementations read it as float32 x / 255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    out = np.zeros((batch, length, 64, 64, channels))
    for b in range(batch):
        x, y = rng.integers(0, 48, 2)
        vx, vy = rng.integers(-4, 5, 2)
        for t in range(length):
            frame = 0.2 * (xx if b % 2 else yy)[..., None] * np.ones(channels)
            px, py = int(np.clip(x + vx * t, 0, 48)), int(np.clip(y + vy * t, 0, 48))
            frame[py : py + 16, px : px + 16] = np.linspace(0.7, 1.0, channels)
            out[b, t] = frame
    return (np.clip(out + rng.normal(0, 0.02, out.shape), 0, 1) * 255).round().astype(np.uint8)


def import_official(path: Path):
    sys.path.insert(0, str(path))
    # data_loader.py (imported by train.py) needs tensorflow_datasets only to read datasets,
    # which this script does not do: an empty stand-in module keeps it out of the environment.
    sys.modules.setdefault("tensorflow_datasets", types.ModuleType("tensorflow_datasets"))
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    # the official modules by name (its tools.py is not this repository's tools/)
    cells, cwvae, tools, train, checkpoint = (
        importlib.import_module(m) for m in ("cells", "cwvae", "tools", "train", "loggers.checkpoint")
    )
    return tf, cells, cwvae, tools, train, checkpoint.Checkpoint


def make(name: str, official: Path, out: Path, seed: int, checkpoint: bool = False) -> None:
    tf, cells, cwvae, tools, train, Checkpoint = import_official(official)
    case = CASES[name]
    cfg = tools.AttrDict(
        **COMMON, **{k: v for k, v in case.items() if k not in ("T", "context")}, open_loop_ctx=case["context"]
    )
    tf.reset_default_graph()
    tf.set_random_seed(seed)
    noise = tf.placeholder(tf.float32, [cfg.cell_stoch_size], name="fixed_noise")

    class FixedNoiseNormal:  # stands in for tfd.MultivariateNormalDiag(mean, std) in cells.py only
        def __init__(self, mean, stddev):
            self.mean, self.stddev = mean, stddev

        def sample(self):
            return self.mean + self.stddev * noise

    cells.tfd = types.SimpleNamespace(MultivariateNormalDiag=FixedNoiseNormal)

    built = cwvae.build_model(cfg)  # the official graph: encoder, hierarchical unroll, decoder, loss, open loop
    model, training = built["meta"]["model"], built["training"]
    apply_grads, _, session, _ = train.train_setup(cfg, model.loss)  # official Keras Adam + clipping
    session.run(tf.global_variables_initializer())

    state_dim = cfg.cell_stoch_size + cfg.cell_deter_size
    dec_in = tf.placeholder(tf.float32, [None, 1, state_dim])
    dec_out = training["decoder"](dec_in)
    feat = training["obs_encoded"][0].shape.as_list()[-1]
    steps = {}
    for level in sorted({0, cfg.levels - 1}):
        cell = model.cells[level]
        prev = {
            "sample": tf.placeholder(tf.float32, [None, cfg.cell_stoch_size]),
            "det_state": tf.placeholder(tf.float32, [None, cfg.cell_deter_size]),
        }
        ctx = tf.placeholder(tf.float32, [None, state_dim])
        obs = tf.placeholder(tf.float32, [None, feat])
        steps[level] = (prev, ctx, obs, cell._prior(prev, ctx), cell._posterior(obs, prev, ctx))

    rng = np.random.default_rng(seed + 1)
    frames = video(BATCH, case["T"], cfg.channels, seed)
    x = frames.astype(np.float32) / 255
    eps = rng.normal(size=cfg.cell_stoch_size).astype(np.float32)
    feed = {training["obs"]: x, noise: eps}
    result = {"noise": eps}
    result.update({f"var/{v.name}": session.run(v) for v in tf.trainable_variables()})

    fetch = {"loss": model.loss, "nll": model._nll_term, "kl": model._kl_term}
    for level in range(cfg.levels):
        fetch[f"enc{level}"] = training["obs_encoded"][level]
        fetch[f"kl{level}"] = model.kld_all_levels[level]
        for which, dists in (("prior", training["priors"]), ("post", training["posteriors"])):
            fetch[f"{which}_mean{level}"] = dists[level]["mean"]
            fetch[f"{which}_std{level}"] = dists[level]["stddev"]
    result.update(session.run(fetch, feed))
    open_loop = built["open_loop_obs_decoded"]["prior_multistep"]
    result["open_loop"] = session.run(open_loop, {training["obs"]: x, noise: np.zeros_like(eps)})
    result["dec_in"] = rng.normal(size=(3, 1, state_dim)).astype(np.float32)
    result["dec_out"] = session.run(dec_out, {dec_in: result["dec_in"]})
    for level, (prev, ctx, obs, prior, post) in steps.items():
        inputs = {
            prev["sample"]: rng.normal(size=(3, cfg.cell_stoch_size)).astype(np.float32),
            prev["det_state"]: rng.normal(size=(3, cfg.cell_deter_size)).astype(np.float32),
            ctx: rng.normal(size=(3, state_dim)).astype(np.float32) * (level < cfg.levels - 1),
            obs: rng.normal(size=(3, feat)).astype(np.float32),
            noise: eps,
        }
        got = session.run({"prior": prior, "post": post}, inputs)
        for key, ph in (("sample_in", prev["sample"]), ("deter_in", prev["det_state"]), ("context", ctx), ("obs", obs)):
            result[f"step{level}_{key}"] = inputs[ph]
        for which in ("prior", "post"):
            for key in ("mean", "stddev", "det_state"):
                result[f"step{level}_{which}_{key}"] = got[which][key]

    losses = []
    for _ in range(TRAIN_STEPS):
        losses.append(session.run(model.loss, feed))
        session.run(apply_grads, feed)
    result["train/losses"] = np.array(losses, np.float32)
    result.update({f"train/var/{v.name}": session.run(v) for v in tf.trainable_variables()})
    config = {k: cfg[k] for k in sorted(cfg)}
    config.update(T=case["T"], context=case["context"], batch=BATCH, train_steps=TRAIN_STEPS, seed=seed)
    result = {k: np.asarray(v, np.float32) for k, v in result.items()}
    result.update(config=np.array(json.dumps(config)), video=frames)
    np.savez_compressed(out / f"{name}_official.npz", **result)
    print(f"wrote {out / f'{name}_official.npz'}: {len(tf.trainable_variables())} variables, loss {result['loss']:.6f}")
    if checkpoint or name in CHECKPOINT_CASES:
        ckpt_root = out / f"{name}_official_ckpt"
        Checkpoint(str(ckpt_root)).save(session)  # ckpt_root/model/model.ckpt.*, as train.py
        (ckpt_root / "model" / "model.ckpt.meta").unlink()  # the graph (MBs); reading weights needs index + data
        with open(ckpt_root / "config.yml", "w") as f:  # as train.py writes it
            yaml.dump(dict(cfg), f, default_flow_style=False)
        print(f"wrote {ckpt_root}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of vaibhavsaxena11/cwvae at 62dd505")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--case", choices=sorted(CASES), action="append", help=f"default: {', '.join(DEFAULT_CASES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoint", action="store_true", help=f"a TF checkpoint of every case, not only {CHECKPOINT_CASES}"
    )
    args = parser.parse_args()
    for name in args.case or DEFAULT_CASES:
        make(name, args.official, args.out, args.seed, args.checkpoint)


if __name__ == "__main__":
    main()
