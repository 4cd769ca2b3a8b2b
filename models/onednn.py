"""Linear layers whose large float32 products run on oneDNN on the CPU (speed feature `onednn_linear`).

torch's CPU matrix product calls MKL. On this project's AMD CPU, MKL's float32 product runs at
128-147 GFLOP/s where oneDNN's matmul (the library that already runs every convolution) runs at
175-211 on the same shapes (docs/performance.md). `linear` sends a product to oneDNN when it is large
enough to pay (>= ONEDNN_MIN_ROWS rows: the per-frame and per-step layers that run over a whole
batch of frames at once), in float32 on the CPU outside autocast; every other product stays
F.linear. Same math, another order of summation (tests/test_fastpaths.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.fastpaths import enabled

ONEDNN_MIN_ROWS = 256  # below this the recurrence's (batch x width) products are faster on MKL


def available() -> bool:
    """oneDNN's linear kernel is in this torch build (x86 builds since torch 2.0)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _mm(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x (M, K) @ weight (N, K)^T + bias (N,) -> (M, N) on oneDNN. A weight that is a slice of a wider one
    (the hoisted projections' column blocks) is copied first: oneDNN falls back to a reference kernel,
    ~50x slower, for a weight whose rows are not packed."""
    return torch.ops.mkldnn._linear_pointwise(x, weight.contiguous(), bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b with oneDNN products forward and backward: x (M, K), W (N, K), b (N,) or None."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _mm(x, weight, bias)  # (M, N)

    @staticmethod
    def backward(ctx, grad: Tensor):  # grad (M, N)
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad = grad.contiguous()
        grad_x = _mm(grad, weight.t(), None) if need_x else None  # (M, N) @ (N, K) -> (M, K)
        grad_w = _mm(grad.t(), x.t(), None) if need_w else None  # (N, M) @ (M, K) -> (N, K)
        grad_b = grad.sum(0) if ctx.has_bias and need_b else None  # (N,)
        return grad_x, grad_w, grad_b


def use_onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether `linear(x, weight)` takes oneDNN: the feature on, float32 on the CPU, no autocast
    (which picks its own kernels), and enough rows to pay."""
    return (
        enabled("onednn_linear")
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and x.dim() >= 2
        and x.numel() >= ONEDNN_MIN_ROWS * x.shape[-1] > 0
        and available()
    )


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """F.linear: (..., K) -> (..., N), on oneDNN where `use_onednn` says so."""
    if not use_onednn(x, weight):
        return F.linear(x, weight, bias)
    out = _OneDNNLinear.apply(x.reshape(-1, x.shape[-1]), weight, bias)  # (M, N)
    return out.view(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """nn.Linear (same parameters, same state dict) whose product goes through `linear`."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)
