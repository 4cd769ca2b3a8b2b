"""SVG-LP: Stochastic Video Generation with a Learned Prior (Denton & Fergus, ICML 2018).

Reference code: github.com/edenton/svg at 3f19f0b (train_svg_lp.py, generate_svg_lp.py,
models/dcgan_64.py, vgg_64.py, lstm.py, utils.init_weights). Kept: the DCGAN-64
encoder/decoder with skip connections (VGG-64 with `backbone: vgg`, the KTH model), g = 128,
z = 10, LSTMs of 256 units (predictor 2 layers, prior and posterior 1 layer each), the
posterior reading frame t and the prior frame t - 1, teacher forcing in training, one
batch-norm batch per time step in training (the official loop calls the encoder and decoder
once per step), loss = sum over time of the per-frame MSE + beta * KL with beta = 1e-4, the
official weight init; at test the prior samples z and the model's own generated frames are
fed back after the context. tests/test_svg_reference.py checks all of it against the
official code, weight for weight (`official_name` maps the official parameter names).

Changed, fixing the two known pitfalls of the official code: (1) the skip connections
come from the LAST context frame (the official code uses frame n_past - 2 in training and
at test; `rollout(..., skip_frame=-2)` reproduces it); (2) batch norm runs on its running
statistics at test time (`predict` switches to eval mode itself; the official generation
leaves the encoder and decoder in training mode, so a prediction depends on the other
videos of the batch). The LSTMs run as torch.nn.LSTM over the sequence (the same tensors
as the official stack of LSTMCells). See docs/models.md.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.base import VideoModel, register_model
from models.checkpointing import checkpointed
from models.nets import eval_mode

CHECKPOINT_STEPS = 10  # time steps per checkpointed chunk of the encoder and decoder (checkpoint_activations)


@dataclass(frozen=True)
class SVGConfig:
    backbone: str = field(
        default="dcgan", metadata={"choices": ("dcgan", "vgg")}
    )  # frame encoder/decoder: dcgan (DCGAN-64) | vgg (VGG-64, the paper's KTH model)
    g_dim: int = field(default=128, metadata={"min": 1})  # encoder output / decoder input size (official g_dim)
    z_dim: int = field(default=10, metadata={"min": 1})  # latent size per frame (official z_dim)
    rnn_size: int = field(default=256, metadata={"min": 1})  # LSTM units (official rnn_size)
    predictor_layers: int = field(
        default=2, metadata={"min": 1}
    )  # LSTM layers of the frame predictor (official predictor_rnn_layers)
    posterior_layers: int = field(
        default=1, metadata={"min": 1}
    )  # LSTM layers of the posterior q(z_t | x_1:t) (official posterior_rnn_layers)
    prior_layers: int = field(
        default=1, metadata={"min": 1}
    )  # LSTM layers of the learned prior p(z_t | x_1:t-1) (official prior_rnn_layers)
    beta: float = field(default=1e-4, metadata={"min": 0})  # weight of the KL term (official beta)
    nf: int = field(
        default=64, metadata={"min": 1}
    )  # base conv width of the encoder/decoder (official: 64; smaller only for CPU presets)
    n_past: int = field(
        default=36, metadata={"min": 1}
    )  # training: frames whose skips the decoder uses; later frames reuse frame n_past - 1's
    channels: int = field(default=1, metadata={"choices": (1, 3)})  # image channels (filled from the dataset config)
    checkpoint_activations: bool = False  # training: run the encoder and decoder CHECKPOINT_STEPS time steps
    # at a time, keeping only each chunk's inputs for backward and re-running it there (the same loss and
    # gradients; less memory, more time per step: docs/performance.md). On at the paper preset (svg.yaml).

    @property
    def equivalent_dec_std(self) -> float:
        """The fixed std (frames in [0, 1]) of the Gaussian decoder whose negative ELBO this objective
        is, scaled by beta: sum_t MSE_t + beta KL = beta (NLL - const + KL) when sigma^2 = beta D / 2,
        with D = channels x 64 x 64 values per frame (the Gaussian NLL of a frame is
        D MSE / (2 sigma^2) + D log(sigma sqrt(2 pi)))."""
        return math.sqrt(self.beta * self.channels * 64 * 64 / 2)

    def __post_init__(self):
        if self.backbone not in ("dcgan", "vgg"):
            raise ValueError(f"backbone must be 'dcgan' or 'vgg', got {self.backbone!r}")
        if self.n_past < 1:
            raise ValueError(f"n_past must be >= 1, got {self.n_past}")


# ---------------------------------------------------------------- frame encoders / decoders


class StepBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training, gives each time step of a (B*T, C, H, W) batch in (B, T)
    order its own statistics and updates the running averages once per step, in order: what T
    calls on (B, C, H, W) would do (the official SVG calls its encoder and decoder once per
    time step), in one call. `steps` (T) is set around a call by `time_steps`."""

    steps = 1

    def forward(self, x: Tensor) -> Tensor:
        T = self.steps
        if not self.training or T == 1:
            return super().forward(x)
        N, C, H, W = x.shape
        xs = x.reshape(N // T, T * C, H, W)  # (B, T*C, H, W): one channel per (step, channel), a view
        y = F.batch_norm(xs, None, None, self.weight.repeat(T), self.bias.repeat(T), True, 0.0, self.eps)
        with torch.no_grad():  # the T updates r <- (1 - m) r + m s_t, folded into one
            var, mean = torch.var_mean(xs, dim=(0, 2, 3), correction=1)  # (T*C,) unbiased, as BatchNorm's
            m = self.momentum
            w = m * (1 - m) ** torch.arange(T - 1, -1, -1, dtype=x.dtype, device=x.device)  # (T,) weight of s_t
            self.running_mean.mul_((1 - m) ** T).add_((w[:, None] * mean.view(T, C)).sum(0))
            self.running_var.mul_((1 - m) ** T).add_((w[:, None] * var.view(T, C)).sum(0))
            self.num_batches_tracked.add_(T)
        return y.view(N, C, H, W)


@contextmanager
def time_steps(net: nn.Module, steps: int):
    """Within the block, `net`'s batch norms treat their batch as `steps` time steps (see StepBatchNorm2d)."""
    norms = [m for m in net.modules() if isinstance(m, StepBatchNorm2d)]
    before = [m.steps for m in norms]
    for m in norms:
        m.steps = steps
    try:
        yield net
    finally:
        for m, steps_before in zip(norms, before):
            m.steps = steps_before


def block(cin: int, cout: int, conv: type = nn.Conv2d, k: int = 4, s: int = 2, p: int = 1) -> nn.Sequential:
    """conv, batch norm, leaky ReLU, the ReLU in place as the original's (dcgan_conv, vgg_layer): on the
    batch norm's output, which no backward reads (batch norm keeps its input, the ReLU its result)."""
    return nn.Sequential(conv(cin, cout, k, s, p), StepBatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


class DCGANEncoder(nn.Module):
    """dcgan_64.encoder: (N, C, 64, 64) -> (N, g) in [-1, 1] and skips at 32, 16, 8, 4."""

    def __init__(self, g: int, nc: int, nf: int = 64):
        super().__init__()
        self.stages = nn.ModuleList([block(nc, nf), block(nf, 2 * nf), block(2 * nf, 4 * nf), block(4 * nf, 8 * nf)])
        self.last = nn.Sequential(nn.Conv2d(8 * nf, g, 4, 1, 0), StepBatchNorm2d(g), nn.Tanh())

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return self.last(x).flatten(1), skips


class DCGANDecoder(nn.Module):
    """dcgan_64.decoder: (N, g) and the encoder's skips -> (N, C, 64, 64) in [0, 1]."""

    def __init__(self, g: int, nc: int, nf: int = 64):
        super().__init__()
        up = nn.ConvTranspose2d
        self.first = block(g, 8 * nf, up, 4, 1, 0)  # 1 -> 4
        self.stages = nn.ModuleList([block(16 * nf, 4 * nf, up), block(8 * nf, 2 * nf, up), block(4 * nf, nf, up)])
        self.last = nn.Sequential(up(2 * nf, nc, 4, 2, 1), nn.Sigmoid())

    def forward(self, g: Tensor, skips: list[Tensor]) -> Tensor:
        x = self.first(g[:, :, None, None])
        for stage, skip in zip(self.stages, reversed(skips[1:])):
            x = stage(torch.cat([x, skip], 1))
        return self.last(torch.cat([x, skips[0]], 1))


def vgg(cin: int, cout: int) -> nn.Sequential:
    return block(cin, cout, nn.Conv2d, 3, 1, 1)


class VGGEncoder(nn.Module):
    """vgg_64.encoder: VGG blocks with max pooling; skips at 64, 32, 16, 8 (widths nf, 2nf, 4nf, 8nf)."""

    def __init__(self, g: int, nc: int, nf: int = 64):
        super().__init__()
        a, b, c, d = nf, 2 * nf, 4 * nf, 8 * nf
        self.stages = nn.ModuleList(
            [
                nn.Sequential(vgg(nc, a), vgg(a, a)),
                nn.Sequential(vgg(a, b), vgg(b, b)),
                nn.Sequential(vgg(b, c), vgg(c, c), vgg(c, c)),
                nn.Sequential(vgg(c, d), vgg(d, d), vgg(d, d)),
            ]
        )
        self.last = nn.Sequential(nn.Conv2d(d, g, 4, 1, 0), StepBatchNorm2d(g), nn.Tanh())
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else self.pool(x))
            skips.append(x)
        return self.last(self.pool(x)).flatten(1), skips


class VGGDecoder(nn.Module):
    """vgg_64.decoder: nearest upsampling and VGG blocks, skips concatenated at 8, 16, 32, 64."""

    def __init__(self, g: int, nc: int, nf: int = 64):
        super().__init__()
        a, b, c, d = nf, 2 * nf, 4 * nf, 8 * nf
        self.first = block(g, d, nn.ConvTranspose2d, 4, 1, 0)  # 1 -> 4
        self.stages = nn.ModuleList(
            [
                nn.Sequential(vgg(2 * d, d), vgg(d, d), vgg(d, c)),
                nn.Sequential(vgg(2 * c, c), vgg(c, c), vgg(c, b)),
                nn.Sequential(vgg(2 * b, b), vgg(b, a)),
                nn.Sequential(vgg(2 * a, a), nn.ConvTranspose2d(a, nc, 3, 1, 1), nn.Sigmoid()),
            ]
        )
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, g: Tensor, skips: list[Tensor]) -> Tensor:
        x = self.first(g[:, :, None, None])
        for stage, skip in zip(self.stages, reversed(skips)):
            x = stage(torch.cat([self.up(x), skip], 1))
        return x


# ---------------------------------------------------------------- recurrent parts (official lstm.py)


class LSTMHead(nn.Module):
    """Linear embed -> stacked LSTM -> `out` head. Runs a whole sequence or one step with a carried state."""

    def __init__(self, in_dim: int, hidden: int, layers: int, out: nn.Module):
        super().__init__()
        self.embed = nn.Linear(in_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)
        self.out = out

    def forward(self, x: Tensor, state=None, **out_options):
        """x (N, T, in) -> (N, T, out), state. `out_options` go to the head (a Gaussian head's `eps`)."""
        h, state = self.lstm(self.embed(x), state)
        return self.out(h, **out_options), state


class GaussianHead(nn.Module):
    """Official gaussian_lstm heads: mu and logvar linears; z = mu + exp(logvar / 2) * eps."""

    def __init__(self, hidden: int, z: int):
        super().__init__()
        self.mu = nn.Linear(hidden, z)
        self.logvar = nn.Linear(hidden, z)

    def forward(self, h: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """h (..., hidden) -> z, mu, logvar (..., z); `eps` (..., z): the standard normal noise, drawn when None."""
        mu, logvar = self.mu(h), self.logvar(h)
        eps = torch.randn_like(mu) if eps is None else eps
        return mu + (0.5 * logvar).exp() * eps, mu, logvar


def kl_logvar(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    """Official kl_criterion (before the sum): KL(N(mu1, e^lv1) || N(mu2, e^lv2)) per element."""
    return 0.5 * (logvar2 - logvar1) + (logvar1.exp() + (mu1 - mu2) ** 2) / (2 * logvar2.exp()) - 0.5


def init_weights(m: nn.Module) -> None:
    """Official utils.init_weights: conv and linear N(0, 0.02), batch norm scale N(1, 0.02), biases 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):  # StepBatchNorm2d too
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


# ---------------------------------------------------------------- official parameter names


def _stage(offset: int, pattern: str):
    """A replacement that numbers stages from 0: c1 -> stages.0 (encoder), upc2 -> stages.0 (decoder)."""
    return lambda m: pattern.format(int(m[1]) - offset, *m.groups()[1:])


# edenton/svg's module names -> ours. Its LSTMs are one nn.LSTMCell per layer, ours one nn.LSTM
# (the same tensors under other names).
_OFFICIAL_RENAMES = {
    "common": [
        (r"frame_predictor\.lstm\.(\d+)\.(weight|bias)_(ih|hh)", r"predictor.lstm.\2_\3_l\1"),
        (r"(posterior|prior)\.lstm\.(\d+)\.(weight|bias)_(ih|hh)", r"\1.lstm.\3_\4_l\2"),
        (r"frame_predictor\.embed\.", "predictor.embed."),
        (r"frame_predictor\.output\.0\.", "predictor.out.0."),
        (r"(posterior|prior)\.embed\.", r"\1.embed."),
        (r"(posterior|prior)\.(mu|logvar)_net\.", r"\1.out.\2."),
        (r"encoder\.c5\.", "encoder.last."),
        (r"decoder\.upc1\.", "decoder.first."),
    ],
    "dcgan": [  # dcgan_64.py: c1-c4 dcgan_conv and upc2-upc4 dcgan_upconv (main = conv, bn, lrelu)
        (r"encoder\.c([1-4])\.main\.", _stage(1, "encoder.stages.{}.")),
        (r"decoder\.upc([2-4])\.main\.", _stage(2, "decoder.stages.{}.")),
        (r"decoder\.upc5\.", "decoder.last."),
    ],
    "vgg": [  # vgg_64.py: c1-c4 and upc2-upc5 are Sequentials of vgg_layer (main = conv, bn, lrelu)
        (r"encoder\.c([1-4])\.(\d)\.main\.", _stage(1, "encoder.stages.{}.{}.")),
        (r"decoder\.upc([2-5])\.(\d)\.main\.", _stage(2, "decoder.stages.{}.{}.")),
        (r"decoder\.upc5\.1\.", "decoder.stages.3.1."),  # the output conv after upc5's vgg_layer
    ],
}


def official_name(name: str, backbone: str) -> str:
    """Our name of a parameter or buffer of the official SVG-LP, whose five modules are saved as
    `encoder`, `decoder`, `frame_predictor`, `posterior` and `prior` (train_svg_lp.py)."""
    for pattern, repl in _OFFICIAL_RENAMES["common"] + _OFFICIAL_RENAMES[backbone]:
        if re.match(pattern, name):
            return re.sub(pattern, repl, name, count=1)
    raise KeyError(f"no SVG parameter corresponds to the official {name!r} (backbone {backbone!r})")


# ---------------------------------------------------------------- the model


@register_model("svg")
class SVG(VideoModel):
    """SVG-LP. `loss` is the official objective; `predict` feeds its own frames back after the context."""

    config_class = SVGConfig
    paper_label = "SVG"  # its row in Table 1

    def __init__(self, **hparams):
        super().__init__(**hparams)
        c = self.cfg
        enc, dec = (DCGANEncoder, DCGANDecoder) if c.backbone == "dcgan" else (VGGEncoder, VGGDecoder)
        self.encoder, self.decoder = enc(c.g_dim, c.channels, c.nf), dec(c.g_dim, c.channels, c.nf)
        out = nn.Sequential(nn.Linear(c.rnn_size, c.g_dim), nn.Tanh())
        self.predictor = LSTMHead(c.g_dim + c.z_dim, c.rnn_size, c.predictor_layers, out)
        self.posterior = LSTMHead(c.g_dim, c.rnn_size, c.posterior_layers, GaussianHead(c.rnn_size, c.z_dim))
        self.prior = LSTMHead(c.g_dim, c.rnn_size, c.prior_layers, GaussianHead(c.rnn_size, c.z_dim))
        self.apply(init_weights)

    def encode(self, video: Tensor) -> tuple[Tensor, list[Tensor]]:
        """video (B, T, C, H, W) -> h (B, T, g) and skips [(B, T, c, h, w)] at 4 resolutions. In
        training each time step is its own batch-norm batch, as in the official loop (which calls
        the encoder on x[t-1] and x[t] at every step)."""
        B, T = video.shape[:2]
        with time_steps(self.encoder, T):
            h, skips = self.encoder(video.flatten(0, 1))  # (B*T, g), [(B*T, c, h, w)]
        return h.unflatten(0, (B, T)), [s.unflatten(0, (B, T)) for s in skips]

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.objective(video)

    def objective(self, video: Tensor, eps: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The official train(): sum over steps of the frame MSE + beta x KL(q || p), KL summed over
        z and steps and divided by the batch. eps (B, T-1, z): the posterior's noise (drawn when None)."""
        c = self.cfg
        B, T, C, H, W = video.shape
        if T <= c.n_past:
            raise ValueError(
                f"SVG trains on windows longer than n_past = {c.n_past}; got {T} frames (raise train.seq_len)"
            )
        # one chunk of all T steps, or CHECKPOINT_STEPS at a time, each kept for backward as its inputs only
        # (exact: every time step is its own batch-norm batch)
        steps = CHECKPOINT_STEPS if c.checkpoint_activations else T
        h, skips = self.encode_chunks(video, steps)  # (B, T, g), per chunk [(B, steps, ...)]
        (z, mu, logvar), _ = self.posterior(h[:, 1:], eps=eps)  # q(z_t | x_1:t), t = 1..T-1
        (_, mu_p, logvar_p), _ = self.prior(h[:, :-1])  # p(z_t | x_1:t-1)
        g, _ = self.predictor(torch.cat([h[:, :-1], z], -1))  # (B, T-1, g), teacher forcing
        pred = self.decode_chunks(g, skips, steps)  # (B, T-1, C, H, W)
        mse = (pred - video[:, 1:]).pow(2).mean(dim=(0, 2, 3, 4)).sum()  # nn.MSELoss per step, summed over steps
        kld = kl_logvar(mu, logvar, mu_p, logvar_p).sum() / B  # official kl_criterion summed over steps
        loss = mse + c.beta * kld
        return loss, {"mse": mse.detach() / (T - 1), "kl": kld.detach() / (T - 1)}

    def encode_chunks(self, video: Tensor, steps: int) -> tuple[Tensor, list[list[Tensor]]]:
        """`encode`, `steps` time steps at a time (checkpointed with checkpoint_activations):
        h (B, T, g) and, per chunk, its skips [(B, <= steps, c, h, w)]."""
        hs, skips = [], []
        for x in video.split(steps, dim=1):  # (B, <= steps, C, H, W)
            h, s = checkpointed(self.encode, x, module=self.encoder, enabled=self.cfg.checkpoint_activations)
            hs.append(h)
            skips.append(s)
        return torch.cat(hs, 1), skips

    def decode_chunks(self, g: Tensor, skips: list[list[Tensor]], steps: int) -> Tensor:
        """g (B, T-1, g) and encode_chunks' skips -> predicted frames 1..T-1 (B, T-1, C, H, W), in the
        same chunks of `steps`. Frame t + 1 uses the skips of frame t up to the last "past" frame, then
        those of frame n_past - 1: all of one decoder chunk's come from one encoder chunk (the same
        steps, or the one holding frame n_past - 1)."""
        B, T1 = g.shape[:2]
        last = self.cfg.n_past - 1
        preds = []
        for a in range(0, T1, steps):
            b = min(a + steps, T1)
            j = min(a, last) // steps  # the encoder chunk of every source frame of steps a..b-1
            src = torch.arange(a, b, device=g.device).clamp(max=last) - j * steps  # (b - a,) in chunk j

            def run(g_c: Tensor, *chunk: Tensor, src: Tensor = src) -> Tensor:
                step_skips = [s[:, src].flatten(0, 1) for s in chunk]  # (B*(b-a), ...)
                with time_steps(self.decoder, g_c.shape[1]):  # one batch-norm batch per step, as the official loop
                    return self.decoder(g_c.flatten(0, 1), step_skips).unflatten(0, (B, -1))  # (B, b-a, C, H, W)

            enabled = self.cfg.checkpoint_activations
            preds.append(checkpointed(run, g[:, a:b], *skips[j], module=self.decoder, enabled=enabled))
        return torch.cat(preds, 1)

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, n_samples: int = 1) -> Tensor:
        """Posterior over the context (ground truth), then prior samples with generated frames fed back."""
        return torch.cat(list(self.predict_chunks(context, horizon, n_samples)), dim=2)

    @torch.no_grad()
    def predict_chunks(self, context: Tensor, horizon: int, n_samples: int = 1, chunk: int = 100):
        """`predict`, `chunk` frames at a time: (B, n, <= chunk, C, H, W) each."""
        B = context.shape[0]
        with eval_mode(self):  # batch norm on running statistics, whatever mode the caller left
            for frames in self.rollout_chunks(context.repeat_interleave(n_samples, dim=0), horizon, chunk):
                yield frames.clamp(0, 1).unflatten(0, (B, n_samples))  # (B, n, chunk, C, H, W)

    def rollout(self, ctx: Tensor, horizon: int, **options) -> Tensor:
        """ctx (N, Tc, C, H, W) -> (N, horizon, C, H, W); `options` as for `rollout_chunks`."""
        return torch.cat(list(self.rollout_chunks(ctx, horizon, chunk=max(horizon, 1), **options)), dim=1)

    def rollout_chunks(self, ctx: Tensor, horizon: int, chunk: int, eps: Tensor | None = None, skip_frame: int = -1):
        """`rollout`, yielded `chunk` generated frames at a time: (N, <= chunk, C, H, W).

        eps (N, Tc - 1 + horizon, z): the noise of the posterior over the context, then of the prior
        at each predicted frame (drawn when None; zeros = mean latents). skip_frame: the context frame
        whose skips the decoder uses; -1 (the last) is the harness's rule, -2 the official
        generate_svg_lp.py's (its skips stop updating at frame n_past - 2)."""
        N, Tc = ctx.shape[:2]
        if not -Tc <= skip_frame < Tc:
            raise ValueError(f"skip_frame {skip_frame} is outside a context of {Tc} frames")
        noise = (lambda a, b: None) if eps is None else (lambda a, b: eps[:, a:b])
        h, skips = self.encode(ctx)  # (N, Tc, g), [(N, Tc, ...)]
        skip = [s[:, skip_frame] for s in skips]
        prior_state = pred_state = None
        if Tc > 1:  # warm up on the context as in the official generation: posterior z, ground-truth inputs
            (z, _, _), _ = self.posterior(h[:, 1:], eps=noise(0, Tc - 1))
            _, prior_state = self.prior(h[:, :-1])
            _, pred_state = self.predictor(torch.cat([h[:, :-1], z], -1), pred_state)
        h_in = h[:, -1:]  # (N, 1, g): the last context frame
        frames = []
        for k in range(horizon):
            (z, _, _), prior_state = self.prior(h_in, prior_state, eps=noise(Tc - 1 + k, Tc + k))
            g, pred_state = self.predictor(torch.cat([h_in, z], -1), pred_state)
            x = self.decoder(g[:, 0], skip)  # (N, C, H, W)
            frames.append(x)
            if len(frames) == chunk or k == horizon - 1:
                yield torch.stack(frames, 1)
                frames = []
            if k < horizon - 1:
                h_in = self.encoder(x)[0][:, None]  # the generated frame is the next input
