"""Time the official CW-VAE code (TensorFlow) the way `bench.py speed` times ours; run by
`bench.py speed --against-official` under a Python that has tensorflow-cpu, never by tests.

    <tf-python> benchmarks/official_speed.py --official /tmp/cwvae-official --kind train --steps 5
    <tf-python> benchmarks/official_speed.py --official /tmp/cwvae-official --kind predict --horizon 1000

`--official` is a checkout of github.com/vaibhavsaxena11/cwvae (62dd505); this script contains
none of its code: it imports its `cwvae.build_model` and `train.train_setup` and builds the
model from its own configs (base_config.yml, then mmnist.yml: the paper's Moving MNIST
configuration). The environment it was measured with: tensorflow-cpu 2.15.1 (with
tensorflow-probability 0.23.0, pyyaml, numpy 1.26.4) in a venv (tests/data/README.md).

- train: `session.run(apply_grads)` on one synthetic batch (B, T, 64, 64, 1) of uniform
  [0, 1) values from numpy's default_rng(0) (the batch `benchmarks/speed.py` feeds ours),
  as the official train.py steps; `--warmup` untimed steps, then `--steps` timed ones;
- predict: the official eval.py's fetch, `open_loop_obs_decoded/prior_multistep`, from
  `open_loop_ctx` = 36 context frames of a (B, 36 + horizon) synthetic video: posterior over
  the context, then the prior for `horizon` frames, decoded; one untimed run, then `--reps`.

Prints one JSON line: the per-step / per-run seconds and their medians.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
import types
from pathlib import Path


def synthetic(batch: int, length: int, channels: int = 1):
    """(B, T, 64, 64, C) float32 uniform in [0, 1): the batch both implementations are timed on."""
    import numpy as np

    return np.random.default_rng(0).random((batch, length, 64, 64, channels), dtype=np.float32)


def official_config(official: Path, dataset: str, **overrides):
    import yaml

    tools = importlib.import_module("tools")  # the official tools.py (AttrDict)
    cfg = {}
    for name in ("base_config.yml", f"{dataset}.yml"):
        cfg.update(yaml.safe_load((official / "configs" / name).read_text()))
    return tools.AttrDict(**{**cfg, **overrides})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--official", type=Path, required=True, help="checkout of the official CW-VAE code")
    p.add_argument("--kind", choices=["train", "predict"], required=True)
    p.add_argument("--dataset", default="mmnist", help="the official config (configs/<dataset>.yml)")
    p.add_argument("--batch", type=int, default=0, help="default: the config's batch_size (train), 10 (predict)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--horizon", type=int, default=1000)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    if not (args.official / "cwvae.py").exists():
        print(f"error: {args.official} has no cwvae.py; give a checkout of the official CW-VAE code", file=sys.stderr)
        return 2
    sys.path.insert(0, str(args.official))
    # data_loader.py (imported by train.py) needs tensorflow_datasets only to read data, which
    # this script does not: an empty stand-in keeps it out of the environment.
    sys.modules.setdefault("tensorflow_datasets", types.ModuleType("tensorflow_datasets"))
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    cwvae, train = (importlib.import_module(m) for m in ("cwvae", "train"))
    cfg = official_config(args.official, args.dataset)
    built = cwvae.build_model(cfg)
    obs = built["training"]["obs"]
    apply_grads, _, session, _ = train.train_setup(cfg, built["meta"]["model"].loss)
    session.run(tf.global_variables_initializer())
    if args.kind == "train":
        batch = args.batch or cfg.batch_size
        feed = {obs: synthetic(batch, cfg.seq_len, cfg.channels)}
        frames, fetch, reps, warmup = batch * cfg.seq_len, apply_grads, args.steps, args.warmup
    else:
        batch = args.batch or 10
        feed = {obs: synthetic(batch, cfg.open_loop_ctx + args.horizon, cfg.channels)}
        fetch = built["open_loop_obs_decoded"]["prior_multistep"]
        frames, reps, warmup = batch * args.horizon, args.reps, 1
    for _ in range(warmup):
        session.run(fetch, feed)
    times = []
    for _ in range(reps):
        tic = time.perf_counter()
        session.run(fetch, feed)
        times.append(time.perf_counter() - tic)
    median = statistics.median(times)
    result = {"kind": args.kind, "batch": batch, "frames": frames, "seconds": times, "median_s": median}
    result |= {"frames_per_s": frames / median, "tensorflow": tf.__version__}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
