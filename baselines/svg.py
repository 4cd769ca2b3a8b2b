"""SVG-LP: Stochastic Video Generation with a Learned Prior (Denton & Fergus, ICML 2018).

Reference code: github.com/edenton/svg (train_svg_lp.py, models/dcgan_64.py, vgg_64.py,
lstm.py, utils.init_weights). Kept: the DCGAN-64 encoder/decoder with skip connections
(VGG-64 with `backbone: vgg`, as the paper uses for KTH), g = 128, z = 10, LSTMs of 256
units (predictor 2 layers, prior and posterior 1 layer each), the posterior reading frame
t and the prior frame t - 1, teacher forcing in training, loss = sum over time of the
per-frame MSE + beta * KL with beta = 1e-4, the official weight init; at test the prior
samples z and the model's own generated frames are fed back after the context.

Changed, fixing the two known pitfalls of the official code: (1) the skip connections
come from the LAST context frame (the official code uses frame n_past - 2 in training and
ties test time to it); (2) batch norm runs on its running statistics at test time
(`predict` switches to eval mode itself; the official code left the encoder and decoder
in training mode, so a prediction depended on the other videos of the batch). In training
the encoder sees all frames of the batch at once (one set of batch statistics instead of
one per time step), and the LSTMs run as torch.nn.LSTM over the sequence (same weights
as the official stack of LSTMCells). See docs/models.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.base import VideoModel, register_model
from models.nets import eval_mode


@dataclass(frozen=True)
class SVGConfig:
    backbone: str = "dcgan"  # frame encoder/decoder: dcgan (DCGAN-64) | vgg (VGG-64, the paper's KTH model)
    g_dim: int = 128  # encoder output / decoder input size (official g_dim)
    z_dim: int = 10  # latent size per frame (official z_dim)
    rnn_size: int = 256  # LSTM units (official rnn_size)
    predictor_layers: int = 2  # LSTM layers of the frame predictor (official predictor_rnn_layers)
    posterior_layers: int = 1  # LSTM layers of the posterior q(z_t | x_1:t) (official posterior_rnn_layers)
    prior_layers: int = 1  # LSTM layers of the learned prior p(z_t | x_1:t-1) (official prior_rnn_layers)
    beta: float = 1e-4  # weight of the KL term (official beta)
    nf: int = 64  # base conv width of the encoder/decoder (official: 64; smaller only for CPU presets)
    n_past: int = 36  # training: frames whose skips the decoder uses; later frames reuse frame n_past - 1's
    channels: int = 1  # image channels (filled from the dataset config)

    def __post_init__(self):
        if self.backbone not in ("dcgan", "vgg"):
            raise ValueError(f"backbone must be 'dcgan' or 'vgg', got {self.backbone!r}")
        if self.n_past < 1:
            raise ValueError(f"n_past must be >= 1, got {self.n_past}")


# ---------------------------------------------------------------- frame encoders / decoders


def block(cin: int, cout: int, conv: type = nn.Conv2d, k: int = 4, s: int = 2, p: int = 1) -> nn.Sequential:
    return nn.Sequential(conv(cin, cout, k, s, p), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class DCGANEncoder(nn.Module):
    """dcgan_64.encoder: (N, C, 64, 64) -> (N, g) in [-1, 1] and skips at 32, 16, 8, 4."""

    def __init__(self, g: int, nc: int, nf: int = 64):
        super().__init__()
        self.stages = nn.ModuleList([block(nc, nf), block(nf, 2 * nf), block(2 * nf, 4 * nf), block(4 * nf, 8 * nf)])
        self.last = nn.Sequential(nn.Conv2d(8 * nf, g, 4, 1, 0), nn.BatchNorm2d(g), nn.Tanh())

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
        self.last = nn.Sequential(nn.Conv2d(d, g, 4, 1, 0), nn.BatchNorm2d(g), nn.Tanh())
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

    def forward(self, x: Tensor, state=None):
        """x (N, T, in) -> (N, T, out), state."""
        h, state = self.lstm(self.embed(x), state)
        return self.out(h), state


class GaussianHead(nn.Module):
    """Official gaussian_lstm heads: mu and logvar linears; z = mu + exp(logvar / 2) * eps."""

    def __init__(self, hidden: int, z: int):
        super().__init__()
        self.mu = nn.Linear(hidden, z)
        self.logvar = nn.Linear(hidden, z)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.mu(h), self.logvar(h)
        return mu + (0.5 * logvar).exp() * torch.randn_like(mu), mu, logvar


def kl_logvar(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    """Official kl_criterion (before the sum): KL(N(mu1, e^lv1) || N(mu2, e^lv2)) per element."""
    return 0.5 * (logvar2 - logvar1) + (logvar1.exp() + (mu1 - mu2) ** 2) / (2 * logvar2.exp()) - 0.5


def init_weights(m: nn.Module) -> None:
    """Official utils.init_weights: conv and linear N(0, 0.02), batch norm scale N(1, 0.02), biases 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


# ---------------------------------------------------------------- the model


@register_model("svg")
class SVG(VideoModel):
    """SVG-LP. `loss` is the official objective; `predict` feeds its own frames back after the context."""

    config_class = SVGConfig

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

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.cfg
        B, T, C, H, W = video.shape
        if T <= c.n_past:
            raise ValueError(
                f"SVG trains on windows longer than n_past = {c.n_past}; got {T} frames (raise train.seq_len)"
            )
        h, skips = self.encoder(video.flatten(0, 1))  # (B*T, g), skips (B*T, ...)
        h = h.unflatten(0, (B, T))  # (B, T, g)
        (z, mu, logvar), _ = self.posterior(h[:, 1:])  # q(z_t | x_1:t), t = 1..T-1
        (_, mu_p, logvar_p), _ = self.prior(h[:, :-1])  # p(z_t | x_1:t-1)
        g, _ = self.predictor(torch.cat([h[:, :-1], z], -1))  # (B, T-1, g), teacher forcing
        # frame t uses the skips of frame t - 1 up to the last "past" frame, then those of frame n_past - 1
        src = torch.arange(T - 1, device=video.device).clamp(max=c.n_past - 1)  # (T-1,)
        step_skips = [s.unflatten(0, (B, T))[:, src].flatten(0, 1) for s in skips]  # (B*(T-1), ...)
        pred = self.decoder(g.flatten(0, 1), step_skips).unflatten(0, (B, T - 1))  # (B, T-1, C, H, W)
        mse = (pred - video[:, 1:]).pow(2).mean(dim=(0, 2, 3, 4)).sum()  # nn.MSELoss per step, summed over steps
        kld = kl_logvar(mu, logvar, mu_p, logvar_p).sum() / B  # official kl_criterion summed over steps
        loss = mse + c.beta * kld
        return loss, {"mse": mse.detach() / (T - 1), "kl": kld.detach() / (T - 1)}

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

    def rollout(self, ctx: Tensor, horizon: int) -> Tensor:
        """ctx (N, Tc, C, H, W) -> (N, horizon, C, H, W)."""
        return torch.cat(list(self.rollout_chunks(ctx, horizon, chunk=max(horizon, 1))), dim=1)

    def rollout_chunks(self, ctx: Tensor, horizon: int, chunk: int):
        """`rollout`, yielded `chunk` generated frames at a time: (N, <= chunk, C, H, W)."""
        N, Tc = ctx.shape[:2]
        h, skips = self.encoder(ctx.flatten(0, 1))
        h = h.unflatten(0, (N, Tc))  # (N, Tc, g)
        skip = [s.unflatten(0, (N, Tc))[:, -1] for s in skips]  # the last context frame's skips
        prior_state = pred_state = None
        if Tc > 1:  # warm up on the context as in the official generation: posterior z, ground-truth inputs
            (z, _, _), _ = self.posterior(h[:, 1:])
            _, prior_state = self.prior(h[:, :-1])
            _, pred_state = self.predictor(torch.cat([h[:, :-1], z], -1), pred_state)
        h_in = h[:, -1:]  # (N, 1, g): the last context frame
        frames = []
        for k in range(horizon):
            (z, _, _), prior_state = self.prior(h_in, prior_state)
            g, pred_state = self.predictor(torch.cat([h_in, z], -1), pred_state)
            x = self.decoder(g[:, 0], skip)  # (N, C, H, W)
            frames.append(x)
            if len(frames) == chunk or k == horizon - 1:
                yield torch.stack(frames, 1)
                frames = []
            if k < horizon - 1:
                h_in = self.encoder(x)[0][:, None]  # the generated frame is the next input
