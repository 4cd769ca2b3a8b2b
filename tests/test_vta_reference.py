"""baselines/vta.py equals the original VTA code (taesupkim/vta at 4c23131) by test.

tests/data/vta_reference.npz holds the original model at a reduced size (belief 16, state 4,
2 boundary conv layers, 32x32 RGB frames: the official networks, which the harness builds
with image_size 32) with seeded random weights and batch-norm statistics, its inputs, its
fixed noise and its outputs; tests/data/make_vta_reference.py made it by running the
original (versions and command in tests/data/README.md). Here the same weights are loaded
into the harness's VTA through one name mapping and every output is compared to 1e-4
relative error (max |a - b| / max |b| per array) or better.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import baselines.vta as vta_module
from baselines.vta import VTA

DATA = Path(__file__).parent / "data" / "vta_reference.npz"
RTOL = 1e-4

# original state-dict name -> harness name, applied in order (the harness mirrors the original's
# modules; its conv blocks are Sequential(conv, batch norm, ELU) and its heads bare Linear/GRUCell)
RENAMES = [
    (r"^state_model\.", ""),
    (r"^enc_obs\.network\.", "encoder.net."),
    (r"^dec_obs\.network\.", "decoder.net."),
    (r"^post_boundary\.network\.", "post_boundary.net."),
    (r"^prior_boundary\.network\.", "prior_boundary."),
    (r"^(encoder|decoder|post_boundary)(\.net\.\d+)\.linear\.", r"\1\2.0."),
    (r"\.normalize\.", ".1."),
    (r"\.linear\.", "."),
    (r"\.rnn_cell\.", "."),
]


def official_to_harness(name: str) -> str:
    for pattern, repl in RENAMES:
        name = re.sub(pattern, repl, name)
    return name


@pytest.fixture(scope="module")
def ref() -> dict:
    with np.load(DATA) as f:
        return {k: f[k] for k in f.files}


def sizes(ref: dict) -> dict:
    return {str(k): int(v) for k, v in zip(ref["size_names"], ref["sizes"])}


def build(ref: dict) -> VTA:
    s = sizes(ref)
    model = VTA(
        belief=s["belief_size"],
        state=s["state_size"],
        num_layers=s["num_layers"],
        init_size=s["init_size"],
        max_seg_len=s["max_seg_len"],
        max_seg_num=s["max_seg_num"],
        beta_max=float(ref["temp"]),
        beta_anneal=0.0,  # a constant temperature, the original's mask_beta
        channels=3,
        image_size=32,
        dec_std=float(ref["obs_std"]) / 2,  # the original's std over [-1, 1] is twice the std over [0, 1]
    )
    weights = {official_to_harness(k[3:]): torch.from_numpy(v) for k, v in ref.items() if k.startswith("sd/")}
    weights["step"] = model.step  # the harness's own training-step counter (temperature schedule)
    model.load_state_dict(weights)  # strict: every original weight has one harness weight of its shape, and back
    return model


def video(ref: dict) -> torch.Tensor:
    return torch.from_numpy(ref["video"]).float() / 255  # (B, T, 3, 32, 32) in [0, 1]


def assert_close(got, want, what: str, rtol: float = RTOL) -> None:
    got = torch.as_tensor(got, dtype=torch.float64)
    want = torch.as_tensor(want, dtype=torch.float64)
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)}, original {tuple(want.shape)}"
    err = (got - want).abs().max().item() / max(want.abs().max().item(), 1e-12)
    assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:.0e}"


def test_every_original_weight_maps_onto_one_harness_weight(ref):
    model = build(ref)
    names = [official_to_harness(k[3:]) for k in ref if k.startswith("sd/")]
    assert len(set(names)) == len(names)
    assert set(names) == set(model.state_dict()) - {"step"}  # `step` is the harness's temperature counter


def test_encoder_boundary_logits_and_decoder(ref):
    model = build(ref).eval()
    with torch.no_grad():
        enc = model.encode(video(ref))  # (B, T, F): official enc_obs on the [-1, 1] frames
        assert_close(enc, ref["enc"], "encoder features")
        assert_close(model.post_boundary(enc), ref["post_boundary_logit"], "posterior boundary logits")
        dec = model.decoder(torch.from_numpy(ref["dec_in"]))
        assert_close(dec, ref["dec_out"], "decoder output")


class FixedNoise:
    """The fixture's noise in the harness: Gumbel noise from its uniform draws, and the
    states' Gaussian noise in call order (abstract, then observation, per step), or the means."""

    def __init__(self, ref: dict, mode: str):
        u = torch.from_numpy(ref["gumbel_u"])
        self.gumbel = -torch.log(-torch.log(u))
        self.queue = list(torch.from_numpy(ref["eps"]).flatten(0, 1)) if mode == "train" else []

    def gumbel_noise(self, log_alpha):
        return self.gumbel

    def rsample(self, dist):
        mean, std = dist
        return mean + std * self.queue.pop(0) if self.queue else mean


def record(model: VTA) -> tuple[dict, list]:
    """Forward hooks on the state heads, the prior boundary head and the decoder: their outputs per call."""
    store: dict = {}
    handles = []
    for name in ("prior_abs_state", "post_abs_state", "prior_obs_state", "post_obs_state"):

        def hook(module, args, out, name=name):
            store.setdefault(f"{name}_mean", []).append(out[0])
            store.setdefault(f"{name}_std", []).append(out[1])

        handles.append(getattr(model, name).register_forward_hook(hook))
    for name, module in (("prior_boundary_logit", model.prior_boundary), ("rec", model.decoder)):
        handles.append(
            module.register_forward_hook(lambda m, a, out, name=name: store.setdefault(name, []).append(out))
        )
    return store, handles


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_loss_states_and_boundaries_with_fixed_noise(ref, mode, monkeypatch):
    """train: Gumbel boundaries and sampled states with the fixture's noise; eval: argmax
    boundaries (as when the harness filters a context) and mean states."""
    model = build(ref).train(mode == "train")
    noise = FixedNoise(ref, mode)
    monkeypatch.setattr(vta_module, "gumbel_noise", noise.gumbel_noise)
    monkeypatch.setattr(vta_module, "rsample", noise.rsample)
    store, handles = record(model)
    x = video(ref)
    with torch.no_grad():
        loss, terms = model.loss(x)
    for h in handles:
        h.remove()
    assert not noise.queue, "every fixed noise sample is used, in the original's order"

    s = sizes(ref)
    B, seq, init = s["batch"], s["seq_size"], s["init_size"]
    for key in [k for k in store if k != "rec"]:
        assert_close(torch.stack(store[key]), ref[f"{mode}/{key}"], f"{mode}: per-step {key}")
    rec = store["rec"][0].unflatten(0, (B, seq))  # (B, seq, 3, 32, 32) in [-1, 1]
    assert_close(rec, ref[f"{mode}/rec_data"], f"{mode}: reconstructions")
    reads = ref[f"{mode}/mask_data"][..., 0]  # (B, seq)
    assert 0 < reads.mean() < 1  # the fixture holds reads and copies
    assert terms["reads"].item() == reads.sum(1).mean()
    for name, key in (("kl_abs", "kl_abs_state"), ("kl_obs", "kl_obs_state"), ("kl_mask", "kl_mask")):
        assert_close(terms[name], ref[f"{mode}/{key}"].mean(), f"{mode}: {name}")

    # the likelihood: a Gaussian over frames in [0, 1] with std dec_std. The original's is over
    # [-1, 1] with std 2 * dec_std: the same up to the change of variables, log 2 per pixel.
    pixels = math.prod(x.shape[2:])
    obs_cost = torch.from_numpy(ref[f"{mode}/obs_cost"])  # (B, seq), the original's
    assert_close(terms["nll"], obs_cost.mean() - pixels * math.log(2), f"{mode}: nll")
    mean01 = (torch.from_numpy(ref[f"{mode}/rec_data"]) + 1) / 2
    nll01 = -torch.distributions.Normal(mean01, model.cfg.dec_std).log_prob(x[:, init : init + seq])
    assert_close(terms["nll"], nll01.sum((2, 3, 4)).mean(), f"{mode}: nll over [0, 1]")
    assert_close(loss, float(ref[f"{mode}/train_loss"]) - pixels * math.log(2), f"{mode}: loss")


def test_open_loop_from_init_size_frames_is_the_official_full_generation(ref, monkeypatch):
    model = build(ref)
    noise = FixedNoise(ref, "eval")  # mean latents
    monkeypatch.setattr(vta_module, "rsample", noise.rsample)
    s = sizes(ref)
    context = video(ref)[:, : s["init_size"]]
    with torch.no_grad():
        frames, reads = model.eval().generate(context, s["horizon"])
        preds = model.train().predict(context, s["horizon"], n_samples=1)[:, 0]  # predict switches to eval itself
    want = (torch.from_numpy(ref["gen_frames"]) + 1) / 2  # the original's [-1, 1] frames, in [0, 1]
    assert_close(frames, want, "generated frames")
    assert_close(preds, want.clamp(0, 1), "predicted frames")
    assert torch.equal(reads, torch.from_numpy(ref["gen_reads"]))
    assert 0 < reads.mean() < 1  # boundaries of both kinds, decided by the prior
