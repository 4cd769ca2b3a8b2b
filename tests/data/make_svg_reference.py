"""Make svg_reference.npz with the original SVG-LP code (run by hand, never by tests).

    python tests/data/make_svg_reference.py /path/to/edenton-svg   (see tests/data/README.md)

The original code (github.com/edenton/svg) is imported from the path given, never copied
here: its modules (models/dcgan_64.py, models/vgg_64.py, models/lstm.py) are built at a
reduced size, and its own `train` and `kl_criterion` (train_svg_lp.py) and `make_gifs` and
`add_border` (generate_svg_lp.py) are read from its files and run as they are. Two shims,
for a CPU-only torch: `Tensor.cuda` returns the tensor itself, and the modules this script
does not need (progressbar, the plotting utils) are stand-ins that record the generated
frames. The latent noise is fixed by replacing `gaussian_lstm.reparameterize` with the
same formula on noise that is recorded (or zero, for mean latents).

Everything runs in float64 (torch's default dtype set to it), so that the numbers are the
official computation without float32 rounding (the VGG's batch-norm gradients change by
about 1e-2 between float32 and float64 in either implementation); the arrays are stored as
float32, and every value the script feeds in (weights, inputs, noise, batch-norm buffers) is
rounded to float32 before it is used, so that a test reading the stored values feeds the
same numbers.

For each variant (`dcgan`: DCGAN-64 with the official layer counts 2/1/1; `vgg`: VGG-64
with 2/2/2 LSTM layers, to cover stacked posteriors and priors) the archive holds, under
`<variant>/`:
  config                  the official options used (JSON)
  param/<name>            parameters of at most STORED_MAX values, by their official name
  seeded/<name>, shape/<name>
                          larger conv kernels: [seed, mean, std, sum, sum of |w|] and the shape;
                          `seeded_normal` regenerates them (numpy's RandomState stream is fixed)
  buffer/<name>           batch-norm buffers after one official training step from the defaults
  x                       uint8 (T, B, C, 64, 64): the video, as the official loop indexes it
  enc_{train,eval}_*      encoder of x[0]: h (B, g), per skip k its first 2 channels and its
                          channel means (eval: the buffers above)
  dec_in, dec_{train,eval}  decoder of dec_in with the skips of x[0], in each batch-norm mode
  step_*                  two steps from the zero state of the frame predictor, posterior and
                          prior on fixed inputs (z, mu, logvar, eps)
  train_*                 one call of the official train(x): its eps (T-1, B, z), the summed MSE
                          and KL, the loss, gradients of the stored parameters and the gradient
                          norm of every parameter
  roll_{train,eval_mean}_*  the official make_gifs open loop (n_past context frames, then
                          n_future generated ones): encoder/decoder in train mode with sampled
                          latents (as generate_svg_lp.py runs), and in eval mode with mean
                          latents (zero noise); frames (F, B, C, 64, 64), posterior noise over
                          the context (P-1, B, z), prior noise per generated frame (F, B, z)
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import types
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
OUT = HERE / "svg_reference.npz"
STORED_MAX = 32768  # parameters up to this many values are stored; larger conv kernels are regenerated

# The official command-line options (train_svg_lp.py) at a reduced size; the conv widths are
# fixed in the official files (nf = 64).
VARIANTS = {
    "dcgan": dict(model="dcgan", g_dim=16, z_dim=4, rnn_size=32, predictor_rnn_layers=2, posterior_rnn_layers=1,
                  prior_rnn_layers=1, beta=0.01, batch_size=4, n_past=4, n_future=4, channels=1),
    "vgg": dict(model="vgg", g_dim=16, z_dim=4, rnn_size=32, predictor_rnn_layers=2, posterior_rnn_layers=2,
                prior_rnn_layers=2, beta=0.01, batch_size=3, n_past=3, n_future=2, channels=1),
}  # fmt: skip


def seeded_normal(shape: tuple[int, ...], seed: int, mean: float, std: float) -> np.ndarray:
    """float32 N(mean, std^2) values from numpy's legacy RandomState (a stream numpy keeps fixed)."""
    return (mean + std * np.random.RandomState(seed).standard_normal(shape)).astype(np.float32)


def video(T: int, B: int, seed: int) -> np.ndarray:
    """uint8 (T, B, 1, 64, 64): a blob moving over a sine pattern, with noise; brightness, sizes and
    patterns differ between the videos of the batch, so that batch statistics are well conditioned."""
    rs = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    out = np.zeros((T, B, 1, 64, 64))
    for b in range(B):
        (cx, cy), (vx, vy) = rs.uniform(0.2, 0.8, 2), rs.uniform(-0.06, 0.06, 2)
        size, bright, (fx, fy), phase = (
            rs.uniform(0.003, 0.03),
            rs.uniform(0.3, 1.0),
            rs.uniform(-4, 4, 2),
            rs.uniform(0, 6),
        )
        for t in range(T):
            blob = np.exp(-((xx - cx - vx * t) ** 2 + (yy - cy - vy * t) ** 2) / size)
            pattern = 0.5 + 0.5 * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)
            out[t, b, 0] = bright * blob + rs.uniform(0.1, 0.6) * pattern
    return (np.clip(out + rs.normal(0, 0.05, out.shape), 0, 1) * 255).round().astype(np.uint8)


def load_functions(path: Path, names: list[str], namespace: dict) -> None:
    """Run the top-level function definitions `names` of an original script into `namespace`."""
    tree = ast.parse(path.read_text())
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert sorted(n.name for n in nodes) == sorted(names), (path, names)
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)


class Noise:
    """Replaces gaussian_lstm.reparameterize: the same z = mu + exp(logvar / 2) * eps, with eps
    drawn from a fixed generator (or zero) and recorded per module."""

    def __init__(self, torch, modules: dict):
        self.torch, self.modules, self.zero, self.log = torch, modules, False, []
        self.gen = torch.Generator().manual_seed(0)

    def reparameterize(self, module, mu, logvar):
        eps = self.torch.zeros_like(mu) if self.zero else self.torch.randn(mu.shape, generator=self.gen)
        eps = eps.float().double()  # stored as float32
        self.log.append((next(k for k, m in self.modules.items() if m is module), eps.clone()))
        return mu + logvar.mul(0.5).exp() * eps

    def take(self, name: str, n: int):
        """The last n noise tensors of module `name`: (n, B, z)."""
        return np.stack([e.numpy() for k, e in self.log if k == name][-n:]) if n else None


def build(orig: Path, variant: str, o: dict, out: dict):
    import importlib

    import torch
    from torch import nn

    torch.Tensor.cuda = lambda self, *a, **k: self  # shim: the original moves everything to the GPU
    torch.set_default_dtype(torch.float64)
    sys.path.insert(0, str(orig))
    lstm_models = importlib.import_module("models.lstm")
    model = importlib.import_module("models.dcgan_64" if o["model"] == "dcgan" else "models.vgg_64")
    torch.manual_seed(0)
    B, g, z = o["batch_size"], o["g_dim"], o["z_dim"]
    nets = {
        "encoder": model.encoder(g, o["channels"]),
        "decoder": model.decoder(g, o["channels"]),
        "frame_predictor": lstm_models.lstm(g + z, g, o["rnn_size"], o["predictor_rnn_layers"], B),
        "posterior": lstm_models.gaussian_lstm(g, z, o["rnn_size"], o["posterior_rnn_layers"], B),
        "prior": lstm_models.gaussian_lstm(g, z, o["rnn_size"], o["prior_rnn_layers"], B),
    }
    noise = Noise(torch, {"posterior": nets["posterior"], "prior": nets["prior"]})
    lstm_models.gaussian_lstm.reparameterize = lambda self, mu, logvar: noise.reparameterize(self, mu, logvar)

    # ---- fixed weights: non-zero everywhere (biases and batch-norm shifts too, so that a mapping
    # error cannot hide behind a zero), at scales where the sigmoid/tanh outputs are not saturated
    for mod_name, net in nets.items():
        for sub_name, sub in net.named_modules():
            for p_name, p in sub.named_parameters(recurse=False):
                name = ".".join(x for x in (mod_name, sub_name, p_name) if x)
                if isinstance(sub, nn.BatchNorm2d):
                    mean, std = (1.0, 0.1) if p_name == "weight" else (0.0, 0.1)
                elif isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d)):
                    mean, std = 0.0, (0.02 if p_name == "weight" else 0.1)
                else:  # Linear, LSTMCell
                    mean, std = 0.0, (0.15 if "weight" in p_name else 0.1)
                seed = zlib.crc32(f"{variant}/{name}".encode())
                value = seeded_normal(tuple(p.shape), seed, mean, std)
                with torch.no_grad():
                    p.copy_(torch.from_numpy(value))
                if p.numel() <= STORED_MAX:
                    out[f"param/{name}"] = value
                else:
                    v64 = value.astype(np.float64)
                    out[f"seeded/{name}"] = np.array([seed, mean, std, v64.sum(), np.abs(v64).sum()])
                    out[f"shape/{name}"] = np.array(p.shape, dtype=np.int64)
    return torch, nn, nets, noise


def make(orig: Path, variant: str) -> dict[str, np.ndarray]:
    o = VARIANTS[variant]
    out: dict[str, np.ndarray] = {"config": np.array(json.dumps(o))}
    torch, nn, nets, noise = build(orig, variant, o, out)
    enc, dec, pred, post, prior = (nets[k] for k in ("encoder", "decoder", "frame_predictor", "posterior", "prior"))
    P, F, B, g, zd = o["n_past"], o["n_future"], o["batch_size"], o["g_dim"], o["z_dim"]
    T = P + F
    x_u8 = video(T, B, seed=1)
    out["x"] = x_u8
    x = torch.from_numpy(x_u8).double() / 255  # (T, B, C, H, W)
    opt = argparse.Namespace(last_frame_skip=False, **o)

    # ---- one official training step: train(x) from train_svg_lp.py, optimizers that do not step
    ns = {"torch": torch, "opt": opt, "mse_criterion": nn.MSELoss(), **nets}
    ns.update({f"{k}_optimizer": types.SimpleNamespace(step=lambda: None) for k in nets})
    load_functions(orig / "train_svg_lp.py", ["kl_criterion", "train"], ns)
    for net in nets.values():
        net.train()
    noise.log.clear()
    mse, kld = ns["train"](x)  # returns the sums divided by n_past + n_future
    out["train_eps"] = noise.take("posterior", T - 1)
    out["train_mse"], out["train_kld"] = np.float64(mse * T), np.float64(kld * T)
    out["train_loss"] = np.float64(mse * T + o["beta"] * kld * T)
    for mod_name, net in nets.items():
        for p_name, p in net.named_parameters():
            name = f"{mod_name}.{p_name}"
            grad = p.grad.double()
            out[f"gradnorm/{name}"] = np.float64(grad.norm().item())
            if p.numel() <= STORED_MAX:
                out[f"grad/{name}"] = p.grad.numpy().copy()
    with torch.no_grad():  # the stored (float32) statistics are the ones used below
        for k in ("encoder", "decoder"):
            for b in nets[k].buffers():
                b.copy_(b.float())
    buffers = {k: {n: b.clone() for n, b in nets[k].named_buffers()} for k in ("encoder", "decoder")}
    for k, bufs in buffers.items():
        for n, b in bufs.items():
            out[f"buffer/{k}.{n}"] = b.numpy() if b.dtype == torch.int64 else b.float().numpy()

    def restore():  # batch-norm buffers back to their state after the training step
        with torch.no_grad():
            for k, bufs in buffers.items():
                for n, b in nets[k].named_buffers():
                    b.copy_(bufs[n])

    # ---- encoder and decoder alone, in both batch-norm modes
    dec_in = torch.from_numpy(seeded_normal((B, g), 7, 0.0, 0.5)).tanh().float().double()
    out["dec_in"] = dec_in.numpy()
    with torch.no_grad():
        for mode in ("eval", "train"):
            enc.train(mode == "train")
            dec.train(mode == "train")
            h, skips = enc(x[0])
            out[f"enc_{mode}_h"] = h.numpy()
            for k, s in enumerate(skips):
                out[f"enc_{mode}_skip{k}_head"] = s[:, :2].numpy()
                out[f"enc_{mode}_skip{k}_mean"] = s.double().mean((2, 3)).numpy()
            out[f"dec_{mode}"] = dec([dec_in, skips]).numpy()
            restore()

    # ---- two steps of each recurrent module from its zero state
    with torch.no_grad():
        for name, net, width in (("pred", pred, g + zd), ("post", post, g), ("prior", prior, g)):
            inputs = torch.from_numpy(seeded_normal((2, B, width), 11, 0.0, 0.7)).tanh().float().double()
            net.hidden = net.init_hidden()
            noise.log.clear()
            outs = [net(u) for u in inputs]
            out[f"step_in_{name}"] = inputs.numpy()
            if name == "pred":
                out["step_pred"] = torch.stack(outs).numpy()
            else:
                for i, key in enumerate(("z", "mu", "logvar")):
                    out[f"step_{name}_{key}"] = torch.stack([r[i] for r in outs]).numpy()
                out[f"step_{name}_eps"] = np.stack([e.numpy() for _, e in noise.log])

    # ---- the official open loop: make_gifs of generate_svg_lp.py on a batch
    recorded = []

    def eval_seq(gt, gen):  # stand-in for utils.eval_seq: keep the generated frames
        recorded.append(np.stack(gen))
        return None, np.zeros((B, F)), np.zeros((B, F))

    bar = types.SimpleNamespace(start=lambda: bar, update=lambda i: None, finish=lambda: None)
    gen_ns = {
        "torch": torch, "np": np, "Variable": torch.autograd.Variable, **nets,
        "opt": argparse.Namespace(n_eval=T, nsample=1, log_dir="", **vars(opt)),
        "progressbar": types.SimpleNamespace(ProgressBar=lambda max_value: bar),
        "utils": types.SimpleNamespace(eval_seq=eval_seq, clear_progressbar=lambda: None,
                                       save_gif_with_text=lambda *a: None),
    }  # fmt: skip
    load_functions(orig / "generate_svg_lp.py", ["make_gifs", "add_border"], gen_ns)
    for key, mode, zero in (("roll_train", "train", False), ("roll_eval_mean", "eval", True)):
        for net in (pred, post, prior):
            net.eval()  # as generate_svg_lp.py (no batch norm in them)
        enc.train(mode == "train")  # generate_svg_lp.py: encoder.train(), decoder.train()
        dec.train(mode == "train")
        noise.log.clear()
        noise.zero = zero
        recorded.clear()
        with torch.no_grad():
            gen_ns["make_gifs"](list(x), 0, "test")
        out[key] = recorded[0]  # (F, B, C, H, W)
        out[f"{key}_eps_post"] = noise.take("posterior", P - 1)
        out[f"{key}_eps_prior"] = noise.take("prior", F)
        noise.zero = False
        restore()
    sys.path.remove(str(orig))
    for mod in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        del sys.modules[mod]
    torch.set_default_dtype(torch.float32)
    # arrays as float32 (the script's values were rounded to it where they are fed back); scalars
    # and the seeds and checksums of the regenerated kernels stay float64
    return {k: v.astype(np.float32) if v.dtype == np.float64 and v.ndim and "seeded/" not in k else v
            for k, v in out.items()}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("orig", type=Path, help="a checkout of github.com/edenton/svg (commit 3f19f0b)")
    args = parser.parse_args(argv)
    arrays = {}
    for variant in VARIANTS:
        arrays.update({f"{variant}/{k}": v for k, v in make(args.orig, variant).items()})
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB, {len(arrays)} arrays)")


if __name__ == "__main__":
    main()
