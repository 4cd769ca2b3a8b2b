"""RSSM as the CW-VAE paper uses it: CW-VAE with one level (Section 3.1: "RSSM, which has only
one level"; Appendix A). The ladder RSSM -> NoTmpAbs -> CW-VAE then changes one thing at a
time (hierarchy, then temporal abstraction), and Table D.2's 5M / 13M are this model's counts.

Everything (cell, encoder, decoder, loss, initialization, optimizer settings) is CW-VAE's
(models/cwvae.py, configs/models/rssm.yaml inherits cwvae.yaml); only `levels` is 1. PlaNet's
own RSSM is the separate variant `rssm_planet` (baselines/rssm_planet.py).
"""

from __future__ import annotations

from models.base import register_model
from models.cwvae import CWVAE


@register_model("rssm")
class RSSM(CWVAE):
    """One-level CW-VAE: a single RSSM cell over the frames, the paper's conv encoder and decoder."""

    paper_label = "RSSM"

    def __init__(self, **hparams):
        if hparams.get("levels", 1) != 1:
            raise ValueError(f"rssm is CW-VAE with one level; got levels={hparams['levels']} (use cwvae instead)")
        super().__init__(**{**hparams, "levels": 1})
