"""CW-VAE: shapes, clockwork ticks, parameter counts (Table D.2), NoTmpAbs, loss terms."""

import pytest
import torch

from models import build_model
from models.cwvae import CWVAE


def small(**kw) -> CWVAE:
    torch.manual_seed(0)
    return CWVAE(stoch=4, deter=8, hidden=8, enc_dense_hidden=16, **kw)


def test_paper_parameter_counts_round_to_table_d2():
    assert round(build_model("cwvae", preset="paper").num_params() / 1e6) == 12
    assert round(build_model("notmpabs", preset="paper").num_params() / 1e6) == 12
    large = build_model("cwvae", preset="paper", stoch=100, deter=800, hidden=800, channels=3)  # MineRL config
    assert round(large.num_params() / 1e6) == 34


def test_level_steps_and_embedding_blocks():
    model = small(levels=3, factor=2)
    video = torch.rand(2, 10, 1, 64, 64)
    embeds = model.embed(video)
    assert [e.shape[1] for e in embeds] == [10, 5, 3]  # ceil(10 / 2^l)
    # the level-3 embedding of block 1 (frames 4..7) is the sum of the chained MLP over those frames
    hidden = model.encoder(video.flatten(0, 1)).unflatten(0, (2, 10))
    h2 = model.level_mlps[0](hidden)
    h3 = model.level_mlps[1](h2)
    assert torch.allclose(embeds[2][:, 1], h3[:, 4:8].sum(1), atol=1e-5)
    assert torch.allclose(embeds[2][:, 2], h3[:, 8:10].sum(1), atol=1e-5)  # zero padding past the end


def test_level_state_changes_only_at_its_ticks():
    """Level l's state at frame t is the state of its last tick t' <= t with t' mod k^(l-1) = 0:
    changing frames after a tick's block never changes that tick's state."""
    model = small(levels=3, factor=3)
    video = torch.rand(1, 18, 1, 64, 64)
    torch.manual_seed(1)
    levels = model.unroll(18, model.embed(video), model.initial_state(1, "cpu"), 1, "cpu")
    assert [lv["deter"].shape[1] for lv in levels] == [18, 6, 2]
    edited = video.clone()
    edited[:, 9:] = torch.rand_like(edited[:, 9:])  # frames 9.. belong to level-3 tick 1, level-2 ticks 3..
    torch.manual_seed(1)
    levels2 = model.unroll(18, model.embed(edited), model.initial_state(1, "cpu"), 1, "cpu")
    assert torch.equal(levels[2]["deter"][:, 0], levels2[2]["deter"][:, 0])  # level 3 tick 0 saw frames 0..8
    assert torch.equal(levels[1]["deter"][:, :3], levels2[1]["deter"][:, :3])  # level 2 ticks 0..2: frames 0..8
    assert not torch.equal(levels[1]["deter"][:, 3], levels2[1]["deter"][:, 3])
    assert torch.equal(levels[0]["deter"][:, :9], levels2[0]["deter"][:, :9])


def test_context_from_above_is_held_between_ticks():
    """The level below sees the same upper-level output for all k frames of a block."""
    model = small(levels=2, factor=4)
    seen = []
    cell = model.cells[0]
    original = cell.unroll

    def spy(context, embeds, state):
        seen.append(context)
        return original(context, embeds, state)

    cell.unroll = spy
    model.loss(torch.rand(1, 8, 1, 64, 64))
    context = seen[0][0]  # (8, stoch+deter)
    assert torch.equal(context[0], context[3]) and torch.equal(context[4], context[7])
    assert not torch.equal(context[3], context[4])


def test_loss_terms_and_kl_per_level():
    model = small(levels=3, factor=2)
    loss, terms = model.loss(torch.rand(2, 8, 1, 64, 64))
    assert set(terms) == {"nll", "kl_level1", "kl_level2", "kl_level3"}
    total = (terms["nll"] * 8 + terms["kl_level1"] + terms["kl_level2"] + terms["kl_level3"]) / 8
    assert loss.item() == pytest.approx(total.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_predict_shape_range_and_context_multiple():
    model = small(levels=2, factor=3)
    preds = model.predict(torch.rand(2, 6, 1, 64, 64), horizon=7, n_samples=3)
    assert preds.shape == (2, 3, 7, 1, 64, 64)
    assert preds.min() >= 0 and preds.max() <= 1
    with pytest.raises(ValueError, match="multiple of"):
        model.predict(torch.rand(1, 5, 1, 64, 64), horizon=2)


def test_top_prior_changes_predictions():
    model = small(levels=2, factor=3)
    ctx = torch.rand(1, 6, 1, 64, 64)
    torch.manual_seed(0)
    a = model.predict(ctx, 6, raw=True)
    torch.manual_seed(0)
    b = model.predict(ctx, 6, raw=True, use_obs=(True, False))
    assert not torch.equal(a, b)


def test_notmpabs_is_factor_one():
    model = build_model("notmpabs", preset="smoke")
    assert model.cfg.factor == 1 and model.context_multiple() == 1
    with pytest.raises(ValueError, match="factor 1"):
        build_model("notmpabs", preset="smoke", factor=6)
