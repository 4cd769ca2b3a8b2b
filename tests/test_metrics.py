"""SSIM and PSNR equal scikit-image to 1e-4, on random and structured images."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmarks.metrics import psnr, psnr_official, ssim, ssim_official


def structured_pairs(channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients, checkerboards, a disc, and their shifted/noised/blurred versions."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    checker = ((torch.arange(64)[:, None] // 8 + torch.arange(64)[None] // 8) % 2).float()
    disc = (((yy - 0.5) ** 2 + (xx - 0.4) ** 2) < 0.08).float()
    bases = torch.stack([yy, xx * yy, checker, disc])  # (4, 64, 64)
    x = bases[:, None].repeat(1, channels, 1, 1)
    y = torch.stack(
        [
            torch.roll(x[0], 3, dims=-2),
            (x[1] + 0.05 * torch.randn(x[1].shape, generator=gen)).clamp(0, 1),
            torch.nn.functional.avg_pool2d(x[2][None], 3, 1, 1)[0],
            1 - x[3],
        ]
    )
    return x, y


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_ssim_psnr_equal_skimage(channels, kind):
    if kind == "random":
        gen = torch.Generator().manual_seed(channels)
        x = torch.rand(5, channels, 64, 64, generator=gen)
        y = (x + 0.2 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    else:
        x, y = structured_pairs(channels)
    ours_ssim, ours_psnr = ssim(y, x), psnr(y, x)
    for i in range(len(x)):
        a, b = x[i].double().numpy(), y[i].double().numpy()
        ref_ssim = structural_similarity(a, b, data_range=1.0, channel_axis=0)
        ref_psnr = peak_signal_noise_ratio(a, b, data_range=1.0)
        assert ours_ssim[i].item() == pytest.approx(ref_ssim, abs=1e-4)
        assert ours_psnr[i].item() == pytest.approx(ref_psnr, abs=1e-4)


def test_official_mode_matches_the_official_evaluation():
    """Official CW-VAE eval: skimage per channel with float defaults (SSIM range 2.0, PSNR 1.0)."""
    gen = torch.Generator().manual_seed(3)
    gt = torch.rand(3, 3, 64, 64, generator=gen)
    pred = gt + 0.3 * torch.randn(gt.shape, generator=gen)  # unclipped, as the official eval
    for i in range(3):
        ref_ssim = np.mean(
            [
                structural_similarity(gt[i, c].double().numpy(), pred[i, c].double().numpy(), data_range=2.0)
                for c in range(3)
            ]
        )
        ref_psnr = np.mean(
            [peak_signal_noise_ratio(gt[i, c].double().numpy(), pred[i, c].double().numpy()) for c in range(3)]
        )  # skimage infers data_range 1.0 from gt in [0, 1]
        assert ssim_official(pred[i : i + 1], gt[i : i + 1]).item() == pytest.approx(ref_ssim, abs=1e-4)
        assert psnr_official(pred[i : i + 1], gt[i : i + 1]).item() == pytest.approx(ref_psnr, abs=1e-4)


def test_closed_forms():
    x = torch.rand(2, 1, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert torch.isinf(psnr(x, x)).all()
    # a constant offset of 0.1 has MSE 0.01 -> 20 dB
    y = torch.full((1, 1, 16, 16), 0.5)
    assert psnr(y + 0.1, y).item() == pytest.approx(20.0, abs=1e-4)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="same shape"):
        ssim(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 15))
