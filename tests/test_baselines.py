"""PlaNet's RSSM, VTA and SVG-LP (baselines/): training signal, open loop, and each model's own rules.
(`rssm`, the one-level CW-VAE, is tested with CW-VAE: tests/test_cwvae.py, tests/test_cwvae_official.py.)"""

import math

import pytest
import torch
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

from benchmarks.config import resolve_config
from benchmarks.protocol import open_loop
from models import build_model, get_model_class

BASELINES = ["rssm_planet", "vta", "svg"]


def moving_square(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """(B, T, 1, 64, 64) in [0, 1]: an 8x8 white square moving at a constant velocity, bouncing off the edges."""
    g = torch.Generator().manual_seed(seed)
    video = torch.zeros(batch, length, 1, 64, 64)
    for b in range(batch):
        pos = torch.randint(0, 56, (2,), generator=g).float()
        vel = torch.randint(2, 5, (2,), generator=g).float() * (torch.randint(0, 2, (2,), generator=g) * 2 - 1)
        for t in range(length):
            y, x = int(pos[0]), int(pos[1])
            video[b, t, 0, y : y + 8, x : x + 8] = 1.0
            pos = pos + vel
            for i in range(2):
                if not 0 <= pos[i] <= 56:
                    vel[i] = -vel[i]
                    pos[i] = pos[i].clamp(0, 56)
    return video


def smoke(name: str, **overrides):
    torch.manual_seed(0)
    return build_model(name, dataset="mmnist", preset="smoke", **overrides)


def seeded_loss(model, video, seed=123) -> tuple[float, float]:
    """(loss, reconstruction error) with fixed noise; the error is the NLL without its constant (MSE for SVG)."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        loss, terms = model.loss(video)
    if "mse" in terms:
        return loss.item(), terms["mse"].item()
    pixels = video[0, 0].numel()
    const = 0.5 * pixels * math.log(2 * math.pi * model.cfg.dec_std**2)
    return loss.item(), terms["nll"].item() - const


@pytest.mark.parametrize("name", BASELINES)
def test_loss_falls_on_a_fixed_batch(name):
    model = smoke(name).train()
    video = moving_square(4, 12)
    before = seeded_loss(model, video)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(12):
        loss, terms = model.loss(video)
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = seeded_loss(model, video)
    assert after[0] < before[0] and after[1] < 0.7 * before[1], (before, after)


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("context", [1, 5])
def test_predict_shape_range_and_no_context_leak(name, context):
    model = smoke(name).eval()
    video = moving_square(2, context + 4, seed=1)
    poisoned = video.clone()
    poisoned[:, context:] = float("nan")
    a = open_loop(model, video, context=context, n_samples=3, seed=7)
    b = open_loop(model, poisoned, context=context, n_samples=3, seed=7)
    assert a.shape == (2, 3, 4, 1, 64, 64)
    assert torch.equal(a, b)
    assert torch.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a[:, 0], a[:, 1])  # samples differ: every model here samples its latents


@pytest.mark.parametrize("name", ["vta", "svg"])
def test_predict_uses_running_batch_norm_statistics_in_any_mode(name):
    model = smoke(name)
    model.train().loss(moving_square(2, 12))  # moves the running statistics away from their init
    ctx = moving_square(2, 5, seed=2)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    stats = [m.running_mean.clone() for m in bn]
    torch.manual_seed(0)
    in_train = model.train().predict(ctx, 3, 2)
    assert model.training  # the caller's mode is restored
    torch.manual_seed(0)
    in_eval = model.eval().predict(ctx, 3, 2)
    assert torch.equal(in_train, in_eval)
    assert all(torch.equal(m.running_mean, s) for m, s in zip(bn, stats))  # predicting does not update them


# ---------------------------------------------------------------- PlaNet's RSSM


def test_rssm_planet_free_nats_and_std_floor():
    model = smoke("rssm_planet", free_nats=1e6)  # every step's KL under the free nats: no KL gradient
    loss, terms = model.loss(moving_square(2, 6))
    assert terms["kl_free"] == 0 and torch.isclose(loss, terms["nll"])
    assert terms["kl"] > 0
    mean, std, _ = model.cell.prior(torch.zeros(3, 4), torch.zeros(3, 8))
    assert (std > 0.1).all()  # softplus + 0.1


# ---------------------------------------------------------------- VTA


def test_vta_boundaries_at_test_are_hard_and_the_first_is_a_read():
    model = smoke("vta").eval()
    frames, reads = model.generate(moving_square(3, 5), 20)
    assert frames.shape == (3, 20, 1, 64, 64)
    assert set(reads.unique().tolist()) <= {0.0, 1.0}
    assert (reads[:, 0] == 1).all()


def test_vta_sees_the_context_as_it_sees_a_training_window(monkeypatch):
    """The context is filtered with the posterior exactly as the modelled frames of a training
    window that ends with it: the same latent features for the same frames. (With boundaries
    that depend on each frame alone: the boundary detector's 1-D convs also look ahead, which
    inside a training window reaches frames after the context.)"""
    import baselines.vta as vta_module

    monkeypatch.setattr(vta_module, "rsample", lambda dist: dist[0])  # mean states
    model = smoke("vta").eval()  # init_size 2
    init, Tc = model.cfg.init_size, 7
    model.post_boundary.forward = lambda enc: enc[..., :2] * 3  # per-frame boundary logits
    feats = []
    model.obs_feat.register_forward_hook(lambda m, args, out: feats.append(out))
    window = moving_square(2, Tc + init, seed=4)  # its last init_size frames are only context in training
    with torch.no_grad():
        _, terms = model.loss(window)
        in_training = torch.stack(feats, 1)  # (B, Tc - init, F): frames init .. Tc - 1
        feats.clear()
        _, initial = model.observe(window[:, :Tc])
    at_test = torch.stack(feats, 1)
    assert not initial and at_test.shape == in_training.shape == (2, Tc - init, model.cfg.belief)
    assert torch.allclose(at_test, in_training, atol=1e-6)
    assert 1 < terms["reads"] < Tc - init  # the context holds several segments


def test_vta_is_table_1s_vta_row():
    from models import get_model_class

    assert get_model_class("vta").paper_label == "VTA"


def test_vta_trains_with_amsgrad_as_the_official_code():
    from benchmarks.config import resolve_config
    from benchmarks.trainer import make_optimizer

    for model, amsgrad in (("vta", True), ("svg", False), ("cwvae", False)):
        cfg = resolve_config(model, "mmnist", "paper")
        opt = make_optimizer(torch.nn.Linear(2, 1), cfg)
        assert opt.defaults["amsgrad"] is amsgrad, model  # official train.py: Adam(..., amsgrad=True)
        assert opt.defaults["lr"] == cfg.train.lr and opt.defaults["eps"] == cfg.train.adam_eps


def test_vta_temperature_anneals_with_training_steps_and_is_saved():
    model = smoke("vta", beta_max=1.0, beta_min=0.1, beta_anneal=100.0)
    video = moving_square(2, 12)
    model.eval()
    model.loss(video)  # evaluation does not count as a training step
    assert int(model.step) == 0 and model.temperature == 1.0
    model.train()
    for _ in range(3):
        model.loss(video)
    assert int(model.step) == 3
    assert math.isclose(model.temperature, 0.9 * 0.999 ** (3 / 100) + 0.1)  # official train.py schedule
    assert int(model.state_dict()["step"]) == 3


def test_vta_concrete_density_matches_torch_up_to_log_temperature():
    from baselines.vta import log_density_concrete

    torch.manual_seed(0)
    log_alpha = torch.randn(5, 2)
    temp = 0.7
    log_sample = torch.log_softmax(torch.randn(5, 2), -1)
    ref = ExpRelaxedCategorical(torch.tensor(temp), logits=log_alpha).log_prob(log_sample)
    # the official density drops the constant log((K-1)!) + (K-1) log(temp) = log(temp) for K = 2
    assert torch.allclose(log_density_concrete(log_alpha, log_sample, temp) + math.log(temp), ref, atol=1e-5)


def test_vta_prior_boundary_limits_segment_length_and_number():
    model = smoke("vta", max_seg_len=3, max_seg_num=2).train()
    big = math.log(0.999 / 0.001)
    logits = torch.zeros(1, 8, 2)
    read, copy = [1.0, 0.0], [0.0, 1.0]
    # boundaries: read, copy, copy, copy, read, copy, copy, copy
    boundary = torch.tensor([[read, copy, copy, copy, read, copy, copy, copy]])
    out = model.regularize_prior_boundary(logits, boundary)[0]
    # segment lengths 1, 2, 3, 4, 1, 2, 3, 4; segments 1, 1, 1, 1, 2, 2, 2, 2
    assert torch.equal(out[0], torch.zeros(2)) and torch.equal(out[1], torch.zeros(2))
    assert torch.allclose(out[2], torch.tensor([big, -big]))  # length 3 reached: a boundary is forced
    assert torch.allclose(out[4], torch.tensor([-big, big]))  # 2 segments reached: no more boundaries...
    assert torch.allclose(out[6], torch.tensor([big, -big]))  # ...unless the segment is too long


# ---------------------------------------------------------------- SVG


def test_svg_feeds_back_its_own_frames_and_skips_from_the_last_context_frame():
    model = smoke("svg").eval()
    ctx = moving_square(2, 5, seed=3)
    seen, skips_used = [], []
    model.encoder.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    model.decoder.register_forward_hook(lambda m, args, out: skips_used.append([s.clone() for s in args[1]]))
    torch.manual_seed(0)
    preds = model.predict(ctx, 4, 1)[:, 0]  # (2, 4, 1, 64, 64)
    assert torch.equal(seen[0], ctx.flatten(0, 1))  # one pass over the context...
    for k, frames in enumerate(seen[1:]):  # ...then only the model's own previous predictions
        assert torch.equal(frames, preds[:, k])
    assert len(seen) == 4
    with torch.no_grad():
        last_skips = model.encoder(ctx[:, -1])[1]
    for used in skips_used:
        assert all(torch.equal(u, s) for u, s in zip(used, last_skips))


def test_svg_training_skips_come_from_the_last_past_frame():
    model = smoke("svg", n_past=3).train()
    used = []
    model.decoder.register_forward_hook(lambda m, args, out: used.append([s.clone() for s in args[1]]))
    video = moving_square(2, 8)
    with torch.no_grad():
        model.loss(video)
        _, skips = model.encode(video)  # the same batch statistics as inside loss(): one batch per time step
    got = used[0][0].unflatten(0, (2, 7))  # (B, T-1, ...): the skips used for frames 1..7
    for t in range(7):
        src = min(t, 2)  # frame t + 1 uses frame t's skips up to frame n_past - 1 = 2
        assert torch.equal(got[:, t], skips[0][:, src])


def test_svg_step_batch_norm_is_one_batch_norm_call_per_step():
    """StepBatchNorm2d on a (B*T) batch = T calls of BatchNorm2d on the steps: outputs and running averages."""
    from baselines.svg import StepBatchNorm2d, time_steps

    torch.manual_seed(0)
    B, T, C = 3, 5, 4
    x = torch.randn(B, T, C, 6, 6) * 3 + torch.arange(T)[:, None, None, None]  # statistics differ per step
    ours, ref = StepBatchNorm2d(C), torch.nn.BatchNorm2d(C)
    with torch.no_grad():
        for p in (ours, ref):
            p.weight.copy_(torch.linspace(0.5, 2, C))
            p.bias.copy_(torch.linspace(-1, 1, C))
            p.running_mean.fill_(0.3)
    with time_steps(ours, T):
        y = ours(x.flatten(0, 1)).unflatten(0, (B, T))
    expected = torch.stack([ref(x[:, t]) for t in range(T)], 1)
    assert torch.allclose(y, expected, atol=1e-5)
    assert torch.allclose(ours.running_mean, ref.running_mean, atol=1e-6)
    assert torch.allclose(ours.running_var, ref.running_var, atol=1e-6)
    assert ours.num_batches_tracked == ref.num_batches_tracked == T
    assert ours.steps == 1  # reset after the block
    ours.eval(), ref.eval()
    assert torch.allclose(ours(x[:, 0]), ref(x[:, 0]), atol=1e-6)  # eval: the running averages, as BatchNorm2d


def test_svg_objective_is_a_gaussian_elbo_scaled_by_beta():
    """sum_t MSE_t + beta KL = beta (Gaussian NLL - its constant + KL) with the std `equivalent_dec_std`."""
    model = smoke("svg").train()
    video = moving_square(2, 6)
    preds = []
    model.decoder.register_forward_hook(lambda m, args, out: preds.append(out))
    with torch.no_grad():
        loss, terms = model.objective(video, eps=torch.randn(2, 5, model.cfg.z_dim, generator=torch.manual_seed(0)))
    sigma, D = model.cfg.equivalent_dec_std, 64 * 64
    assert sigma == pytest.approx(math.sqrt(model.cfg.beta * D / 2))
    pred = preds[0].unflatten(0, (2, 5)).double()  # (B, T-1, C, H, W)
    nll = -torch.distributions.Normal(pred, sigma).log_prob(video[:, 1:].double()).sum((1, 2, 3, 4)).mean()
    const = 5 * D * math.log(sigma * math.sqrt(2 * math.pi))  # per frame, 5 predicted frames
    elbo_loss = model.cfg.beta * (nll - const + terms["kl"].double() * 5)
    assert loss.item() == pytest.approx(elbo_loss.item(), rel=1e-5)


# edenton/svg README.md line 44, the authors' 64x64 KTH command; the rest are train_svg_lp.py's defaults
SVG_KTH = {"backbone": "vgg", "g_dim": 128, "z_dim": 24, "beta": 1e-6, "rnn_size": 256, "predictor_layers": 2}
SVG_MMNIST = {"backbone": "dcgan", "g_dim": 128, "z_dim": 10, "beta": 1e-4, "rnn_size": 256, "predictor_layers": 2}


@pytest.mark.parametrize("dataset", ["mmnist", "mmnist_official", "kth", "minerl", "mazes"])
def test_svg_settings_per_dataset(dataset):
    """KTH: the original's own KTH settings and the large (VGG-64, 23M) model; every other dataset
    the small DCGAN-64 (13M) with the SM-MNIST settings (Table D.2; paper Sec. 3.3)."""
    cfg = resolve_config("svg", dataset, "paper")
    expected, lr, count = (SVG_KTH, 8e-4, "23M") if dataset == "kth" else (SVG_MMNIST, 1e-3, "13M")
    assert {k: getattr(cfg.model, k) for k in expected} == expected
    assert (cfg.model.posterior_layers, cfg.model.prior_layers, cfg.model.n_past) == (1, 1, 36)
    assert cfg.train.lr == lr
    assert f"{round(build_model('svg', dataset=dataset, preset='paper').num_params() / 1e6)}M" == count


def test_svg_paper_label_is_its_table1_row():
    assert get_model_class("svg").paper_label == "SVG"
