"""Adam in the two places epsilon can go (`train.adam_eps_form`).

    torch  PyTorch's Adam: theta -= lr * m_hat / (sqrt(v_hat) + eps), with the bias-corrected
           moments m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t) (Kingma & Ba, Algorithm 1).
    hat    TensorFlow's and Keras' Adam (tf.keras.optimizers.Adam, tf.train.AdamOptimizer):
           theta -= lr_t * m / (sqrt(v) + eps) with lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t):
           epsilon is added to the *uncorrected* sqrt(v) ("epsilon hat" in Kingma & Ba,
           Section 2). The official CW-VAE trains with it (train.py: Keras Adam, epsilon 1e-4).

The two are the same update with eps_torch = eps / sqrt(1 - b2^t): `hat` is torch's Adam with
that epsilon set before each step. It is larger early in training (at t = 1, 31.6 x eps for
b2 = 0.999) and tends to eps, so the forms differ mostly in the first few thousand steps.
"""

from __future__ import annotations

import math

import torch

EPS_FORMS = ("hat", "torch")


class AdamEpsHat(torch.optim.Adam):
    """torch.optim.Adam with TensorFlow's epsilon-hat update (see the module docstring)."""

    def __init__(self, params, lr: float, eps: float, betas=(0.9, 0.999), amsgrad: bool = False):
        super().__init__(params, lr=lr, eps=eps, betas=betas, amsgrad=amsgrad)
        for group in self.param_groups:
            group["eps_hat"] = eps  # saved with the optimizer's state_dict, so a resumed run keeps it

    def _next_step(self, group) -> int:
        steps = [self.state[p]["step"] for p in group["params"] if "step" in self.state.get(p, {})]
        return int(max(steps)) + 1 if steps else 1

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            t = self._next_step(group)
            group["eps"] = group["eps_hat"] / math.sqrt(1 - group["betas"][1] ** t)
        return super().step(closure)


def make_adam(params, lr: float, eps: float, eps_form: str, amsgrad: bool = False) -> torch.optim.Adam:
    """Adam with epsilon in `eps_form` ('hat': TensorFlow/Keras, 'torch': PyTorch); amsgrad=True
    keeps the running maximum of v (Reddi et al. 2018; torch's `amsgrad`, the official VTA's)."""
    if eps_form == "hat":
        return AdamEpsHat(params, lr=lr, eps=eps, amsgrad=amsgrad)
    if eps_form == "torch":
        return torch.optim.Adam(params, lr=lr, eps=eps, amsgrad=amsgrad)
    raise ValueError(f"train.adam_eps_form must be one of {EPS_FORMS}, got {eps_form!r}")
