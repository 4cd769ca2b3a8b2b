"""Variational Temporal Abstraction (Kim, Ahn, Bengio, NeurIPS 2019): a two-level
hierarchical state-space model whose lower level infers when the upper level steps.

Reference code: github.com/taesupkim/vta at 4c23131 (hssm.py, modules.py, utils.py,
train.py), ported step by step and pinned to it by tests/test_vta_reference.py (same
weights, same inputs, outputs equal to float32 precision): posterior boundaries from a 1-D
conv net over the frame embeddings, sampled with Gumbel-softmax and the straight-through
estimator at an annealed temperature (beta = (max - min) * 0.999^(step / anneal) + min);
the prior boundary pushed towards a boundary after `max_seg_len` frames and away from one
after `max_seg_num` segments; the abstract (upper) state inferred from a forward GRU up to
the segment and a backward GRU over it; the observation (lower) belief reset to the
abstract feature at every boundary; the boundary KL as the difference of the concrete
log-densities of the sample.

Open loop, the context is seen as in training: the first `init_size` context frames start
the abstract belief (the official forward GRU), the rest are filtered with the posterior
exactly as a training window's modelled frames, and the prediction starts with a boundary
(the official `full_generation`, which this reduces to when the context is `init_size`
frames) and follows the prior with hard boundaries (argmax of the prior logits).

Changed: the official networks work at 32x32; for larger frames each doubling of
`image_size` adds one stride-2 conv at the input of the encoder and one stride-2
transposed conv before the output of the decoder (one of each for 64x64). The likelihood
is a Gaussian over frames in [0, 1] with std `dec_std` (the official obs_std is the std in
[-1, 1], i.e. 2 * dec_std), without the official 5-bit quantisation. The step counter that
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
from models.checkpointing import sequential
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
    channels: int = 1  # image channels (filled from the dataset config; official: 3)
    image_size: int = 64  # frame height and width, 32 * 2^k (official networks: 32; 64 adds one layer each)
    dec_std: float = 1.0  # std of the Gaussian image likelihood over frames in [0, 1] (official obs_std / 2)
    checkpoint_activations: bool = False  # training: keep only each encoder/decoder layer's input for
    # backward and re-run the layer there (same loss and gradients, less memory, more time per step;
    # docs/performance.md). On in the paper preset (vta.yaml).

    def __post_init__(self):
        if self.init_size < 1:
            raise ValueError(
                f"init_size must be >= 1 (the first abstract belief reads frame init_size - 1), got {self.init_size}"
            )
        if self.max_seg_len < 1 or self.max_seg_num < 1:
            raise ValueError(f"max_seg_len and max_seg_num must be >= 1, got {self.max_seg_len}, {self.max_seg_num}")
        if self.image_size < 32 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be 32, 64, 128, ... (32 * 2^k), got {self.image_size}")
        if self.dec_std <= 0:
            raise ValueError(f"dec_std must be > 0, got {self.dec_std}")

    @property
    def extra_layers(self) -> int:
        """Stride-2 layers added to each of the official encoder and decoder (32x32): 1 for 64x64."""
        return int(math.log2(self.image_size // 32))


def conv2d(cin: int, cout: int, k: int, s: int, p: int) -> nn.Sequential:
    """Official ConvLayer2D: conv without bias, batch norm, ELU. The ELU runs in place on the batch
    norm's output (which no backward reads: batch norm keeps its input, ELU its result): one block
    of B x T frames fewer per layer and forward (2.6 GB at the paper batch)."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ELU(inplace=True))


def deconv2d(cin: int, cout: int, k: int = 4, s: int = 2, p: int = 1) -> nn.Sequential:
    """Official ConvTransLayer2D: transposed conv without bias, batch norm, ELU (in place, as conv2d's)."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ELU(inplace=True))


class Encoder(nn.Module):
    """(N, C, S, S) -> (N, F). Official (S = 32): 32 -> 16 -> 8 -> 4 -> 1; each doubling of S
    adds one stride-2 conv in front (64 -> 32)."""

    def __init__(self, channels: int, feat: int, extra: int, checkpoint: bool = False):
        super().__init__()
        self.checkpoint = checkpoint  # each layer's input only, kept for backward
        downs = 3 + extra  # stride-2 convs down to 4x4
        layers = [conv2d(channels if i == 0 else feat, feat, 4, 2, 1) for i in range(downs)]
        layers.append(conv2d(feat, feat, 4, 1, 0))  # 4 -> 1
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return sequential(self.net, x, self.checkpoint).flatten(1)


class Decoder(nn.Module):
    """(N, F) -> (N, C, S, S) in [-1, 1]. Official (S = 32): 1 -> 4 -> 8 -> 16 -> 32; each
    doubling of S adds one stride-2 transposed conv before the last (16 -> 32 for 64x64)."""

    def __init__(self, feat: int, channels: int, extra: int, checkpoint: bool = False):
        super().__init__()
        self.checkpoint = checkpoint  # each layer's input only, kept for backward
        layers = [deconv2d(feat, feat, 4, 1, 0)]  # 1 -> 4
        layers += [deconv2d(feat, feat) for _ in range(2 + extra)]  # 4 -> 8 -> 16 (-> 32 ...)
        layers.append(
            nn.Sequential(nn.ConvTranspose2d(feat, channels, 4, 2, 1), nn.Tanh())
        )  # official last: bias, no norm
        self.net = nn.Sequential(*layers)

    def forward(self, feat: Tensor) -> Tensor:
        return sequential(self.net, feat[:, :, None, None], self.checkpoint)


class PostBoundary(nn.Module):
    """Official PostBoundaryDetector: 1-D convs over time (kernel 3, BN, ELU), then 2 logits (read, copy)."""

    def __init__(self, feat: int, num_layers: int):
        super().__init__()
        layers = []
        for _ in range(num_layers):
            layers.append(nn.Sequential(nn.Conv1d(feat, feat, 3, 1, 1, bias=False), nn.BatchNorm1d(feat), nn.ELU()))
        layers.append(nn.Sequential(nn.Conv1d(feat, 2, 3, 1, 1)))  # official last: bias, no norm
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
    """A reparameterised sample of a diagonal Gaussian (mean, std)."""
    mean, std = dist
    return mean + std * torch.randn_like(std)


def gumbel_noise(log_alpha: Tensor) -> Tensor:
    """Official utils.gumbel_sampling's noise: -log(-log u), u ~ U(1e-4, 1 - 1e-4), shaped like log_alpha."""
    u = torch.empty_like(log_alpha).uniform_(1e-4, 1 - 1e-4)
    return -torch.log(-torch.log(u))


def log_density_concrete(log_alpha: Tensor, log_sample: Tensor, temp: float) -> Tensor:
    """Official utils.log_density_concrete: log-density of a binary concrete sample (up to a constant)."""
    exp_term = log_alpha - temp * log_sample
    return exp_term.sum(-1) - 2.0 * torch.logsumexp(exp_term, -1)


@register_model("vta")
class VTA(VideoModel):
    """VTA. `loss` is the official per-frame negative ELBO; `predict` filters the context with
    the posterior, then follows the official full generation."""

    config_class = VTAConfig
    paper_label = "VTA"  # Table 1's row

    def __init__(self, **hparams):
        super().__init__(**hparams)
        c = self.cfg
        F_, S = c.belief, c.state
        self.encoder = Encoder(c.channels, F_, c.extra_layers, c.checkpoint_activations)
        self.decoder = Decoder(F_, c.channels, c.extra_layers, c.checkpoint_activations)
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

    # ------------------------------------------------------------ frames

    def encode(self, video: Tensor) -> Tensor:
        """(B, T, C, S, S) in [0, 1] -> (B, T, F), through the official [-1, 1] pixel space."""
        size = self.cfg.image_size
        if video.shape[-2:] != (size, size):
            raise ValueError(f"VTA is built for {size}x{size} frames (model.image_size), got {tuple(video.shape[-2:])}")
        return apply_frames(self.encoder, video * 2 - 1)

    def decode(self, feats: Tensor) -> Tensor:
        """(B, T, F) -> frame means (B, T, C, S, S) in [0, 1] (the tanh decoder's [-1, 1], shifted)."""
        return (apply_frames(self.decoder, feats) + 1) / 2

    # ------------------------------------------------------------ boundaries

    @property
    def temperature(self) -> float:
        c = self.cfg
        if not c.beta_anneal:
            return c.beta_max
        return (c.beta_max - c.beta_min) * 0.999 ** (int(self.step) / c.beta_anneal) + c.beta_min

    def boundary_sampler(self, log_alpha: Tensor, temp: float) -> tuple[Tensor, Tensor]:
        """log_alpha (..., 2) -> hard one-hot (read, copy) with straight-through gradients, and its log-probs."""
        logits = (log_alpha + gumbel_noise(log_alpha)) / temp if self.training else log_alpha / temp
        log_prob = logits - torch.logsumexp(logits, -1, keepdim=True)
        prob = log_prob.exp()
        hard = F.one_hot(prob.argmax(-1), 2).to(prob.dtype)
        return hard + (prob - prob.detach()), log_prob

    def posterior_boundaries(self, enc: Tensor, temp: float) -> tuple[Tensor, Tensor, Tensor]:
        """enc (B, T, F) -> boundaries (B, T, 2) with reads forced on the first init_size + 1
        frames (official), posterior logits (B, T, 2) and the sample's log-probs (B, T, 2)."""
        post_logit = self.post_boundary(enc)
        boundary, sample_logit = self.boundary_sampler(post_logit, temp)
        forced = torch.zeros(enc.shape[1], 1, dtype=torch.bool, device=enc.device)
        forced[: self.cfg.init_size + 1] = True
        boundary = torch.where(forced, boundary.new_tensor([1.0, 0.0]), boundary)
        return boundary, post_logit, sample_logit

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

    # ------------------------------------------------------------ states

    def posterior_encoders(self, enc: Tensor, boundary: Tensor) -> tuple[list, list, list]:
        """Official posterior encoding: the abstract forward GRU, the abstract backward GRU
        (reset at boundaries, so it summarises the rest of the segment), and the observation
        forward GRU (reset at boundaries). enc (B, T, F) -> three lists of T tensors (B, F)."""
        B, T, _ = enc.shape
        abs_fwd, abs_bwd, obs_fwd = [], [None] * T, []
        a_f, a_b, o_f = (enc.new_zeros(B, self.cfg.belief) for _ in range(3))
        for t in range(T):
            a_f = self.abs_post_fwd(enc[:, t], a_f)
            o_f = self.obs_post_fwd(enc[:, t], boundary[:, t, 1:] * o_f)
            abs_fwd.append(a_f)
            obs_fwd.append(o_f)
            tb = T - 1 - t
            a_b = self.abs_post_bwd(enc[:, tb], a_b)
            abs_bwd[tb] = a_b
            a_b = boundary[:, tb, 1:] * a_b
        return abs_fwd, abs_bwd, obs_fwd

    def initial_carry(self, abs_belief: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(abs_belief, abs_state, obs_belief, obs_state) before the first modelled frame: the
        abstract belief is the forward summary of the frames before it (official init_abs_belief)."""
        N = abs_belief.shape[0]
        zeros = abs_belief.new_zeros
        return abs_belief, zeros(N, self.cfg.state), zeros(N, self.cfg.belief), zeros(N, self.cfg.state)

    def transition(self, carry: tuple, read: Tensor, first: bool, post: tuple[Tensor, Tensor] | None = None):
        """One frame of both levels (official forward / full_generation loop body).

        carry: (abs_belief, abs_state, obs_belief, obs_state); read (N, 1) in {0, 1}; first: the
        abstract belief is the initial one (no update); post: (abstract posterior input
        [abs_fwd(t-1), abs_bwd(t)] (N, 2F), observation forward GRU (N, F)), or None to follow
        the prior. Returns the new carry and {obs_feat, prior_abs, post_abs, prior_obs, post_obs}.
        """
        abs_belief, abs_state, obs_belief, obs_state = carry
        copy = 1 - read
        if not first:
            abs_belief = read * self.update_abs_belief(abs_state, abs_belief) + copy * abs_belief
        prior_abs = self.prior_abs_state(abs_belief)
        post_abs = self.post_abs_state(post[0]) if post is not None else None
        abs_state = read * rsample(prior_abs if post is None else post_abs) + copy * abs_state
        abs_feat = self.abs_feat(torch.cat([abs_belief, abs_state], -1))
        # the lower level restarts from the abstract feature whenever the upper level steps
        obs_belief = read * abs_feat + copy * self.update_obs_belief(torch.cat([obs_state, abs_feat], -1), obs_belief)
        prior_obs = self.prior_obs_state(obs_belief)
        post_obs = self.post_obs_state(torch.cat([post[1], abs_feat], -1)) if post is not None else None
        obs_state = rsample(prior_obs if post is None else post_obs)
        obs_feat = self.obs_feat(torch.cat([obs_belief, obs_state], -1))
        out = {"obs_feat": obs_feat, "prior_abs": prior_abs, "post_abs": post_abs, "prior_obs": prior_obs}
        out["post_obs"] = post_obs
        return (abs_belief, abs_state, obs_belief, obs_state), out

    def filter(self, enc: Tensor, boundary: Tensor, stop: int) -> tuple[tuple, list[dict]]:
        """The posterior over frames init_size .. stop - 1 given the boundaries (official forward's
        transition loop). enc (B, T, F), boundary (B, T, 2) -> last carry, one `transition` output per frame."""
        init = self.cfg.init_size
        abs_fwd, abs_bwd, obs_fwd = self.posterior_encoders(enc, boundary)
        carry = self.initial_carry(abs_fwd[init - 1])
        outs = []
        for t in range(init, stop):
            post = (torch.cat([abs_fwd[t - 1], abs_bwd[t]], -1), obs_fwd[t])
            carry, out = self.transition(carry, boundary[:, t, :1], first=t == init, post=post)
            outs.append(out)
        return carry, outs

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
        enc = self.encode(video)  # (B, T, F)
        boundary, post_logit, sample_logit = self.posterior_boundaries(enc, temp)
        boundary = torch.where(  # the official code also forces reads on the last init_size frames
            torch.arange(T, device=video.device)[:, None] >= T - init, boundary.new_tensor([1.0, 0.0]), boundary
        )
        _, outs = self.filter(enc, boundary, init + seq)

        mean = self.decode(torch.stack([o["obs_feat"] for o in outs], 1))  # (B, seq, C, H, W) in [0, 1]
        obs_cost = gaussian_nll(video[:, init : init + seq], mean, c.dec_std)  # (B, seq)
        window = boundary[:, init : init + seq]
        reads = window[..., 0].detach()  # (B, seq): the abstract KL counts only where it steps
        kl_abs = torch.stack([gaussian_kl(*o["post_abs"], *o["prior_abs"]) for o in outs], 1) * reads
        kl_obs = torch.stack([gaussian_kl(*o["post_obs"], *o["prior_obs"]) for o in outs], 1)  # (B, seq)
        # the prior logit at step t predicts the boundary at t + 1
        prior_logit = torch.stack([self.prior_boundary(o["obs_feat"]) for o in outs], 1)
        if self.training:
            prior_logit = self.regularize_prior_boundary(prior_logit, window)
        shifted = slice(init + 1, init + 1 + seq)
        log_q = log_density_concrete(post_logit[:, shifted], sample_logit[:, shifted], temp)
        log_p = log_density_concrete(prior_logit, sample_logit[:, shifted], temp)
        kl_mask = log_q - log_p  # (B, seq)
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

    def observe(self, context: Tensor) -> tuple[tuple, bool]:
        """The state after the context (N, Tc, C, H, W) in [0, 1], as a training window sees it:
        the first init_size frames start the abstract belief, the rest are filtered with the
        posterior (hard boundaries). Returns the carry and whether it is still the initial one."""
        init = self.cfg.init_size
        enc = self.encode(context)  # (N, Tc, F)
        if context.shape[1] <= init:  # the official full_generation: the forward GRU over the whole context
            a_f = enc.new_zeros(enc.shape[0], self.cfg.belief)
            for t in range(enc.shape[1]):
                a_f = self.abs_post_fwd(enc[:, t], a_f)
            return self.initial_carry(a_f), True
        boundary, _, _ = self.posterior_boundaries(enc, self.temperature)
        carry, _ = self.filter(enc, boundary, enc.shape[1])
        return carry, False

    def imagine(self, carry: tuple, first: bool, horizon: int) -> tuple[Tensor, Tensor]:
        """Official full_generation from `carry`: the first frame is a boundary, then the prior's
        hard boundaries. -> features (N, horizon, F) and boundaries (N, horizon) in {0, 1}."""
        read = carry[0].new_ones(carry[0].shape[0], 1)
        feats, reads = [], []
        for t in range(horizon):
            carry, out = self.transition(carry, read, first=first and t == 0)
            feats.append(out["obs_feat"])
            reads.append(read[:, 0])
            hard, _ = self.boundary_sampler(self.prior_boundary(out["obs_feat"]), self.temperature)
            read = hard[:, :1]
        return torch.stack(feats, 1), torch.stack(reads, 1)

    @torch.no_grad()
    def generate(self, context: Tensor, horizon: int) -> tuple[Tensor, Tensor]:
        """context (N, Tc, C, H, W) in [0, 1] -> frames (N, horizon, C, H, W) in [0, 1], unclipped,
        and the boundaries (N, horizon) in {0, 1}. In the caller's mode (eval: hard boundaries)."""
        feats, reads = self.imagine(*self.observe(context), horizon)
        return torch.cat([self.decode(part) for part in feats.split(100, dim=1)], 1), reads

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, n_samples: int = 1) -> Tensor:
        return torch.cat(list(self.predict_chunks(context, horizon, n_samples)), dim=2)

    @torch.no_grad()
    def predict_chunks(self, context: Tensor, horizon: int, n_samples: int = 1, chunk: int = 100):
        """`predict`, decoded `chunk` frames at a time: (B, n, <= chunk, C, H, W) each."""
        B = context.shape[0]
        with eval_mode(self):  # batch norm on running statistics, hard boundaries, whatever mode the caller left
            carry, first = self.observe(context.repeat_interleave(n_samples, dim=0))
            feats, _ = self.imagine(carry, first, horizon)  # (B*n, horizon, F)
            for part in feats.split(chunk, dim=1):
                yield self.decode(part).clamp(0, 1).unflatten(0, (B, n_samples))  # (B, n, chunk, C, H, W)
