"""Clockwork VAE (Saxena, Ba, Hafner, NeurIPS 2021), faithful to the paper's Appendix C
and the official TensorFlow code (github.com/vaibhavsaxena11/cwvae: cwvae.py, cells.py,
cnns.py). NoTmpAbs is the same model with abstraction factor 1.

Level l (1-based) ticks at frames t with t mod k^(l-1) == 0 (0-based) and holds its
state in between. Each level is an RSSM cell: a GRU deterministic state h and a
diagonal-Gaussian stochastic state s. The prior sees the level's previous (s, h) and
the upper level's current output (s, h) as context (zeros at the top); the posterior
adds the level's embedding of its k^(l-1) frames. Only level 1 is decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import VideoModel, register_model
from models.fastpaths import enabled
from models.nets import ConvDecoder, ConvEncoder, GaussianHead, apply_frames, gaussian_kl, gaussian_nll, keras_init_


@dataclass(frozen=True)
class CWVAEConfig:
    levels: int = field(default=3, metadata={"min": 1})  # number of levels in the hierarchy
    factor: int = field(default=6, metadata={"min": 1})  # temporal abstraction factor k between neighbouring levels
    stoch: int = field(default=20, metadata={"min": 1})  # |z|: stochastic state size per level (MineRL: 100)
    deter: int = field(default=200, metadata={"min": 1})  # |h|: GRU deterministic state size per level (MineRL: 800)
    hidden: int = field(default=200, metadata={"min": 1})  # hidden layers inside the cell (MineRL: 800)
    enc_dense_layers: int = field(default=3, metadata={"min": 1})  # MLP layers that make the embedding of levels >= 2
    enc_dense_hidden: int = field(
        default=1000, metadata={"min": 1}
    )  # their hidden width (official enc_dense_embed_size)
    min_std: float = field(default=1e-4, metadata={"min": 0})  # std = softplus(x) + min_std (official cell_min_stddev)
    cnn_depth: int = field(
        default=32, metadata={"min": 1}
    )  # channels of the first conv (official 32 * channels_mult); encoder output 32 * depth
    channels: int = field(default=1, metadata={"choices": (1, 3)})  # image channels (filled from the dataset config)
    dec_std: float = field(
        default=1.0, metadata={"above": 0}
    )  # fixed decoder std of the Gaussian NLL (filled from the dataset config)

    def __post_init__(self):
        if self.levels < 1 or self.factor < 1:
            raise ValueError(f"levels and factor must be >= 1, got levels={self.levels}, factor={self.factor}")


class LevelCell(nn.Module):
    """One level's RSSM transition (official cells.py RSSMCell).

    The GRU is Keras' GRUCell as the official code builds it in TF2 (`reset_after=True`, sigmoid
    gates): the reset gate multiplies (U h + b_rec), which is exactly torch.nn.GRUCell; only the
    order of the gate blocks differs (Keras z, r, h; torch r, z, n: models/official_cwvae.py maps them).
    """

    STD_SHIFT = 0.54  # official cells.py: the std dense layer reads `hl + 0.54`

    def __init__(self, cfg: CWVAEConfig, embed_dim: int):
        super().__init__()
        out_dim = cfg.stoch + cfg.deter  # a level's output (s, h), also the context of the level below
        self.prior_in = nn.Linear(cfg.stoch + out_dim, cfg.hidden)  # prior_h1_dense
        self.gru = nn.GRUCell(cfg.hidden, cfg.deter)
        self.prior_hidden = nn.Linear(cfg.deter, cfg.hidden)  # prior_h2_dense
        self.prior_head = GaussianHead(cfg.hidden, cfg.stoch, cfg.min_std, self.STD_SHIFT)
        self.post_hidden1 = nn.Linear(cfg.deter + embed_dim, cfg.hidden)  # posterior_h1_dense
        self.post_hidden2 = nn.Linear(cfg.hidden, cfg.hidden)  # posterior_h2_dense
        self.post_head = GaussianHead(cfg.hidden, cfg.stoch, cfg.min_std, self.STD_SHIFT)

    def prior(self, sample: Tensor, deter: Tensor, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.prior_step(sample, deter, self.context_part(context))

    def posterior(self, deter: Tensor, embed: Tensor) -> tuple[Tensor, Tensor]:
        return self.posterior_step(deter, self.embed_part(embed))

    # The first layers of the prior and the posterior read a concatenation, [sample, context] and
    # [deter, embed]; W [a, b] = W_a a + W_b b, and the context and the embedding of every step are
    # known before the recurrence, so their parts (with the bias) can be computed for all steps at
    # once (hoisted_projections): one matrix product instead of one per step.

    def context_part(self, context: Tensor) -> Tensor:
        """W_c context + b of the prior's first layer: (..., stoch+deter) -> (..., hidden)."""
        return F.linear(
            context, self.prior_in.weight[:, self.prior_in.in_features - context.shape[-1] :], self.prior_in.bias
        )

    def embed_part(self, embed: Tensor) -> Tensor:
        """W_e embed + b of the posterior's first layer: (..., E) -> (..., hidden)."""
        return F.linear(
            embed,
            self.post_hidden1.weight[:, self.post_hidden1.in_features - embed.shape[-1] :],
            self.post_hidden1.bias,
        )

    def prior_step(self, sample: Tensor, deter: Tensor, context_part: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w = self.prior_in.weight[:, : sample.shape[-1]]
        x = F.relu(F.linear(sample, w) + context_part)  # prior_in([sample, context])
        deter = self.gru(x, deter)  # (N, deter)
        mean, std = self.prior_head(F.relu(self.prior_hidden(deter)))
        return mean, std, deter

    def posterior_step(self, deter: Tensor, embed_part: Tensor) -> tuple[Tensor, Tensor]:
        w = self.post_hidden1.weight[:, : deter.shape[-1]]
        x = F.relu(F.linear(deter, w) + embed_part)  # post_hidden1([deter, embed])
        return self.post_head(F.relu(self.post_hidden2(x)))

    def compile_steps(self, mode: str) -> None:
        """torch.compile this level's step functions (models/fastpaths.py compile_steps); used by the
        hoisted path, the one the unroll takes by default."""
        self.prior_step = torch.compile(self.prior_step, mode=mode, dynamic=False)
        self.posterior_step = torch.compile(self.posterior_step, mode=mode, dynamic=False)

    def unroll(self, context: Tensor, embeds: Tensor | None, state: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Run the level over its own steps.

        context: (N, Tl, stoch+deter) from the level above; embeds: (N, Tl, E) or None for
        a prior-only rollout; state: (sample (N, stoch), deter (N, deter)).
        Returns stacked (N, Tl, .) tensors and the last state.
        """
        sample, deter = state
        hoisted = enabled("hoisted_projections")
        if hoisted:
            context = self.context_part(context)  # (N, Tl, hidden)
            embeds = None if embeds is None else self.embed_part(embeds)  # (N, Tl, hidden)
        prior = self.prior_step if hoisted else self.prior
        posterior = self.posterior_step if hoisted else self.posterior
        out = {k: [] for k in ("prior_mean", "prior_std", "post_mean", "post_std", "sample", "deter")}
        for t in range(context.shape[1]):
            prior_mean, prior_std, deter = prior(sample, deter, context[:, t])
            out["prior_mean"].append(prior_mean)
            out["prior_std"].append(prior_std)
            if embeds is None:
                mean, std = prior_mean, prior_std
            else:
                mean, std = posterior(deter, embeds[:, t])
                out["post_mean"].append(mean)
                out["post_std"].append(std)
            sample = mean + std * torch.randn_like(std)
            out["sample"].append(sample)
            out["deter"].append(deter)
        stacked = {k: torch.stack(v, 1) for k, v in out.items() if v}
        stacked["output"] = torch.cat([stacked["sample"], stacked["deter"]], -1)  # (N, Tl, stoch+deter)
        stacked["last"] = (sample, deter)
        return stacked


class CWVAE(VideoModel):
    """Clockwork VAE. `loss` is the negative ELBO per frame; `predict` is open loop."""

    config_class = CWVAEConfig

    def __init__(self, **hparams):
        super().__init__(**hparams)
        cfg = self.cfg
        self.encoder = ConvEncoder(cfg.channels, cfg.cnn_depth)
        feat = self.encoder.out_dim  # 1024 at cnn_depth 32
        # Level l >= 2 embeds each frame with its own MLP, chained on the previous level's
        # MLP output as in the official cnns.py, then sums blocks of k^(l-1) frames.
        self.level_mlps = nn.ModuleList()
        for _ in range(1, cfg.levels):
            layers, width = [], feat
            for _ in range(cfg.enc_dense_layers - 1):
                layers += [nn.Linear(width, cfg.enc_dense_hidden), nn.ReLU()]
                width = cfg.enc_dense_hidden
            layers.append(nn.Linear(width, feat))
            self.level_mlps.append(nn.Sequential(*layers))
        self.cells = nn.ModuleList(LevelCell(cfg, feat) for _ in range(cfg.levels))
        self.decoder = ConvDecoder(cfg.stoch + cfg.deter, cfg.channels, cfg.cnn_depth, out_activation="tanh")
        keras_init_(self)  # the official model's initialization (Keras defaults)

    # ------------------------------------------------------------ helpers

    def context_multiple(self) -> int:
        return self.cfg.factor ** (self.cfg.levels - 1)

    def block(self, level: int) -> int:
        """Frames per step of level `level` (0-based): k^level."""
        return self.cfg.factor**level

    def embed(self, video: Tensor) -> list[Tensor]:
        """video (B, T, C, H, W) -> per level (B, ceil(T / k^l), 1024), l = 0..L-1."""
        B, T = video.shape[:2]
        hidden = apply_frames(self.encoder, video)  # (B, T, 1024)
        embeds = [hidden]
        for level, mlp in enumerate(self.level_mlps, start=1):
            hidden = mlp(hidden)  # (B, T, 1024), chained through the levels
            block = self.block(level)
            pad = (-T) % block
            padded = F.pad(hidden, (0, 0, 0, pad))  # (B, T + pad, 1024), zeros as in the official code
            embeds.append(padded.unflatten(1, (-1, block)).sum(2))  # (B, ceil(T / k^l), 1024)
        return embeds

    def initial_state(self, n: int, device) -> list[tuple[Tensor, Tensor]]:
        z = torch.zeros(n, self.cfg.stoch, device=device)
        h = torch.zeros(n, self.cfg.deter, device=device)
        return [(z, h) for _ in range(self.cfg.levels)]

    def unroll(self, steps: int, embeds: list[Tensor | None] | None, states, batch: int, device) -> list[dict]:
        """Top-down unroll over `steps` frames. embeds None (or None for a level) = prior only.
        Returns per level (0 = bottom)."""
        cfg = self.cfg
        results: list[dict] = [None] * cfg.levels
        context = None
        for level in reversed(range(cfg.levels)):
            n_steps = math.ceil(steps / self.block(level))
            if context is None:  # the top level gets zeros as context
                context = torch.zeros(batch, n_steps, cfg.stoch + cfg.deter, device=device)
            level_embeds = None if embeds is None else embeds[level]  # None: this level follows its prior
            res = self.cells[level].unroll(context[:, :n_steps], level_embeds, states[level])
            results[level] = res
            # the level below sees this level's current output for each of its k steps
            context = res["output"].repeat_interleave(cfg.factor, dim=1)  # (N, Tl * k, stoch+deter)
        return results

    # ------------------------------------------------------------ interface

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        B, T, C, H, W = video.shape
        embeds = self.embed(video)
        levels = self.unroll(T, embeds, self.initial_state(B, video.device), B, video.device)
        mean = apply_frames(self.decoder, levels[0]["output"])  # (B, T, C, H, W)
        nll = gaussian_nll(video, mean, self.cfg.dec_std).sum(1).mean()  # per sequence
        terms = {"nll": nll / T}
        total = nll
        for i, lv in enumerate(levels, start=1):
            kl = gaussian_kl(lv["post_mean"], lv["post_std"], lv["prior_mean"], lv["prior_std"])  # (B, Tl)
            kl = kl.sum(1).mean()  # summed over the level's active steps (Table 2 convention)
            terms[f"kl_level{i}"] = kl
            total = total + kl
        loss = total / T
        return loss, {k: v.detach() for k, v in terms.items()}

    def observe(self, context: Tensor, use_obs: tuple[bool, ...] = ()) -> list[tuple[Tensor, Tensor]]:
        """Posterior filter over the context; returns the last (sample, deter) of every level.

        use_obs (bottom level first): a level marked False follows its prior instead of its
        posterior (the official eval.py --use-obs, the paper's Fig 7 with the top level off).
        """
        N, Tc = context.shape[:2]
        if use_obs and len(use_obs) != self.cfg.levels:
            raise ValueError(f"use_obs needs one flag per level ({self.cfg.levels}), got {list(use_obs)}")
        embeds = [e if (not use_obs or use_obs[i]) else None for i, e in enumerate(self.embed(context))]
        levels = self.unroll(Tc, embeds, self.initial_state(N, context.device), N, context.device)
        return [lv["last"] for lv in levels]

    def imagine(self, states, horizon: int, n: int, device) -> Tensor:
        """Prior rollout from `states` for `horizon` frames -> level-1 features (N, horizon, stoch+deter)."""
        return self.unroll(horizon, None, states, n, device)[0]["output"][:, :horizon]

    @torch.no_grad()
    def predict(
        self, context: Tensor, horizon: int, n_samples: int = 1, raw: bool = False, use_obs: tuple[bool, ...] = ()
    ) -> Tensor:
        """Open loop: posterior over the context, then the prior of every level.

        raw=True returns the decoder means unclipped (the official evaluation's input);
        use_obs: see `observe`.
        """
        return torch.cat(list(self.predict_chunks(context, horizon, n_samples, raw=raw, use_obs=use_obs)), dim=2)

    @torch.no_grad()
    def predict_chunks(
        self,
        context: Tensor,
        horizon: int,
        n_samples: int = 1,
        chunk: int = 100,
        raw: bool = False,
        use_obs: tuple[bool, ...] = (),
    ):
        """`predict`, decoded `chunk` frames at a time. All sampling happens first (the latent
        rollout is small: stoch + deter numbers per frame); only decoded frames are chunked."""
        B, Tc, C, H, W = context.shape
        if Tc % self.context_multiple():
            raise ValueError(
                f"CW-VAE needs a context that is a multiple of factor^(levels-1) = {self.context_multiple()}, got {Tc}"
            )
        ctx = context.repeat_interleave(n_samples, dim=0)  # (B*n, Tc, C, H, W)
        states = self.observe(ctx, use_obs)
        feats = self.imagine(states, horizon, B * n_samples, context.device)  # (B*n, horizon, stoch+deter)
        for part in feats.split(chunk, dim=1):
            frames = apply_frames(self.decoder, part).unflatten(0, (B, n_samples))  # (B, n, chunk, C, H, W)
            yield frames if raw else frames.clamp(0, 1)


@register_model("cwvae")
class CWVAEModel(CWVAE):
    """CW-VAE with the paper's temporal abstraction (factor 6, 3 levels at the paper preset)."""

    paper_label = "CW-VAE"


@register_model("notmpabs")
class NoTmpAbs(CWVAE):
    """CW-VAE without temporal abstraction: every level ticks every frame (factor 1)."""

    paper_label = "NoTmpAbs"

    def __init__(self, **hparams):
        if hparams.get("factor", 1) != 1:
            raise ValueError(f"notmpabs is CW-VAE with factor 1; got factor={hparams['factor']} (use cwvae instead)")
        super().__init__(**{**hparams, "factor": 1})
