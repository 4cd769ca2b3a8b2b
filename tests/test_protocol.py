"""The open-loop protocol over every registered model: no context leak, shapes, range, guard."""

import dataclasses

import numpy as np
import pytest
import torch

from benchmarks.config import resolve_config
from benchmarks.evaluate import aggregate
from benchmarks.protocol import ProtocolError, open_loop
from models import VideoModel, build_model, model_names


def smoke_model(name: str):
    cfg = resolve_config(name, "mmnist", "smoke")
    model = cfg.build_model()
    if name == "random_frame":
        model.observe_training_data(np.random.default_rng(0).integers(0, 255, (4, 6, 64, 64, 1), dtype=np.uint8))
    return model.eval()


@pytest.mark.parametrize("name", model_names())
def test_predictions_ignore_every_frame_after_the_context(name):
    model = smoke_model(name)
    torch.manual_seed(0)
    video = torch.rand(2, 40, 1, 64, 64)
    poisoned = video.clone()
    poisoned[:, 36:] = float("nan")
    a = open_loop(model, video, context=36, n_samples=2, seed=5)
    b = open_loop(model, poisoned, context=36, n_samples=2, seed=5)
    assert a.shape == (2, 2, 4, 1, 64, 64)
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("name", model_names())
def test_same_seed_same_samples(name):
    model = smoke_model(name)
    video = torch.rand(1, 38, 1, 64, 64)
    assert torch.equal(open_loop(model, video, 36, 2, seed=3), open_loop(model, video, 36, 2, seed=3))


class Cheater(VideoModel):
    """Returns the wrong shape: the protocol must refuse it."""

    def predict(self, context, horizon, n_samples=1):
        return context[:, None, :1].expand(-1, n_samples, -1, -1, -1, -1)


class OutOfRange(VideoModel):
    def predict(self, context, horizon, n_samples=1):
        return torch.full((context.shape[0], n_samples, horizon, *context.shape[2:]), 2.0)


def test_guard_rejects_bad_shape_and_range():
    video = torch.rand(1, 10, 1, 64, 64)
    with pytest.raises(ProtocolError, match="expected"):
        open_loop(Cheater(), video, context=4)
    with pytest.raises(ProtocolError, match=r"\[0, 1\]"):
        open_loop(OutOfRange(), video, context=4)


def test_model_only_receives_the_context():
    seen = {}

    class Spy(VideoModel):
        def predict(self, context, horizon, n_samples=1):
            seen["shape"] = tuple(context.shape)
            seen["base"] = context.untyped_storage().nbytes()
            return torch.zeros(context.shape[0], n_samples, horizon, *context.shape[2:])

    video = torch.rand(2, 50, 1, 64, 64)
    open_loop(Spy(), video, context=36)
    assert seen["shape"] == (2, 36, 1, 64, 64)
    assert seen["base"] == 2 * 36 * 64 * 64 * 4  # a copy: no storage holding later frames


def test_cwvae_context_must_be_a_multiple():
    model = build_model("cwvae", preset="smoke")  # 3 levels, factor 6 -> multiple of 36
    with pytest.raises(ProtocolError, match="multiple of 36"):
        open_loop(model, torch.rand(1, 40, 1, 64, 64), context=30)


def test_best_of_n_and_mean_over_samples():
    # 2 videos, 2 samples, 3 frames; sample 1 of video 0 is best on average
    s = np.array([[[0.1, 0.2, 0.3], [0.5, 0.5, 0.5]], [[0.9, 0.9, 0.9], [0.1, 0.1, 0.1]]])
    curves, summary = aggregate({"ssim": s, "lpips": s})
    best = summary[(summary.metric == "ssim") & (summary["aggregate"] == "best")].value.item()
    assert best == pytest.approx((0.5 + 0.9) / 2)
    mean = summary[(summary.metric == "ssim") & (summary["aggregate"] == "mean")].value.item()
    assert mean == pytest.approx(s.mean())
    lp_best = summary[(summary.metric == "lpips") & (summary["aggregate"] == "best")].value.item()
    assert lp_best == pytest.approx((0.2 + 0.1) / 2)  # lower is better for LPIPS
    c = curves[(curves.metric == "ssim") & (curves["aggregate"] == "best")]
    assert list(c.t) == [1, 2, 3] and c["mean"].tolist() == pytest.approx([0.7, 0.7, 0.7])


@pytest.mark.parametrize("name", model_names())
def test_chunked_open_loop_equals_open_loop(name):
    from benchmarks.protocol import open_loop_chunks

    model = smoke_model(name)
    video = torch.rand(2, 48, 1, 64, 64)
    whole = open_loop(model, video, 36, 2, seed=9)
    parts = list(open_loop_chunks(model, video[:, :36], 12, 2, seed=9, chunk=5))
    assert [p.shape[2] for p in parts] == [5, 5, 2]
    assert torch.equal(torch.cat(parts, 2), whole)


def test_evaluation_does_not_depend_on_the_chunk_size(tmp_path):
    import pandas as pd

    from benchmarks.evaluate import evaluate

    videos = np.random.default_rng(0).integers(0, 255, (3, 48, 64, 64, 1), dtype=np.uint8)
    tables = []
    for chunk in (5, 100):
        cfg = resolve_config("cwvae", "mmnist", "smoke", sets=[f"eval.chunk={chunk}", "eval.n_videos=3"])
        torch.manual_seed(0)
        evaluate(cfg.build_model(), cfg, videos, tmp_path / str(chunk), torch.device("cpu"), progress=False)
        tables.append(pd.read_csv(tmp_path / str(chunk) / "eval" / "curves.csv"))
    pd.testing.assert_frame_equal(tables[0], tables[1])


class Overshooting(VideoModel):
    """Repeats a sharpened last context frame; its raw (unclipped) frames leave [0, 1], as a decoder's can."""

    def predict(self, context, horizon, n_samples=1, raw=False):
        frame = 3 * context[:, -1:] - 1  # (B, 1, C, H, W) in [-1, 2]
        frames = frame.unsqueeze(1).expand(-1, n_samples, horizon, -1, -1, -1)  # (B, n, horizon, C, H, W)
        return frames if raw else frames.clamp(0, 1)


def test_paper_preset_writes_official_ssim_and_psnr_beside_the_standard_ones(tmp_path):
    """ssim/psnr score the predictions clipped to [0, 1] (data range 1); ssim_official/psnr_official the
    unclipped ones as the official CW-VAE evaluation did: skimage SSIM with its float data range 2.0 and
    PSNR per channel with the data range skimage infers (1.0), each checked against scikit-image."""
    import pandas as pd
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from benchmarks.evaluate import evaluate
    from rundir.run import SUMMARY, read_per_example

    official = ["ssim", "psnr", "ssim_official", "psnr_official"]
    assert set(official) <= set(resolve_config("cwvae", "mmnist", "paper").eval.metrics)
    cfg = resolve_config("copy_last", "mmnist", "smoke", sets=[f"eval.metrics=[{','.join(official)}]"])
    videos = np.random.default_rng(1).integers(0, 255, (2, 48, 64, 64, 3), dtype=np.uint8)  # 3 channels
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, channels=3))
    evaluate(Overshooting(), cfg, videos, tmp_path, torch.device("cpu"), progress=False)
    scores = read_per_example(tmp_path)  # {metric: (2, 1, 12)}
    assert set(pd.read_csv(tmp_path / SUMMARY)["metric"]) == set(official)
    assert scores["ssim"][0, 0, 0] != pytest.approx(scores["ssim_official"][0, 0, 0], abs=1e-3)

    def per_channel(fn, gt, pred, **kw):  # the official code: skimage per channel, then the mean
        return np.mean([fn(gt[..., c], pred[..., c], **kw) for c in range(gt.shape[-1])])

    video = videos.astype(np.float64) / 255  # (2, 48, H, W, C)
    for i in range(2):
        pred = 3 * video[i, 35] - 1  # the unclipped prediction of every frame
        for t in range(12):
            gt = video[i, 36 + t]
            expected = {
                "ssim": structural_similarity(gt, np.clip(pred, 0, 1), data_range=1.0, channel_axis=-1),
                "psnr": peak_signal_noise_ratio(gt, np.clip(pred, 0, 1), data_range=1.0),
                "ssim_official": per_channel(structural_similarity, gt, pred, data_range=2.0),
                "psnr_official": per_channel(peak_signal_noise_ratio, gt, pred),  # skimage infers 1.0 from gt
            }
            for metric, value in expected.items():
                assert scores[metric][i, 0, t] == pytest.approx(value, abs=1e-4), (metric, i, t)
