"""CW-VAE and RSSM against the official TensorFlow code (vaibhavsaxena11/cwvae at 62dd505).

The fixtures (tests/data/{cwvae,rssm}_official.npz) were made by running the official code at a
reduced size (tests/data/make_cwvae_official.py; versions in tests/data/README.md): its
initial weights, inputs, fixed noise and outputs. Each test loads those weights into the
harness's model through models/official_cwvae.py and compares, in float32, to 1e-4 of the
reference's largest magnitude (the measured differences are around 1e-6).
RSSM is the one-level official model, built by the registry name `rssm`.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.optim import make_adam
from models import get_model_class
from models.nets import gaussian_kl
from models.official_cwvae import OfficialWeightsError, harness_config, registry_name, to_state_dict

DATA = Path(__file__).parent / "data"
# A fixture made at the paper's size (not committed: ~50 MB) can be checked with
# CWBENCH_OFFICIAL_NPZ=/path/to/cwvae_paper_official.npz (see tests/data/README.md).
EXTRA = [os.environ["CWBENCH_OFFICIAL_NPZ"]] if os.environ.get("CWBENCH_OFFICIAL_NPZ") else []
CASES = ["cwvae", "rssm", *EXTRA]
RTOL = 1e-4


def assert_close(ours, theirs, what: str):
    ours = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != official {theirs.shape}"
    scale = max(float(np.abs(theirs).max()), 1e-6)
    err = float(np.abs(ours - theirs).max())
    assert err <= RTOL * scale, f"{what}: max |ours - official| = {err:.3g}, {err / scale:.3g} of the scale {scale:.3g}"


class Case:
    def __init__(self, name: str):
        path = Path(name) if name.endswith(".npz") else DATA / f"{name}_official.npz"
        z = np.load(path)
        self.z = {k: z[k] for k in z.files}
        self.official = json.loads(str(self.z["config"]))
        self.variables = {k[4:]: v for k, v in self.z.items() if k.startswith("var/")}
        self.config = harness_config(self.variables, self.official)
        self.name = registry_name(self.config)
        self.video = torch.from_numpy(self.z["video"].astype(np.float32) / 255).permute(0, 1, 4, 2, 3)  # (B,T,C,H,W)
        self.noise = torch.from_numpy(self.z["noise"])

    def model(self, variables=None):
        model = get_model_class(self.name)(**self.config)
        model.load_state_dict(to_state_dict(variables or self.variables), strict=True)
        return model


@pytest.fixture(scope="module", params=CASES)
def case(request):
    return Case(request.param)


def fixed_noise(monkeypatch, noise):
    """Every latent sample = mean + std * noise, as the fixture's official run."""
    monkeypatch.setattr(torch, "randn_like", lambda t: noise.expand_as(t).clone())


def nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(-3, -1)  # (..., C, H, W) -> (..., H, W, C)


def test_every_official_variable_maps_one_to_one(case):
    model = case.model()
    expected = {"cwvae": 87, "rssm": 37}.get(case.name, len(case.variables))
    assert len(case.variables) == expected
    assert sum(v.size for v in case.variables.values()) == model.num_params()
    assert set(to_state_dict(case.variables)) == set(model.state_dict())
    assert case.name == {1: "rssm"}.get(case.config["levels"], "cwvae")


def test_encoder_features_per_level(case):
    with torch.no_grad():
        embeds = case.model().embed(case.video)
    for level, ours in enumerate(embeds):
        assert_close(ours, case.z[f"enc{level}"], f"embedding of level {level + 1}")


def test_decoder_output_for_a_given_state(case):
    with torch.no_grad():
        frames = case.model().decoder(torch.from_numpy(case.z["dec_in"][:, 0]))  # (N, C, H, W)
    assert_close(nhwc(frames), case.z["dec_out"][:, 0], "decoder output")


def test_one_prior_and_one_posterior_step(case, monkeypatch):
    model = case.model()
    fixed_noise(monkeypatch, case.noise)
    for level in sorted({0, case.config["levels"] - 1}):
        step = {
            k[len(f"step{level}_") :]: torch.from_numpy(v) for k, v in case.z.items() if k.startswith(f"step{level}_")
        }
        cell = model.cells[level]
        with torch.no_grad():
            mean, std, deter = cell.prior(step["sample_in"], step["deter_in"], step["context"])
            post_mean, post_std = cell.posterior(deter, step["obs"])
        for name, ours in (("mean", mean), ("stddev", std), ("det_state", deter)):
            assert_close(ours, step[f"prior_{name}"], f"level {level + 1} prior {name}")
        assert_close(post_mean, step["post_mean"], f"level {level + 1} posterior mean")
        assert_close(post_std, step["post_stddev"], f"level {level + 1} posterior stddev")


def test_training_unroll_and_loss_terms_with_fixed_noise(case, monkeypatch):
    model = case.model()
    fixed_noise(monkeypatch, case.noise)
    B, T = case.video.shape[:2]
    with torch.no_grad():
        levels = model.unroll(T, model.embed(case.video), model.initial_state(B, "cpu"), B, "cpu")
        loss, terms = model.loss(case.video)
    for level, lv in enumerate(levels):
        for ours, theirs in (("prior_mean", "prior_mean"), ("prior_std", "prior_std")):
            assert_close(lv[ours], case.z[f"{theirs}{level}"], f"level {level + 1} {ours} over the sequence")
        assert_close(lv["post_mean"], case.z[f"post_mean{level}"], f"level {level + 1} posterior means")
        assert_close(lv["post_std"], case.z[f"post_std{level}"], f"level {level + 1} posterior stds")
        kl = gaussian_kl(lv["post_mean"], lv["post_std"], lv["prior_mean"], lv["prior_std"])  # (B, T_l)
        assert_close(kl, case.z[f"kl{level}"], f"KL of level {level + 1} per step")
    kl_sum = sum(terms[f"kl_level{i + 1}"] for i in range(len(levels))) / T  # official _kl_term: summed KLs / T
    assert_close(loss, case.z["loss"], "loss")
    assert_close(terms["nll"], case.z["nll"], "NLL per frame")
    assert_close(kl_sum, case.z["kl"], "KL per frame")


def test_open_loop_prediction_with_mean_latents(case, monkeypatch):
    model = case.model()
    fixed_noise(monkeypatch, torch.zeros_like(case.noise))  # noise 0: every sample is its mean
    context = case.official["context"]
    horizon = case.video.shape[1] - context
    preds = model.predict(case.video[:, :context], horizon, raw=True)  # (B, 1, horizon, C, H, W), unclipped
    assert_close(nhwc(preds[:, 0]), case.z["open_loop"], "open-loop decoder means")


@pytest.mark.parametrize("eps_form", ["hat", "torch"])
def test_training_steps_match_keras_adam_in_the_hat_form(case, monkeypatch, eps_form):
    """Three optimizer steps as the official train.py takes them (Keras Adam, epsilon 1e-4, global-norm
    clip 10000) on the fixture's batch: the epsilon-hat Adam gives the official weights; PyTorch's
    form visibly does not (that is what `train.adam_eps_form: hat` is for)."""
    model = case.model()
    fixed_noise(monkeypatch, case.noise)
    optimizer = make_adam(model.parameters(), case.official["lr"], 1e-4, eps_form)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for step, official_loss in enumerate(case.z["train/losses"]):
        loss, _ = model.loss(case.video)
        if eps_form == "hat" or step == 0:
            assert_close(loss, official_loss, f"loss before step {step + 1}")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), case.official["clip_grad_norm_by"])
        optimizer.step()
    trained = to_state_dict({k[10:]: v for k, v in case.z.items() if k.startswith("train/var/")})
    worst = max(
        float((model.state_dict()[k] - trained[k]).abs().max() / (trained[k] - before[k]).abs().max().clamp_min(1e-12))
        for k in trained
    )  # the largest error relative to the official update of that tensor
    if eps_form == "hat":
        assert worst < 1e-2, f"weights after the official steps differ by {worst:.3g} of the update"
    else:
        assert worst > 0.1, f"PyTorch's epsilon form should differ from Keras' in the first steps, got {worst:.3g}"


def test_initialization_is_keras_default_as_the_official_weights(case):
    """A fresh harness model and the official initial weights (Keras defaults) agree tensor by
    tensor: zero biases, glorot-uniform kernels (all within the limit sqrt(6 / (fan_in + fan_out)),
    with its standard deviation limit / sqrt(3)), orthonormal recurrent GRU kernels."""
    torch.manual_seed(0)
    fresh = get_model_class(case.name)(**case.config).state_dict()
    official = to_state_dict(case.variables)
    for key, theirs in official.items():
        ours = fresh[key]
        if key.endswith("bias") or ".bias_" in key:
            assert not ours.any() and not theirs.any(), key
        elif key.endswith("weight_hh"):  # (3H, H): orthonormal columns in both
            eye = torch.eye(ours.shape[1])
            assert torch.allclose(ours.T @ ours, eye, atol=1e-5) and torch.allclose(theirs.T @ theirs, eye, atol=1e-5)
        else:
            receptive = ours[0, 0].numel()
            fan_in, fan_out = ours.shape[1] * receptive, ours.shape[0] * receptive  # symmetric in the limit
            limit = (6 / (fan_in + fan_out)) ** 0.5
            for w in (ours, theirs):
                assert w.abs().max() <= limit, key
                if w.numel() >= 500:
                    assert abs(float(w.std()) - limit / 3**0.5) < 0.1 * limit / 3**0.5, key


def test_config_comes_from_the_weights_and_the_official_config_yml():
    case = Case("rssm")
    assert case.config == {
        **{"levels": 1, "stoch": 4, "deter": 8, "hidden": 8, "cnn_depth": 1, "channels": 3},
        **{"factor": 1, "min_std": 1e-4, "dec_std": 0.4, "enc_dense_layers": 3, "enc_dense_hidden": 16},
    }
    assert harness_config(case.variables, {**case.official, "tmp_abs_factor": 6})["factor"] == 1  # base_config's 6
    with pytest.raises(OfficialWeightsError, match="enc_dense_layers is 2 in the config but 3 in the weights"):
        harness_config(Case("cwvae").variables, {**Case("cwvae").official, "enc_dense_layers": 2})
    with pytest.raises(OfficialWeightsError, match=r"lacks \['dec_stddev'\]"):
        harness_config(case.variables, {**case.official, "dec_stddev": None})


def test_variables_of_another_model_are_refused_with_the_reason():
    case = Case("cwvae")
    optimizer_slots = {f"optimizer/Adam/{k}/m": v for k, v in case.variables.items()}
    assert to_state_dict({**case.variables, **optimizer_slots}).keys() == to_state_dict(case.variables).keys()
    missing = {k: v for k, v in case.variables.items() if "conv2d_transpose_3" not in k}
    with pytest.raises(OfficialWeightsError, match="expected 4 conv2d_transpose layer.*decoder_conv.*found 3"):
        to_state_dict(missing)
    with pytest.raises(OfficialWeightsError, match="no complete set of official CW-VAE cells"):
        harness_config({"dense/kernel:0": np.zeros((2, 2))}, case.official)
