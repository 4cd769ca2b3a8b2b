"""Networks shared by several models: the paper's conv encoder/decoder and Gaussian heads.

The encoder and decoder follow Appendix C of the CW-VAE paper and the official code
(vaibhavsaxena11/cwvae, cnns.py): DCGAN-like, "VALID" padding, no skip connections.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.fastpaths import enabled


class ConvEncoder(nn.Module):
    """Frames (N, C, 64, 64) -> embeddings (N, 1024).

    4 convs, kernel 4, stride 2, VALID padding, 32/64/128/256 channels, leaky ReLU 0.2:
    64 -> 31 -> 14 -> 6 -> 2, and 2 * 2 * 256 = 1024 features, flattened in the (H, W, C)
    order of the official TF code (tf.layers.flatten of NHWC), so its dense weights apply as they are.
    """

    def __init__(self, channels: int, depth: int = 32):
        super().__init__()
        widths = [channels, depth, 2 * depth, 4 * depth, 8 * depth]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.out_dim = 8 * depth * 2 * 2

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = leaky_relu(conv(x))
        return x.permute(0, 2, 3, 1).flatten(1)  # (N, 2 * 2 * 256) in (H, W, C) order


class ConvDecoder(nn.Module):
    """Features (N, F) -> frames (N, C, 64, 64).

    Dense to 1x1x1024, then transposed convs with kernels 5, 5, 6, 6 and stride 2
    (128, 64, 32, C channels): 1 -> 5 -> 13 -> 30 -> 64. The official CW-VAE decoder
    ends in tanh (`out_activation="tanh"`); PlaNet's RSSM decoder has none.
    """

    def __init__(self, in_dim: int, channels: int, depth: int = 32, out_activation: str = "tanh"):
        super().__init__()
        if out_activation not in ("tanh", "none"):
            raise ValueError(f"out_activation must be 'tanh' or 'none', got {out_activation!r}")
        self.dense = nn.Linear(in_dim, 32 * depth)
        widths = [32 * depth, 4 * depth, 2 * depth, depth, channels]
        kernels = [5, 5, 6, 6]
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(a, b, k, stride=2) for a, b, k in zip(widths[:-1], widths[1:], kernels)
        )
        self.out_activation = out_activation

    def forward(self, feat: Tensor) -> Tensor:
        first, *rest = self.deconvs
        if enabled("decoder_gemm"):
            x = self.dense_and_first_deconv(feat)  # (N, 128, 5, 5)
        else:
            x = first(self.dense(feat)[:, :, None, None])  # (N, 1024, 1, 1) -> (N, 128, 5, 5)
        for deconv in rest[:-1]:
            x = middle_deconv(deconv, leaky_relu(x))  # (N, 64, 13, 13), then (N, 32, 30, 30)
        x = last_deconv(rest[-1], leaky_relu(x))  # (N, C, 64, 64)
        return torch.tanh(x) if self.out_activation == "tanh" else x  # (N, C, 64, 64)

    def dense_and_first_deconv(self, feat: Tensor) -> Tensor:
        """dense, then the first transposed conv, as matrix products: (N, F) -> (N, 128, 5, 5).

        On a 1x1 input a transposed conv is a matrix product, out[n, c, i, j] = sum_k x[n, k] W[k, c, i, j]
        + b[c], and the dense layer before it has no activation, so both are one product with the
        weight W_d^T W (F x 3200), made once per call: 5x fewer multiply-adds per frame, which pays from
        a few hundred frames a call (a training batch is thousands). Always this way, whatever the batch,
        so that decoding in chunks gives bit for bit what decoding at once gives (the evaluation streams)."""
        first = self.deconvs[0]
        N = feat.shape[0]
        C1, k = first.out_channels, first.kernel_size[0]
        w = first.weight.flatten(1)  # (D, C1*k*k), columns in (c, i, j) order
        bias = first.bias.repeat_interleave(k * k)  # (C1*k*k,)
        x = torch.addmm(self.dense.bias @ w + bias, feat, self.dense.weight.t() @ w)  # (N, C1*k*k)
        return x.view(N, C1, k, k)


def middle_deconv(deconv: nn.ConvTranspose2d, x: Tensor) -> Tensor:
    """The decoder's stride-2 transposed convs between its first and last: by `SubpixelDeconv` in
    bf16 on the CPU (`subpixel_deconv`), else torch's layer."""
    return subpixel_deconv(deconv, x) if by_phases(deconv, x) else deconv(x)


def last_deconv(deconv: nn.ConvTranspose2d, x: Tensor) -> Tensor:
    """The decoder's last transposed conv. In bf16 on the CPU by `SubpixelDeconv` (`subpixel_deconv`).
    Else on the CPU by matrix product and col2im (torch's native kernel) in the weights' precision
    (`native_last_deconv`): oneDNN is several times slower for a layer with one output channel, in
    float32 and in bf16 alike, so with `subpixel_deconv` off this layer runs in float32 under bf16
    autocast (docs/performance.md)."""
    if by_phases(deconv, x):
        return subpixel_deconv(deconv, x)
    native = enabled("native_last_deconv") and x.device.type == "cpu" and deconv.out_channels <= 3
    if not native:
        return deconv(x)
    with torch.autocast("cpu", enabled=False):
        return torch.ops.aten.slow_conv_transpose2d(
            x.to(deconv.weight.dtype),
            deconv.weight,
            deconv.kernel_size,
            deconv.bias,
            deconv.stride,
            deconv.padding,
            deconv.output_padding,
        )


def by_phases(deconv: nn.ConvTranspose2d, x: Tensor) -> bool:
    """Whether `subpixel_deconv` runs this layer: on the CPU in bf16 (under autocast, as
    `train.amp=bf16` trains), a stride-2 layer without padding. oneDNN's bf16 transposed conv is slow
    on the decoder's shapes (the 5 -> 13 px layer's forward slower than in float32, the one-channel
    last layer several times slower), its plain convs are not. In float32 the middle layers take the
    same time either way and oneDNN's stays."""
    dtype = deconv.weight.dtype
    if torch.is_autocast_enabled("cpu") and dtype == torch.float32:
        dtype = torch.get_autocast_dtype("cpu")
    return (
        enabled("subpixel_deconv")
        and x.device.type == "cpu"
        and dtype == torch.bfloat16
        and deconv.stride == (2, 2)
        and deconv.padding == (0, 0)
        and deconv.output_padding == (0, 0)
        and deconv.dilation == (1, 1)
        and deconv.groups == 1
        and deconv.bias is not None
    )


def subpixel_deconv(deconv: nn.ConvTranspose2d, x: Tensor) -> Tensor:
    """The layer by `SubpixelDeconv` in bf16: the casts autocast would make, then none inside."""
    with torch.autocast("cpu", enabled=False):
        bf16 = torch.bfloat16
        return SubpixelDeconv.apply(x.to(bf16), deconv.weight.to(bf16), deconv.bias.to(bf16))


class SubpixelDeconv(torch.autograd.Function):
    """conv_transpose2d(x, weight, bias, stride=2), no padding, by plain convolutions.

    Forward: output pixel (2q + r, 2q' + r') takes kernel taps (r + 2j, r' + 2j') only, so each of
    the 4 phases (r, r') is a plain conv of x (padded by k/2 - 1) with a (k/2 x k/2) slice of the
    kernel, flipped; the 4 run as one conv with 4x the output channels, and `interleave_phases` (a
    pixel shuffle) interleaves them. An odd kernel gets a zero tap appended and the extra last row
    and column are cut. Backward: the input gradient is conv2d(grad, weight, stride=2) (the
    transposed conv's adjoint), the weight gradient a plain conv's weight gradient with the roles of
    input and output swapped, the bias gradient a sum. Same function, another order of summation."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        C, D, k, _ = weight.shape  # x: (N, C, H, W), D output channels
        odd = k % 2
        m = (k + odd) // 2
        w = F.pad(weight, (0, odd, 0, odd)).reshape(C, D, m, 2, m, 2)  # [c, d, j, r, j', r'], tap 2j + r
        w = w.flip(2, 4).permute(1, 3, 5, 0, 2, 4).reshape(4 * D, C, m, m)  # channel 4d + 2r + r'
        phases = F.conv2d(x, w, bias.repeat_interleave(4), padding=m - 1)  # (N, 4D, P, Q), P = H + m - 1
        return interleave_phases(phases, odd)  # (N, D, 2H + k - 2, 2W + k - 2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()  # (N, D, 2H + k - 2, 2W + k - 2)
        dx = F.conv2d(grad, weight, stride=2) if ctx.needs_input_grad[0] else None  # (N, C, H, W)
        dw = None
        if ctx.needs_input_grad[1]:  # of conv2d(grad, weight, stride=2) with x as its output's gradient
            no_bias = None
            dw = torch.ops.aten.convolution_backward(
                x, grad, weight, no_bias, [2, 2], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False]
            )[1]  # (C, D, k, k)
        db = grad.sum((0, 2, 3)) if ctx.needs_input_grad[2] else None  # (D,)
        return dx, dw, db


def interleave_phases(phases: Tensor, crop: int) -> Tensor:
    """(N, 4D, P, Q), channel 4d + 2r + r' -> (N, D, 2P - crop, 2Q - crop), pixel (2p + r, 2q + r'):
    F.pixel_shuffle, less the last row and column where `crop` is 1 (an odd kernel's), into a fresh
    tensor (the caller's activation writes over it). By strided copies, one (crop 0) or one per phase,
    each already cropped: torch's pixel_shuffle kernel takes twice as long on the decoder's bf16
    shapes, and a crop after it is a second copy (docs/performance.md)."""
    if crop not in (0, 1):
        raise ValueError(f"crop must be 0 or 1, got {crop}")
    N, C4, P, Q = phases.shape
    by_phase = phases.view(N, C4 // 4, 2, 2, P, Q)  # [n, d, r, r', p, q]
    if not crop:
        return by_phase.permute(0, 1, 4, 2, 5, 3).reshape(N, C4 // 4, 2 * P, 2 * Q)  # [n, d, p, r, q, r']
    y = phases.new_empty(N, C4 // 4, 2 * P - crop, 2 * Q - crop)
    for r, s in ((0, 0), (0, 1), (1, 0), (1, 1)):  # the phases whose last row or column is cut lose it
        y[:, :, r::2, s::2] = by_phase[:, :, r, s, : P - r * crop, : Q - s * crop]
    return y


def leaky_relu(x: Tensor) -> Tensor:
    """The paper's leaky ReLU (slope 0.2), in place on a conv's fresh output where allowed."""
    return F.leaky_relu_(x, 0.2) if enabled("inplace_activations") else F.leaky_relu(x, 0.2)


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Run a block with `module` in eval mode (batch norm on running statistics, hard
    samples), restoring whatever mode the caller had left it in."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def apply_frames(net: nn.Module, video: Tensor) -> Tensor:
    """Run a per-frame network over all frames at once: (B, T, ...) -> (B, T, ...)."""
    B, T = video.shape[:2]
    out = net(video.flatten(0, 1))  # (B*T, ...)
    return out.unflatten(0, (B, T))


class GaussianHead(nn.Module):
    """Hidden (N, H) -> mean, std (N, D) by two dense layers, as the official CW-VAE cell (cells.py):
    mean = W_m x + b_m, std = softplus(W_s (x + shift) + b_s) + min_std. The official code adds
    `shift` = 0.54 to the std layer's *input* (not to its output); we do what the code does."""

    def __init__(self, in_dim: int, out_dim: int, min_std: float, shift: float = 0.0):
        super().__init__()
        self.mean = nn.Linear(in_dim, out_dim)
        self.std = nn.Linear(in_dim, out_dim)
        self.min_std, self.shift = min_std, shift

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(x), F.softplus(self.std(x + self.shift)) + self.min_std


def keras_init_(module: nn.Module) -> nn.Module:
    """Keras' default initialization, which the official TF code gets (Dense, Conv2D,
    Conv2DTranspose, GRUCell): glorot-uniform kernels, zero biases, an orthogonal recurrent
    GRU kernel. The fans are the same in both layouts (torch's GRU weight_ih (3H, in) is Keras'
    kernel (in, 3H) transposed; a conv's fans are k*k*in and k*k*out either way); the GRU's
    orthogonal (3H, H) matrix is Keras' (H, 3H) one transposed, up to the order of its gate
    blocks, which does not change the distribution. Returns `module`."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GRUCell):
            nn.init.xavier_uniform_(m.weight_ih)
            nn.init.orthogonal_(m.weight_hh)
            nn.init.zeros_(m.bias_ih)
            nn.init.zeros_(m.bias_hh)
    return module


def gaussian_params(x: Tensor, min_std: float) -> tuple[Tensor, Tensor]:
    """Split a head's output (..., 2D) into mean and std = softplus + min_std."""
    mean, raw_std = x.chunk(2, dim=-1)
    return mean, F.softplus(raw_std) + min_std


def gaussian_kl(mean_q: Tensor, std_q: Tensor, mean_p: Tensor, std_p: Tensor) -> Tensor:
    """KL(q || p) of diagonal Gaussians, summed over the last dim."""
    var_ratio = (std_q / std_p).pow(2)
    t1 = ((mean_q - mean_p) / std_p).pow(2)
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log()).sum(-1)


def gaussian_nll(x: Tensor, mean: Tensor, std: float, dims: int = 3) -> Tensor:
    """-log N(x | mean, std^2), summed over the last `dims` dims (default C, H, W)."""
    var = std * std
    nll = 0.5 * ((x - mean).pow(2) / var + torch.log(torch.tensor(2 * torch.pi * var, dtype=x.dtype)))
    return nll.flatten(-dims).sum(-1)
