"""Variational Temporal Abstraction (Kim, Ahn, Bengio, NeurIPS 2019): a two-level
hierarchical state-space model whose lower level infers when the upper level steps.

Reference code: github.com/taesupkim/vta (hssm.py, modules.py, utils.py, train.py), ported
step by step: posterior boundaries from a 1-D conv net over the frame embeddings, sampled
with Gumbel-softmax and the straight-through estimator at an annealed temperature
(beta = (max - min) * 0.999^(step / anneal) + min); the prior boundary is pushed towards a
boundary after `max_seg_len` frames and away from one after `max_seg_num` segments; the
abstract (upper) state is inferred from a forward GRU up to the segment and a backward GRU
over it; the observation (lower) belief is reset to the abstract feature at every
boundary; the boundary KL is the difference of the concrete log-densities of the sample.
At test time boundaries are hard (argmax of the prior logits, the official full_generation).

Changed: the official networks work at 32x32; we add one stride-2 conv at the input of the
encoder and one stride-2 transposed conv at the output of the decoder for 64x64 frames.
Frames are mapped to [-1, 1] without the official 5-bit quantisation. The step counter that
drives the temperature lives in a buffer (saved with the model) and advances on every
`loss` call in training mode. See docs/models.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import VideoModel, register_model
from models.nets import apply_frames, eval_mode, gaussian_kl, gaussian_nll


@dataclass(frozen=True)
class VTAConfig:
    belief: int = 128  # GRU belief size of both levels, feature and encoder size (official belief_size)
    state: int = 8  # stochastic state size of both levels (official state_size)
    num_layers: int = 3  # hidden 1-D conv layers of the posterior boundary detector (official num_layers)
    init_size: int = 5  # frames at each end of a training window used only as context (official init_size)
    max_seg_len: int = 8  # the prior is forced to a boundary after this many frames (official seg_len)
    max_seg_num: int = 5  # ...and to no boundary once a window has this many segments (official seg_num)
    beta_max: float = 1.0  # Gumbel-softmax temperature at step 0 (official max_beta)
    beta_min: float = 0.1  # temperature it decays to (official min_beta)
    beta_anneal: float = 100.0  # beta = (max - min) * 0.999^(step / anneal) + min; 0 = constant beta_max
    channels: int = 1  # image channels (filled from the dataset config)
    dec_std: float = 1.0  # std of the Gaussian image likelihood in VTA's [-1, 1] pixel space (official obs_std)

    def __post_init__(self):
        if self.init_size < 1:
            raise ValueError(
                f"init_size must be >= 1 (the first abstract belief reads frame init_size - 1), got {self.init_size}"
            )
        if self.max_seg_len < 1 or self.max_seg_num < 1:
            raise ValueError(f"max_seg_len and max_seg_num must be >= 1, got {self.max_seg_len}, {self.max_seg_num}")


def conv2d(cin: int, cout: int, k: int, s: int, p: int) -> nn.Sequential:
    """Official ConvLayer2D: conv without bias, batch norm, ELU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ELU())


def deconv2d(cin: int, cout: int, k: int = 4, s: int = 2, p: int = 1) -> nn.Sequential:
    """Official ConvTransLayer2D: transposed conv without bias, batch norm, ELU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ELU())


class Encoder(nn.Module):
    """(N, C, 64, 64) -> (N, F): 64 -> 32 (added for 64x64) -> 16 -> 8 -> 4 -> 1."""

    def __init__(self, channels: int, feat: int):
        super().__init__()
        layers = [conv2d(channels, feat, 4, 2, 1)]  # the added layer: 64 -> 32
        layers += [conv2d(feat, feat, 4, 2, 1) for _ in range(3)]  # official: 32 -> 16 -> 8 -> 4
        layers += [conv2d(feat, feat, 4, 1, 0)]  # 4 -> 1
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)


class Decoder(nn.Module):
    """(N, F) -> (N, C, 64, 64) in [-1, 1]: 1 -> 4 -> 8 -> 16 -> 32 (added for 64x64) -> 64."""

    def __init__(self, feat: int, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            deconv2d(feat, feat, 4, 1, 0),  # 1 -> 4
            deconv2d(feat, feat),  # 4 -> 8
            deconv2d(feat, feat),  # 8 -> 16
            deconv2d(feat, feat),  # the added layer: 16 -> 32
            nn.ConvTranspose2d(feat, channels, 4, 2, 1),  # 32 -> 64, bias, no norm (official last layer)
            nn.Tanh(),
        )

    def forward(self, feat: Tensor) -> Tensor:
        return self.net(feat[:, :, None, None])


class PostBoundary(nn.Module):
    """Official PostBoundaryDetector: 1-D convs over time (kernel 3, BN, ELU), then 2 logits (read, copy)."""

    def __init__(self, feat: int, num_layers: int):
        super().__init__()
        layers = []
        for _ in range(num_layers):
            layers += [nn.Conv1d(feat, feat, 3, 1, 1, bias=False), nn.BatchNorm1d(feat), nn.ELU()]
        layers.append(nn.Conv1d(feat, 2, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, enc: Tensor) -> Tensor:
        return self.net(enc.transpose(1, 2)).transpose(1, 2)  # (B, T, F) -> (B, T, 2)


class Latent(nn.Module):
    """Official LatentDistribution: mean linear, std sigmoid(linear)."""

    def __init__(self, in_dim: int, size: int):
        super().__init__()
        self.mean = nn.Linear(in_dim, size)
        self.std = nn.Linear(in_dim, size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(x), torch.sigmoid(self.std(x))


def rsample(dist: tuple[Tensor, Tensor]) -> Tensor:
    mean, std = dist
    return mean + std * torch.randn_like(std)


def log_density_concrete(log_alpha: Tensor, log_sample: Tensor, temp: float) -> Tensor:
    """Official utils.log_density_concrete: log-density of a binary concrete sample (up to a constant)."""
    exp_term = log_alpha - temp * log_sample
    return exp_term.sum(-1) - 2.0 * torch.logsumexp(exp_term, -1)


@register_model("vta")
class VTA(VideoModel):
    """VTA. `loss` is the official per-frame negative ELBO; `predict` is the official full generation."""

    config_class = VTAConfig

    def __init__(self, **hparams):
        super().__init__(**hparams)
        c = self.cfg
        F_, S = c.belief, c.state
        self.encoder = Encoder(c.channels, F_)
        self.decoder = Decoder(F_, c.channels)
        self.prior_boundary = nn.Linear(F_, 2)
        self.post_boundary = PostBoundary(F_, c.num_layers)
        self.abs_feat = nn.Linear(F_ + S, F_)
        self.obs_feat = nn.Linear(F_ + S, F_)
        self.update_abs_belief = nn.GRUCell(S, F_)
        self.update_obs_belief = nn.GRUCell(S + F_, F_)
        self.abs_post_fwd = nn.GRUCell(F_, F_)
        self.abs_post_bwd = nn.GRUCell(F_, F_)
        self.obs_post_fwd = nn.GRUCell(F_, F_)
        self.prior_abs_state = Latent(F_, S)
        self.prior_obs_state = Latent(F_, S)
        self.post_abs_state = Latent(2 * F_, S)
        self.post_obs_state = Latent(2 * F_, S)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # training steps taken (temperature)

    # ------------------------------------------------------------ boundaries

    @property
    def temperature(self) -> float:
        c = self.cfg
        if not c.beta_anneal:
            return c.beta_max
        return (c.beta_max - c.beta_min) * 0.999 ** (int(self.step) / c.beta_anneal) + c.beta_min

    def boundary_sampler(self, log_alpha: Tensor, temp: float) -> tuple[Tensor, Tensor]:
        """log_alpha (..., 2) -> hard one-hot (read, copy) with straight-through gradients, and its log-probs."""
        if self.training:
            u = torch.empty_like(log_alpha).uniform_(1e-4, 1 - 1e-4)
            logits = (log_alpha - torch.log(-torch.log(u))) / temp  # Gumbel noise
        else:
            logits = log_alpha / temp
        log_prob = logits - torch.logsumexp(logits, -1, keepdim=True)
        prob = log_prob.exp()
        hard = F.one_hot(prob.argmax(-1), 2).to(prob.dtype)
        return hard + (prob - prob.detach()), log_prob

    def regularize_prior_boundary(self, log_alpha: Tensor, boundary: Tensor) -> Tensor:
        """Official: force the prior towards a boundary after max_seg_len frames, none after max_seg_num segments.

        log_alpha (B, T, 2), boundary (B, T, 2) -> (B, T, 2). Training only.
        """
        big = math.log((1 - 1e-3) / 1e-3)
        near_read = log_alpha.new_tensor([big, -big])
        near_copy = log_alpha.new_tensor([-big, big])
        seg_len = log_alpha.new_zeros(log_alpha.shape[0], 1)
        seg_num = log_alpha.new_zeros(log_alpha.shape[0], 1)
        out = []
        for t in range(log_alpha.shape[1]):
            read, copy = boundary[:, t, :1], boundary[:, t, 1:]
            seg_len = read + copy * (seg_len + 1.0)
            seg_num = read * (seg_num + 1.0) + copy * seg_num
            over_len = (seg_len >= self.cfg.max_seg_len).float().detach()
            over_num = (seg_num >= self.cfg.max_seg_num).float().detach()
            new = over_num * near_copy + (1.0 - over_num) * log_alpha[:, t]
            out.append(over_len * near_read + (1.0 - over_len) * new)
        return torch.stack(out, 1)

    # ------------------------------------------------------------ training

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.cfg
        B, T, C, H, W = video.shape
        init, seq = c.init_size, T - 2 * c.init_size
        if seq < 1:
            raise ValueError(f"VTA needs training windows longer than 2 * init_size = {2 * init}; got {T} frames")
        if self.training:
            self.step += 1
        temp = self.temperature
        x = video * 2 - 1  # (B, T, C, H, W) in [-1, 1], the official pixel space
        enc = apply_frames(self.encoder, x)  # (B, T, F)

        post_logit = self.post_boundary(enc)  # (B, T, 2)
        boundary, sample_logit = self.boundary_sampler(post_logit, temp)
        forced = torch.zeros(T, dtype=torch.bool, device=video.device)
        forced[: init + 1] = True  # the official code forces reads at both ends of the window
        forced[-init:] = True
        boundary = torch.where(forced[None, :, None], boundary.new_tensor([1.0, 0.0]), boundary)

        # posterior encoders: forward GRUs (the observation one reset at boundaries), backward GRU per segment
        abs_fwd, abs_bwd, obs_fwd = [], [None] * T, []
        a_f = enc.new_zeros(B, c.belief)
        a_b = enc.new_zeros(B, c.belief)
        o_f = enc.new_zeros(B, c.belief)
        for t in range(T):
            a_f = self.abs_post_fwd(enc[:, t], a_f)
            o_f = self.obs_post_fwd(enc[:, t], boundary[:, t, 1:] * o_f)
            abs_fwd.append(a_f)
            obs_fwd.append(o_f)
            tb = T - 1 - t
            a_b = self.abs_post_bwd(enc[:, tb], a_b)
            abs_bwd[tb] = a_b
            a_b = boundary[:, tb, 1:] * a_b

        abs_state = enc.new_zeros(B, c.state)
        obs_state = enc.new_zeros(B, c.state)
        obs_belief = enc.new_zeros(B, c.belief)
        feats, prior_logits, kl_abs, kl_obs = [], [], [], []
        for t in range(init, init + seq):
            read, copy = boundary[:, t, :1], boundary[:, t, 1:]
            if t == init:
                abs_belief = abs_fwd[t - 1]
            else:
                abs_belief = read * self.update_abs_belief(abs_state, abs_belief) + copy * abs_belief
            prior_abs = self.prior_abs_state(abs_belief)
            post_abs = self.post_abs_state(torch.cat([abs_fwd[t - 1], abs_bwd[t]], -1))
            abs_state = read * rsample(post_abs) + copy * abs_state
            abs_feat = self.abs_feat(torch.cat([abs_belief, abs_state], -1))
            # the lower level restarts from the abstract feature whenever the upper level steps
            obs_belief = read * abs_feat + copy * self.update_obs_belief(
                torch.cat([obs_state, abs_feat], -1), obs_belief
            )
            prior_obs = self.prior_obs_state(obs_belief)
            post_obs = self.post_obs_state(torch.cat([obs_fwd[t], abs_feat], -1))
            obs_state = rsample(post_obs)
            obs_feat = self.obs_feat(torch.cat([obs_belief, obs_state], -1))
            feats.append(obs_feat)
            prior_logits.append(self.prior_boundary(obs_feat))
            kl_abs.append(gaussian_kl(*post_abs, *prior_abs) * read[:, 0].detach())
            kl_obs.append(gaussian_kl(*post_obs, *prior_obs))

        rec = apply_frames(self.decoder, torch.stack(feats, 1))  # (B, seq, C, H, W)
        obs_cost = gaussian_nll(x[:, init : init + seq], rec, c.dec_std)  # (B, seq)
        # the prior logit at step t predicts the boundary at t + 1
        window = boundary[:, init : init + seq]
        prior_logit = torch.stack(prior_logits, 1)
        if self.training:
            prior_logit = self.regularize_prior_boundary(prior_logit, window)
        shifted = slice(init + 1, init + 1 + seq)
        log_q = log_density_concrete(post_logit[:, shifted], sample_logit[:, shifted], temp)
        log_p = log_density_concrete(prior_logit, sample_logit[:, shifted], temp)
        kl_mask = log_q - log_p  # (B, seq)
        kl_abs, kl_obs = torch.stack(kl_abs, 1), torch.stack(kl_obs, 1)  # (B, seq)
        loss = obs_cost.mean() + kl_abs.mean() + kl_obs.mean() + kl_mask.mean()
        terms = {
            "nll": obs_cost.mean(),
            "kl_abs": kl_abs.mean(),
            "kl_obs": kl_obs.mean(),
            "kl_mask": kl_mask.mean(),
            "reads": window[..., 0].sum(1).mean(),
            "temperature": torch.tensor(temp),
        }
        return loss, {k: v.detach() for k, v in terms.items()}

    # ------------------------------------------------------------ open loop

    @torch.no_grad()
    def generate(self, context: Tensor, horizon: int) -> tuple[Tensor, Tensor]:
        """Official full_generation. context (N, Tc, C, H, W) in [0, 1] ->
        frames (N, horizon, C, H, W) in [-1, 1] and hard boundaries (N, horizon) in {0, 1}."""
        feats, reads = self.imagine(context, horizon)
        frames = torch.cat([apply_frames(self.decoder, chunk) for chunk in feats.split(100, dim=1)], 1)
        return frames, reads

    def imagine(self, context: Tensor, horizon: int) -> tuple[Tensor, Tensor]:
        """The latent rollout of `generate`: features (N, horizon, F) and hard boundaries (N, horizon)."""
        c = self.cfg
        N, Tc = context.shape[:2]
        enc = apply_frames(self.encoder, context * 2 - 1)  # (N, Tc, F)
        a_f = enc.new_zeros(N, c.belief)
        for t in range(Tc):
            a_f = self.abs_post_fwd(enc[:, t], a_f)
        abs_state = enc.new_zeros(N, c.state)
        obs_state = enc.new_zeros(N, c.state)
        obs_belief = enc.new_zeros(N, c.belief)
        abs_belief = a_f  # the official init_abs_belief is the identity on the forward summary of the context
        read = enc.new_ones(N, 1)
        feats, reads = [], []
        for t in range(horizon):
            copy = 1 - read
            if t > 0:
                abs_belief = read * self.update_abs_belief(abs_state, abs_belief) + copy * abs_belief
            abs_state = read * rsample(self.prior_abs_state(abs_belief)) + copy * abs_state
            abs_feat = self.abs_feat(torch.cat([abs_belief, abs_state], -1))
            obs_belief = read * abs_feat + copy * self.update_obs_belief(
                torch.cat([obs_state, abs_feat], -1), obs_belief
            )
            obs_state = rsample(self.prior_obs_state(obs_belief))
            obs_feat = self.obs_feat(torch.cat([obs_belief, obs_state], -1))
            feats.append(obs_feat)
            reads.append(read[:, 0])
            hard, _ = self.boundary_sampler(self.prior_boundary(obs_feat), self.temperature)
            read = hard[:, :1]
        return torch.stack(feats, 1), torch.stack(reads, 1)  # (N, horizon, F), (N, horizon)

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, n_samples: int = 1) -> Tensor:
        return torch.cat(list(self.predict_chunks(context, horizon, n_samples)), dim=2)

    @torch.no_grad()
    def predict_chunks(self, context: Tensor, horizon: int, n_samples: int = 1, chunk: int = 100):
        """`predict`, decoded `chunk` frames at a time: (B, n, <= chunk, C, H, W) each."""
        B = context.shape[0]
        with eval_mode(self):  # batch norm on running statistics, hard boundaries, whatever mode the caller left
            feats, _ = self.imagine(context.repeat_interleave(n_samples, dim=0), horizon)  # (B*n, horizon, F)
            for part in feats.split(chunk, dim=1):
                frames = ((apply_frames(self.decoder, part) + 1) / 2).clamp(0, 1)  # back to [0, 1]
                yield frames.unflatten(0, (B, n_samples))  # (B, n, chunk, C, H, W)
