"""Each speed feature of models/fastpaths.py computes what the plain code computes: loss,
gradients and predictions with the feature on equal those with it off.

Tolerances: in float64 the two orders of summation agree to ~1e-12 relative (checked at
1e-9); in float32, as trained, to ~1e-5 relative on the loss and gradients (checked at 1e-4)."""

import pytest
import torch

from models import get_model_class
from models.fastpaths import FEATURES, check_names, disabled, enabled
from models.nets import ConvDecoder, ConvEncoder

# CW-VAE with every layer of the paper's model at reduced widths (3 levels, factor 2)
SMALL = dict(levels=3, factor=2, stoch=4, deter=8, hidden=8, enc_dense_hidden=16, cnn_depth=4)


@pytest.fixture
def default_dtype():
    """Run a test in a default dtype (the models make their initial states in it)."""
    before = torch.get_default_dtype()

    def use(dtype):
        torch.set_default_dtype(dtype)

    yield use
    torch.set_default_dtype(before)


def loss_and_grads(model, video, seed=0):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same latent noise in both runs
    loss, _ = model.loss(video)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(a, b, rtol, what):
    a, b = a.detach(), b.detach()
    scale = b.abs().max().clamp_min(1e-12)
    err = float((a - b).abs().max() / scale)
    assert err <= rtol, f"{what}: relative difference {err:.3g} > {rtol}"


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
@pytest.mark.parametrize("feature", [*FEATURES, "all"])
def test_cwvae_loss_and_gradients_equal_with_the_feature_off(feature, dtype, rtol, default_dtype):
    default_dtype(dtype)
    torch.manual_seed(0)
    model = get_model_class("cwvae")(**SMALL).to(dtype)
    video = torch.rand(3, 8, 1, 64, 64, dtype=dtype)
    loss_on, grads_on = loss_and_grads(model, video)
    with disabled(*([] if feature == "all" else [feature])):
        loss_off, grads_off = loss_and_grads(model, video)
    assert_same(loss_on, loss_off, rtol, "loss")
    assert grads_on.keys() == grads_off.keys() and len(grads_on) == len(list(model.parameters()))
    for name in grads_on:
        assert_same(grads_on[name], grads_off[name], rtol, f"gradient of {name}")


@pytest.mark.parametrize("model_name", ["cwvae", "notmpabs"])
def test_open_loop_predictions_equal_with_the_features_off(model_name, default_dtype):
    from benchmarks.protocol import open_loop

    default_dtype(torch.float64)
    torch.manual_seed(0)
    hparams = SMALL if model_name == "cwvae" else {**SMALL, "factor": 1}
    model = get_model_class(model_name)(**hparams).double().eval()
    video = torch.rand(2, 4 + 6, 1, 64, 64, dtype=torch.float64)
    on = open_loop(model, video, 4, seed=3)
    with disabled():
        off = open_loop(model, video, 4, seed=3)
    assert on.shape == (2, 1, 6, 1, 64, 64)
    assert_same(on, off, 1e-9, "predictions")


@pytest.mark.parametrize("batch", [2, 600])
def test_decoder_dense_and_first_deconv_as_one_product(batch):
    """decoder_gemm (the weights multiplied first) against dense + conv."""
    torch.manual_seed(0)
    dec = ConvDecoder(28, 1, 4).double()
    feat = torch.randn(batch, 28, dtype=torch.float64)
    got = dec.dense_and_first_deconv(feat)
    want = dec.deconvs[0](dec.dense(feat)[:, :, None, None])  # (N, 16, 5, 5)
    assert got.shape == want.shape == (batch, 16, 5, 5)
    assert_same(got, want, 1e-12, "first deconv")


def test_encoder_and_decoder_equal_in_float32_at_the_paper_width():
    torch.manual_seed(0)
    enc, dec = ConvEncoder(1, 32), ConvDecoder(220, 1, 32)
    frames, feat = torch.rand(40, 1, 64, 64), torch.randn(40, 220)
    with torch.no_grad():
        on = enc(frames), dec(feat)
        with disabled():
            off = enc(frames), dec(feat)
    assert on[0].shape == (40, 1024) and on[1].shape == (40, 1, 64, 64)
    for a, b, what in zip(on, off, ("encoder", "decoder")):
        assert_same(a, b, 1e-5, what)


def test_feature_names_are_checked():
    with pytest.raises(KeyError, match="unknown speed feature 'nope'"):
        enabled("nope")
    with pytest.raises(ValueError, match="valid: decoder_gemm"):
        check_names(["decoder_gemm", "nope"])
    with disabled("native_last_deconv"):
        assert not enabled("native_last_deconv") and enabled("decoder_gemm")
    assert all(enabled(f) for f in FEATURES)  # restored


@pytest.mark.slow  # inductor compiles C++ on the CPU: ~1 minute
def test_compiled_steps_give_the_eager_loss_gradients_and_predictions():
    from benchmarks.protocol import open_loop
    from models.fastpaths import compile_steps

    torch.manual_seed(0)
    model = get_model_class("cwvae")(**SMALL)
    video = torch.rand(2, 8, 1, 64, 64)
    loss_eager, grads_eager = loss_and_grads(model, video)
    pred_eager = open_loop(model.eval(), video, 4, seed=1)
    assert compile_steps(model.train(), "default") == SMALL["levels"]
    loss_compiled, grads_compiled = loss_and_grads(model, video)
    pred_compiled = open_loop(model.eval(), video, 4, seed=1)
    assert_same(loss_compiled, loss_eager, 1e-5, "loss")
    for name in grads_eager:
        assert_same(grads_compiled[name], grads_eager[name], 1e-4, f"gradient of {name}")
    assert_same(pred_compiled, pred_eager, 1e-5, "predictions")
    with pytest.raises(ValueError, match="unknown compile mode 'fast'"):
        compile_steps(model, "fast")


def test_bf16_autocast_on_the_cpu_keeps_loss_and_predictions_within_tolerance():
    """train.amp=bf16 (CUDA or CPU): the loss within 1e-3 relative of fp32's, the open-loop predictions
    within 1e-2 (the measured differences are ~2e-6 and ~2e-4; docs/performance.md has the paper size)."""
    from benchmarks.protocol import open_loop

    torch.manual_seed(0)
    model = get_model_class("cwvae")(**SMALL)
    video = torch.rand(2, 8, 1, 64, 64)
    out = {}
    for amp in (False, True):
        torch.manual_seed(0)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss, _ = model.loss(video)
            pred = open_loop(model.eval(), video, 4, seed=1)
        model.train()
        out[amp] = loss.float(), pred.float()
    assert_same(out[True][0], out[False][0], 1e-3, "loss")
    assert float((out[True][1] - out[False][1]).abs().max()) < 1e-2


def test_last_deconv_under_bf16_autocast():
    """The one-channel last layer under CPU bf16 autocast: by SubpixelDeconv in bf16 (bf16 output,
    float32 parameter gradients, equal to float32 within bf16's rounding); with subpixel_deconv off,
    native_last_deconv runs it in float32 on the bf16 input (output and gradients equal to float32
    autograd's); with both off, oneDNN's bf16 layer (bf16 output, bf16 rounding)."""
    from torch import nn

    from models.nets import last_deconv

    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(8, 1, 6, stride=2)
    x = torch.rand(4, 8, 30, 30).bfloat16().requires_grad_()
    x32 = x.detach().float().requires_grad_()
    want = deconv(x32)
    g = torch.randn_like(want)
    (want * g).sum().backward()
    want_grads = x32.grad, deconv.weight.grad.clone(), deconv.bias.grad.clone()

    def run():
        deconv.zero_grad()
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = last_deconv(deconv, x)
        (y.float() * g).sum().backward()
        assert y.shape == (4, 1, 64, 64) and x.grad.dtype == torch.bfloat16
        assert deconv.weight.grad.dtype == torch.float32
        return y, (x.grad, deconv.weight.grad.clone(), deconv.bias.grad.clone())

    y, got = run()
    assert y.dtype == torch.bfloat16 and type(y.grad_fn).__name__ == "SubpixelDeconvBackward"
    assert_same(y.detach().float(), want.detach(), 2e-2, "subpixel output (bf16)")
    for a, c, what in zip(got, want_grads, ("input", "weight", "bias")):
        assert_same(a.float(), c, 2e-2, f"subpixel {what} gradient (bf16)")

    with disabled("subpixel_deconv"):
        y, got = run()
    assert y.dtype == torch.float32
    assert_same(y.detach(), want.detach(), 1e-5, "native output")
    assert_same(got[0].float(), want_grads[0].bfloat16().float(), 1e-2, "native input gradient (bf16)")
    assert_same(got[1], want_grads[1], 1e-5, "native weight gradient")
    assert_same(got[2], want_grads[2], 1e-5, "native bias gradient")

    with disabled("subpixel_deconv", "native_last_deconv"), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = last_deconv(deconv, x.detach())
    assert plain.dtype == torch.bfloat16 and type(plain.grad_fn).__name__ != "SubpixelDeconvBackward"
    assert_same(plain.float(), want.detach(), 2e-2, "oneDNN bf16 output")


@pytest.mark.parametrize("kernel, size", [(5, 5), (6, 13), (4, 7)])
def test_subpixel_deconv_is_the_transposed_conv_with_its_gradients(kernel, size):
    """subpixel_deconv's function: the forward by sub-pixel phases (an odd kernel padded with a zero
    tap, the extra row and column cut) and the hand-written backward equal torch's transposed conv
    and its autograd in float64; gradcheck checks the backward against finite differences."""
    from models.nets import SubpixelDeconv

    torch.manual_seed(0)
    x = torch.randn(2, 6, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 3, kernel, kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    y = SubpixelDeconv.apply(x, w, b)
    want_y = torch.nn.functional.conv_transpose2d(x, w, b, stride=2)
    assert y.shape == want_y.shape == (2, 3, 2 * size + kernel - 2, 2 * size + kernel - 2)
    assert y.is_contiguous() and y._base is None  # fresh: the decoder's leaky ReLU writes over it
    assert_same(y.detach(), want_y.detach(), 1e-12, "output")
    g = torch.randn_like(y)
    got = torch.autograd.grad((y * g).sum(), (x, w, b))
    want = torch.autograd.grad((want_y * g).sum(), (x, w, b))
    for a, c, what in zip(got, want, ("input gradient", "weight gradient", "bias gradient")):
        assert_same(a, c, 1e-12, what)
    small = (x[:1, :2, :3, :3], w[:2, :2], b[:2])  # (1, 2, 3, 3) input, (2, 2, k, k) weight
    assert torch.autograd.gradcheck(SubpixelDeconv.apply, [t.detach().clone().requires_grad_() for t in small])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("crop", [0, 1])
def test_interleave_phases_is_pixel_shuffle_then_crop(dtype, crop):
    """SubpixelDeconv's interleave (strided copies) moves every value where F.pixel_shuffle and a
    crop of the last row and column put it: bit for bit, into a fresh contiguous tensor."""
    from models.nets import interleave_phases

    phases = torch.randn(3, 4 * 5, 7, 6).to(dtype)  # (N, 4D, P, Q)
    want = torch.nn.functional.pixel_shuffle(phases, 2)
    want = want[:, :, : want.shape[2] - crop, : want.shape[3] - crop]
    got = interleave_phases(phases, crop)
    assert got.shape == (3, 5, 14 - crop, 12 - crop) and got.dtype == dtype
    assert got.is_contiguous() and got._base is None
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match="crop must be 0 or 1"):
        interleave_phases(phases, 2)


def test_subpixel_deconv_runs_in_bf16_under_autocast_only():
    """Under CPU bf16 autocast the middle deconvs run by SubpixelDeconv in bf16, as autocast's own
    transposed conv would (bf16 output, float32 gradients for the float32 parameters), equal to
    float32 within bf16's rounding; in float32 (measured no faster there) oneDNN's layer runs."""
    from torch import nn

    from models.nets import middle_deconv

    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(16, 8, 5, stride=2)
    x = torch.randn(4, 16, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = middle_deconv(deconv, x)
    assert y.dtype == torch.bfloat16 and y.shape == (4, 8, 13, 13)
    assert type(y.grad_fn).__name__ == "SubpixelDeconvBackward"
    g = torch.randn(y.shape)
    (y.float() * g).sum().backward()
    assert deconv.weight.grad.dtype == torch.float32
    got_w, got_b = deconv.weight.grad.clone(), deconv.bias.grad.clone()
    deconv.zero_grad()
    want = middle_deconv(deconv, x)
    assert type(want.grad_fn).__name__ != "SubpixelDeconvBackward"
    (want * g).sum().backward()
    assert_same(y.detach().float(), want.detach(), 2e-2, "output")
    assert_same(got_w, deconv.weight.grad, 2e-2, "weight gradient")
    assert_same(got_b, deconv.bias.grad, 2e-2, "bias gradient")
    with disabled("subpixel_deconv"), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = middle_deconv(deconv, x)
    assert plain.dtype == torch.bfloat16 and type(plain.grad_fn).__name__ != "SubpixelDeconvBackward"


def test_bf16_loss_and_gradients_equal_with_subpixel_deconv_off():
    """The whole CW-VAE under CPU bf16 autocast, subpixel_deconv on against off: the same loss and
    gradients within bf16's rounding (two orders of summation, each rounded to bf16, the last layer
    in float32 with it off; measured: the loss within 4.4e-7 relative, gradients within 1.3e-2 of their
    largest entry; against float32 both ways alike, a median 8.3e-3 and at most 7.7e-2)."""
    torch.manual_seed(0)
    model = get_model_class("cwvae")(**SMALL)
    video = torch.rand(3, 8, 1, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_on, grads_on = loss_and_grads(model, video)
        with disabled("subpixel_deconv"):
            loss_off, grads_off = loss_and_grads(model, video)
    assert_same(loss_on, loss_off, 1e-3, "loss")
    for name in grads_on:
        assert_same(grads_on[name], grads_off[name], 5e-2, f"gradient of {name}")
