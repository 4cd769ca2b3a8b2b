"""PlaNet's Recurrent State-Space Model (Hafner et al., "Learning Latent Dynamics for Planning
from Pixels", ICML 2019), registered as `rssm_planet`: a variant outside the paper's comparison
(Table 1, mean rank). The paper's RSSM is CW-VAE with one level (`rssm`, baselines/rssm.py).

Reference code: google-research/planet (planet/models/rssm.py, networks/conv_ha.py,
scripts/configs.py, training/utility.py). Kept: the cell (dense -> GRU -> dense -> mean and
softplus std + 0.1 for the prior; dense on [belief, embedding] for the posterior; ReLU as
PlaNet's default `activation`), state sizes 30 / 200 / 200, a unit-variance Gaussian image
likelihood, free nats 3 applied per time step, the frames centred to [-0.5, 0.5].
Changed: the conv encoder/decoder are the CW-VAE paper's (models/nets.py: leaky ReLU,
no output activation as in PlaNet) so every model shares them; no actions (video only);
frames are not reduced to 5 bits (PlaNet's `image_bits`), because the benchmark scores
8-bit frames. See docs/models.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import VideoModel, register_model
from models.nets import ConvDecoder, ConvEncoder, apply_frames, gaussian_kl, gaussian_nll, gaussian_params


@dataclass(frozen=True)
class PlaNetRSSMConfig:
    stoch: int = 30  # stochastic state size (PlaNet state_size)
    deter: int = 200  # GRU deterministic state size (PlaNet belief_size / model_size)
    hidden: int = 200  # dense layers around the GRU and in the posterior (PlaNet embed_size)
    layers: int = 1  # dense layers before and after the GRU and in the posterior (PlaNet model_layers)
    min_std: float = 0.1  # std = softplus(x) + min_std (PlaNet min_stddev)
    free_nats: float = 3.0  # KL per time step below this is not penalised (PlaNet free_nats)
    cnn_depth: int = 32  # channels of the first encoder conv (PlaNet/CW-VAE: 32; smaller only for CPU presets)
    channels: int = 1  # image channels (filled from the dataset config)
    dec_std: float = 1.0  # fixed std of the Gaussian image likelihood (PlaNet: 1.0)

    def __post_init__(self):
        if min(self.stoch, self.deter, self.hidden, self.layers) < 1:
            raise ValueError(f"stoch, deter, hidden and layers must be >= 1, got {self}")


def mlp(in_dim: int, width: int, layers: int) -> nn.Sequential:
    """`layers` dense layers with ReLU (PlaNet: tf.layers.dense(units, activation=relu) in a loop)."""
    mods = []
    for i in range(layers):
        mods += [nn.Linear(in_dim if i == 0 else width, width), nn.ReLU()]
    return nn.Sequential(*mods)


class PlaNetCell(nn.Module):
    """PlaNet's RSSM transition (prior) and posterior, without actions."""

    def __init__(self, cfg: PlaNetRSSMConfig, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.prior_in = mlp(cfg.stoch, cfg.hidden, cfg.layers)
        self.gru = nn.GRUCell(cfg.hidden, cfg.deter)
        self.prior_out = mlp(cfg.deter, cfg.hidden, cfg.layers)
        self.prior_head = nn.Linear(cfg.hidden, 2 * cfg.stoch)  # mean and std (two dense layers in PlaNet)
        self.post_out = mlp(cfg.deter + embed_dim, cfg.hidden, cfg.layers)
        self.post_head = nn.Linear(cfg.hidden, 2 * cfg.stoch)

    def prior(self, sample: Tensor, deter: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(N, stoch), (N, deter) -> prior mean, std (N, stoch) and the new deter (N, deter)."""
        deter = self.gru(self.prior_in(sample), deter)
        mean, std = gaussian_params(self.prior_head(self.prior_out(deter)), self.cfg.min_std)
        return mean, std, deter

    def posterior(self, deter: Tensor, embed: Tensor) -> tuple[Tensor, Tensor]:
        """(N, deter), (N, E) -> posterior mean, std (N, stoch)."""
        return gaussian_params(self.post_head(self.post_out(torch.cat([deter, embed], -1))), self.cfg.min_std)


@register_model("rssm_planet")
class PlaNetRSSM(VideoModel):
    """PlaNet's RSSM as a video model. `loss` is PlaNet's objective per frame; `predict` is open loop."""

    config_class = PlaNetRSSMConfig
    paper_label = None  # a variant: not a row of the paper's Table 1

    def __init__(self, **hparams):
        super().__init__(**hparams)
        cfg = self.cfg
        self.encoder = ConvEncoder(cfg.channels, cfg.cnn_depth)
        self.cell = PlaNetCell(cfg, self.encoder.out_dim)
        self.decoder = ConvDecoder(cfg.stoch + cfg.deter, cfg.channels, cfg.cnn_depth, out_activation="none")

    def initial_state(self, n: int, device) -> tuple[Tensor, Tensor]:
        return torch.zeros(n, self.cfg.stoch, device=device), torch.zeros(n, self.cfg.deter, device=device)

    def observe(self, video: Tensor) -> dict[str, Tensor]:
        """Posterior filter: video (B, T, C, H, W) in [0, 1] -> stacked (B, T, .) statistics and the last state."""
        B, T = video.shape[:2]
        embeds = apply_frames(self.encoder, video - 0.5)  # (B, T, 32 * cnn_depth); PlaNet centres frames
        sample, deter = self.initial_state(B, video.device)
        out = {k: [] for k in ("prior_mean", "prior_std", "post_mean", "post_std", "sample", "deter")}
        for t in range(T):
            prior_mean, prior_std, deter = self.cell.prior(sample, deter)
            post_mean, post_std = self.cell.posterior(deter, embeds[:, t])
            sample = post_mean + post_std * torch.randn_like(post_std)
            for k, v in zip(out, (prior_mean, prior_std, post_mean, post_std, sample, deter)):
                out[k].append(v)
        stacked = {k: torch.stack(v, 1) for k, v in out.items()}  # each (B, T, .)
        stacked["last"] = (sample, deter)
        return stacked

    def imagine(self, state: tuple[Tensor, Tensor], horizon: int) -> Tensor:
        """Prior rollout from `state` -> features (N, horizon, stoch + deter)."""
        sample, deter = state
        feats = []
        for _ in range(horizon):
            mean, std, deter = self.cell.prior(sample, deter)
            sample = mean + std * torch.randn_like(std)
            feats.append(torch.cat([sample, deter], -1))
        return torch.stack(feats, 1)

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        B, T, C, H, W = video.shape
        post = self.observe(video)
        feats = torch.cat([post["sample"], post["deter"]], -1)  # (B, T, stoch + deter)
        mean = apply_frames(self.decoder, feats)  # (B, T, C, H, W), in the centred space
        nll = gaussian_nll(video - 0.5, mean, self.cfg.dec_std).mean()  # per frame
        kl = gaussian_kl(post["post_mean"], post["post_std"], post["prior_mean"], post["prior_std"])  # (B, T)
        kl_loss = F.relu(kl - self.cfg.free_nats).mean()  # PlaNet: max(0, KL - free_nats) per step
        terms = {"nll": nll.detach(), "kl": kl.mean().detach(), "kl_free": kl_loss.detach()}
        return nll + kl_loss, terms

    @torch.no_grad()
    def predict(self, context: Tensor, horizon: int, n_samples: int = 1) -> Tensor:
        """Open loop: posterior over the context, prior rollout, decoder means."""
        return torch.cat(list(self.predict_chunks(context, horizon, n_samples)), dim=2)

    @torch.no_grad()
    def predict_chunks(self, context: Tensor, horizon: int, n_samples: int = 1, chunk: int = 100):
        """`predict`, decoded `chunk` frames at a time (the latent rollout is small)."""
        B = context.shape[0]
        ctx = context.repeat_interleave(n_samples, dim=0)  # (B*n, Tc, C, H, W)
        state = self.observe(ctx)["last"]
        feats = self.imagine(state, horizon)  # (B*n, horizon, F)
        for part in feats.split(chunk, dim=1):
            frames = (apply_frames(self.decoder, part) + 0.5).clamp(0, 1)  # back from the centred space
            yield frames.unflatten(0, (B, n_samples))  # (B, n, chunk, C, H, W)
