"""Activation checkpointing (models/checkpointing.py; `checkpoint_activations` of SVG and VTA):
the same loss, gradients, batch-norm running statistics and predictions with it on and off,
and less kept for backward. float64, tiny networks; the tolerance is float64 round-off
(rtol 1e-10, atol 1e-12): the re-run in backward is the same computation (SVG's chunks of
time steps fold the running averages chunk by chunk), so in practice the numbers are equal.
SVG runs in chunks of 3 steps here (CHECKPOINT_STEPS, 10 in use) over 8 frames with n_past 5:
a decoder chunk inside the past frames, one across frame n_past - 1 and one after it."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from benchmarks.config import build_model
from models.checkpointing import checkpointed, saved_for_backward

TOL = dict(rtol=1e-10, atol=1e-12)
SMALL = {
    "svg": dict(nf=4, g_dim=8, z_dim=3, rnn_size=8, n_past=5),
    "svg_vgg": dict(backbone="vgg", nf=2, g_dim=8, z_dim=3, rnn_size=8, n_past=5),
    "vta": dict(belief=8, state=3, num_layers=1, init_size=2, max_seg_len=3, max_seg_num=2),
}


@pytest.fixture(autouse=True)
def short_chunks(monkeypatch):
    import baselines.svg

    monkeypatch.setattr(baselines.svg, "CHECKPOINT_STEPS", 3)


def small_model(variant: str, checkpoint_activations: bool):
    torch.manual_seed(0)
    model = build_model(
        variant.split("_")[0], preset="smoke", checkpoint_activations=checkpoint_activations, **SMALL[variant]
    )
    return model.double()


def train_step(model, video: torch.Tensor):
    """One training step (loss, backward, SGD) from a fixed seed; -> loss, gradients, buffers after the step."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(1)  # the same posterior / Gumbel noise both times
    loss, _ = model.loss(video)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    return loss.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}


# ---------------------------------------------------------------- the helper


class Net(nn.Module):
    """Conv, batch norm (running statistics), dropout (random numbers)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("kept", [True, False])
def test_checkpointed_replays_random_numbers_and_updates_batch_norm_once(kept):
    x = torch.randn(6, 2, 5, 5, dtype=torch.float64)
    results = []
    for mode in ("plain", "checkpointed"):
        torch.manual_seed(0)
        net = Net().double().train()
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(1)
        if mode == "plain":
            y = net(xi)
        elif kept:
            y = checkpointed(net, xi, module=net)
        else:  # torch's checkpoint alone: the control that shows what `checkpointed` guards against
            y = checkpoint(net, xi, use_reentrant=False)
        torch.manual_seed(2)  # the backward re-run must not depend on the generator's state by then
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        bn = net.net[1]
        results.append((y.detach(), xi.grad, net.net[0].weight.grad, bn.running_mean.clone(), bn.running_var.clone()))
        results[-1] += (int(bn.num_batches_tracked),)
    (y0, gx0, gw0, m0, v0, n0), (y1, gx1, gw1, m1, v1, n1) = results
    torch.testing.assert_close(y1, y0, **TOL)
    torch.testing.assert_close(gx1, gx0, **TOL)  # the dropout mask was replayed
    torch.testing.assert_close(gw1, gw0, **TOL)
    if kept:
        torch.testing.assert_close((m1, v1), (m0, v0), **TOL)
        assert n1 == n0 == 1
    else:  # the re-run in backward updated the running statistics a second time
        assert n1 == 2 and not torch.allclose(m1, m0)


def test_checkpointed_is_plain_without_autograd():
    net = Net().double().eval()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(checkpointed(net, x, module=net), net(x), rtol=0, atol=0)


# ---------------------------------------------------------------- SVG and VTA


@pytest.mark.parametrize("variant", ["svg", "svg_vgg", "vta"])
def test_checkpointing_keeps_loss_gradients_running_statistics_and_predictions(variant):
    video = torch.rand(3, 8, 1, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    off, on = small_model(variant, False), small_model(variant, True)
    loss0, grads0, buffers0 = train_step(off, video)
    loss1, grads1, buffers1 = train_step(on, video)
    torch.testing.assert_close(loss1, loss0, **TOL)
    assert grads1.keys() == grads0.keys()
    for name in grads0:  # every parameter's gradient
        torch.testing.assert_close(grads1[name], grads0[name], **TOL, msg=name)
    norms = [n for n in buffers0 if "running_" in n or "num_batches" in n]
    assert len(norms) >= 3 * 4
    for name in buffers0:  # batch-norm running statistics and counts after one step (VTA: its step counter too)
        torch.testing.assert_close(buffers1[name], buffers0[name], **TOL, msg=name)
    for name in (n for n in norms if "num_batches" in n):  # SVG: one update per time step (8 frames, 7 decoded)
        steps = (8 if name.startswith("encoder") else 7) if variant.startswith("svg") else 1
        assert int(buffers0[name]) == steps, name
    context = video[:, :4]
    torch.manual_seed(3)
    pred0 = off.predict(context, 5, n_samples=2)
    torch.manual_seed(3)
    pred1 = on.predict(context, 5, n_samples=2)
    torch.testing.assert_close(pred1, pred0, **TOL)


def record_loss(model, video, losses: list):
    losses.append(model.loss(video)[0])


# per model: the bound on (bytes counted with every save counted) / (each storage once) without
# checkpointing, and on (kept with it) / (kept without). In-place activations after batch norm (VTA's
# ELU, SVG's leaky ReLU) are saved by the activation and by the next conv: counted twice, once kept.
# Measured at these sizes: SVG 1.16x, 7.3 MB -> 2.0 MB (0.28); VTA 1.42x, 5.4 MB -> 2.9 MB (0.55)
# (the paper configuration at batch 10 and 50: docs/performance.md, "Training memory of SVG and VTA").
BOUNDS = {"svg": (1.2, 0.5), "vta": (1.5, 0.6)}


@pytest.mark.parametrize("variant", ["svg", "vta"])
def test_checkpointing_keeps_less_for_backward(variant):
    double_counted, kept_share = BOUNDS[variant]
    video = torch.rand(2, 8, 1, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kept = {}
    for on in (False, True):
        model = small_model(variant, on).train()
        torch.manual_seed(1)
        losses = []
        kept[on] = sum(saved_for_backward(model, record_loss, model, video, losses).values())
        losses[0].backward()  # and backward still runs
        if not on:  # without keeping, a storage saved twice counts twice: more
            dropped = sum(saved_for_backward(model, model.loss, video, keep=False).values())
            assert kept[on] <= dropped < double_counted * kept[on]
    assert kept[True] < kept_share * kept[False], kept


def test_the_switch_is_on_at_the_paper_preset_only_and_leaves_the_run_identity():
    from benchmarks.config import resolve_config

    for model in ("svg", "vta"):
        on = {p: resolve_config(model, "mmnist", p) for p in ("smoke", "quick", "paper")}
        assert [c.build_model().cfg.checkpoint_activations for c in on.values()] == [False, False, True]
        off = resolve_config(model, "mmnist", "paper", sets=["model.checkpoint_activations=false"])
        assert off.hash() == on["paper"].hash()  # the same numbers: the same run (rundir.run.OPERATIONAL)
