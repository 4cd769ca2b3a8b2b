"""Adam's two epsilon forms (benchmarks/optim.py) against their closed forms, and resuming."""

import copy

import numpy as np
import pytest
import torch

from benchmarks.config import ConfigError, resolve_config
from benchmarks.optim import AdamEpsHat, make_adam

B1, B2 = 0.9, 0.999


def tf_adam(theta, grads, lr, eps):
    """TensorFlow's ApplyAdam kernel (tf.keras.optimizers.Adam, tf.train.AdamOptimizer), in float64:
    lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); theta -= lr_t * m / (sqrt(v) + eps)."""
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        theta = theta - lr * np.sqrt(1 - B2**t) / (1 - B1**t) * m / (np.sqrt(v) + eps)
    return theta


def run(eps_form, grads, lr, eps):
    p = torch.nn.Parameter(torch.zeros(len(grads[0]), dtype=torch.float64))
    opt = make_adam([p], lr, eps, eps_form)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return p.detach().numpy()


def test_hat_form_is_tensorflows_update_and_torch_form_is_not():
    rng = np.random.default_rng(0)
    # gradients from tiny (epsilon dominates) to large (epsilon negligible)
    grads = [rng.normal(size=6) * np.array([1e-6, 1e-5, 1e-4, 1e-3, 1e-1, 10.0]) for _ in range(5)]
    expected = tf_adam(np.zeros(6), grads, lr=1e-3, eps=1e-4)
    np.testing.assert_allclose(run("hat", grads, 1e-3, 1e-4), expected, rtol=1e-10, atol=0)
    torch_form = run("torch", grads, 1e-3, 1e-4)
    assert not np.allclose(torch_form[:4], expected[:4], rtol=0.1)  # small gradients: the forms differ
    np.testing.assert_allclose(torch_form[5], expected[5], rtol=1e-3)  # large gradients: nearly the same


def test_hat_form_resumes_from_its_state_dict():
    torch.manual_seed(0)
    grads = [torch.randn(4, dtype=torch.float64) * 1e-4 for _ in range(6)]
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = AdamEpsHat([p], lr=1e-3, eps=1e-4)
    for g in grads[:3]:
        p.grad = g.clone()
        opt.step()
    q = torch.nn.Parameter(p.detach().clone())
    resumed = AdamEpsHat([q], lr=1e-3, eps=1e-4)
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))  # as from a checkpoint file: no shared tensors
    for g in grads[3:]:
        for param, o in ((p, opt), (q, resumed)):
            param.grad = g.clone()
            o.step()
    assert torch.equal(p, q)
    assert opt.param_groups[0]["eps"] == pytest.approx(1e-4 / (1 - B2**6) ** 0.5)


def test_eps_form_is_checked_and_set_per_model():
    with pytest.raises(ConfigError, match="train.adam_eps_form=keras is not a valid choice; valid: torch, hat"):
        resolve_config("cwvae", "mmnist", "smoke", sets=["train.adam_eps_form=keras"])
    assert resolve_config("cwvae", "mmnist", "paper").train.adam_eps_form == "hat"  # official: Keras Adam
    assert resolve_config("rssm", "mmnist", "paper").train.adam_eps_form == "hat"
    assert resolve_config("svg", "mmnist", "paper").train.adam_eps_form == "torch"  # PyTorch originals


def amsgrad(theta, grads, lr, eps, hat=False):
    """torch's AMSGrad (the official VTA's Adam(..., amsgrad=True)), in float64: the bias-corrected
    step with the running maximum of v: theta -= lr / (1 - b1^t) * m / (sqrt(max v) / sqrt(1 - b2^t) + eps);
    hat: epsilon added to the uncorrected sqrt(max v), i.e. eps / sqrt(1 - b2^t) in that formula."""
    m = v = v_max = 0.0
    for t, g in enumerate(grads, start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        v_max = np.maximum(v_max, v)
        eps_t = eps / np.sqrt(1 - B2**t) if hat else eps
        theta = theta - lr / (1 - B1**t) * m / (np.sqrt(v_max) / np.sqrt(1 - B2**t) + eps_t)
    return theta


@pytest.mark.parametrize("eps_form", ["torch", "hat"])
def test_amsgrad_keeps_the_largest_second_moment(eps_form):
    grads = [np.array([3.0, -2.0, 1e-3])] + [np.array([1e-2, 1e-3, 1e-3])] * 4  # v falls after step 1
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = make_adam([p], 1e-3, 1e-8, eps_form, amsgrad=True)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    expected = amsgrad(np.zeros(3), grads, 1e-3, 1e-8, hat=eps_form == "hat")
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-10)
    assert not np.allclose(p.detach().numpy(), run(eps_form, grads, 1e-3, 1e-8), rtol=1e-5)  # not plain Adam
    assert resolve_config("vta", "mmnist", "paper").train.amsgrad  # official train.py: Adam(..., amsgrad=True)
    assert not resolve_config("svg", "mmnist", "paper").train.amsgrad
