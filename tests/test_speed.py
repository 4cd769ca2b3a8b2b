"""`bench.py speed` measures and appends a row per model to speed.csv."""

import pandas as pd
import pytest
import torch

from benchmarks.commands import UsageError
from benchmarks.commands.speed import main
from benchmarks.speed import amp_difference, measure_peak, model_gflop, paper_rate, step_gflop


def test_speed_writes_measured_rows(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    pd.DataFrame([{"model": "earlier", "train_frames_per_s": 1.0}]).to_csv(out / "speed.csv", index=False)
    argv = [
        "--model",
        "cwvae",
        "copy_last",
        "--preset",
        "smoke",
        "--steps",
        "1",
        "--horizons",
        "12",
        "--no-metrics",
        "--profile",
        "4",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "cwvae: one training step, the operators with the most time of their own" in printed
    assert "aten::" in printed  # torch's operators, e.g. aten::convolution_backward
    frame = pd.read_csv(out / "speed.csv")
    assert list(frame.model) == ["earlier", "cwvae", "copy_last"]  # appended
    cw = frame.iloc[1]
    assert cw.train_frames_per_s > 0 and cw["predict_frames_per_s@12"] > 0 and cw.train_peak_rss_mb > 50
    assert cw.params > 1e6 and cw.batch == 2 and cw.seq_len == 12
    assert {"machine", "device", "torch", "git_commit", "time"} <= set(frame.columns)
    assert "train_frames_per_s" in printed and "train_profile" not in frame.columns
    assert cw.train_gflop_per_step > 0 and cw.train_gflop_per_s == pytest.approx(
        cw.train_gflop_per_step / cw.train_step_s
    )


def test_paper_reference_rates_follow_table_d1():
    assert round(paper_rate("CW-VAE")) == 2800  # 300 epochs in 2.5 days, as the paper says
    assert paper_rate("SVG") < paper_rate("NoTmpAbs") < paper_rate("VTA") < paper_rate("CW-VAE") < paper_rate("RSSM")
    assert paper_rate(None) is None and paper_rate("PlaNet") is None  # outside the paper's comparison


def test_against_official_alternates_both_and_writes_the_ratio(tmp_path):
    """The side-by-side plumbing, with a stand-in for the official script (the real one needs
    tensorflow and the official code: docs/performance.md)."""
    official = tmp_path / "cwvae-official"
    official.mkdir()
    (official / "cwvae.py").write_text("")
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "tf-python"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in *"--kind train"*) echo \'{"frames": 5000, "seconds": [10.0, 8.0, 9.0]}\';;\n'
        '*) echo \'{"frames": 120, "seconds": [3.0]}\';; esac\n'
    )
    fake.chmod(0o755)
    out = tmp_path / "out"
    argv = ["--against-official", "--official", str(official), "--official-python", str(fake), "--preset", "smoke"]
    argv += ["--rounds", "2", "--steps", "1", "--horizons", "12", "--reps", "1", "--out", str(out)]
    assert main(argv) == 0
    row = pd.read_csv(out / "speed_official.csv").iloc[-1]
    assert row.official_train_step_s == 9.0  # the median of both rounds' steps
    assert row.official_train_frames_per_s == 5000 / 9.0 and row.official_predict_frames_per_s == 10 * 12 / 3.0
    assert row.ours_train_frames_per_step == 2 * 12  # the smoke preset's batch
    assert row.train_ratio == row.ours_train_frames_per_s / row.official_train_frames_per_s
    assert row.predict_ratio == row.ours_predict_frames_per_s / row.official_predict_frames_per_s
    assert len(row.ours_train_steps_s.split()) == 2 and len(row.load_avg_1min_per_round.split()) == 2
    lines = calls.read_text().splitlines()  # train, predict, train, predict: alternated with ours
    assert [line.split("--kind ")[1].split()[0] for line in lines] == ["train", "predict"] * 2
    assert all(f"--official {official}" in line for line in lines)


def test_speed_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown speed feature"):
        main(["--model", "cwvae", "--off", "turbo"])
    with pytest.raises(UsageError, match="--against-official needs --official and --official-python"):
        main(["--against-official"])
    with pytest.raises(UsageError, match="has no cwvae.py"):
        main(["--against-official", "--official", str(tmp_path), "--official-python", "python"])


def test_step_gflop_counts_the_products_of_forward_and_backward():
    """A conv and a dense layer on inputs that need no gradient: forward, plus the weight gradients
    (2 FLOP a multiply-add; the dense layer's input gradient too, as it follows the conv)."""
    torch.manual_seed(0)
    conv, dense = torch.nn.Conv2d(3, 8, 4, stride=2), torch.nn.Linear(8 * 15 * 15, 10)
    x = torch.rand(5, 3, 32, 32)

    def step():
        dense(conv(x).flatten(1)).sum().backward()

    conv_macs = 5 * 8 * 15 * 15 * (3 * 4 * 4)  # output values x multiply-adds each
    dense_macs = 5 * 10 * 8 * 15 * 15
    conv_flop = 2 * conv_macs * 2  # forward + weight gradient (the input x needs none)
    dense_flop = 2 * dense_macs * 3  # forward + input gradient + weight gradient
    assert step_gflop(step) * 1e9 == pytest.approx(conv_flop + dense_flop, rel=1e-12)


def test_peak_rates_are_positive_rates():
    peak = measure_peak(torch.device("cpu"), repeats=1, size=128, conv_batch=2)
    assert set(peak) == {"peak_matmul_gflop_per_s", "peak_conv3x3_gflop_per_s"}
    assert all(0 < v < 1e6 for v in peak.values())


def test_peak_gives_each_model_its_share_of_the_best_rate(tmp_path, monkeypatch):
    """--peak: a step's GFLOP over the device's best rate is its shortest step, x_peak its share."""
    import benchmarks.commands.speed as command

    def fake(spec):
        if spec["kind"] == "peak":
            return {"peak_matmul_gflop_per_s": 150.0, "peak_conv3x3_gflop_per_s": 200.0, "peak_rss_mb": 1.0}
        if spec["kind"] == "train":
            return {
                "batch": 2,
                "seq_len": 12,
                "train_step_s": 2.0,
                "train_gflop_per_step": 100.0,
                "train_gflop_per_s": 50.0,
                "train_frames_per_s": 12.0,
            }
        return {"predict_frames_per_s": 1.0}

    monkeypatch.setattr(command, "run_isolated", fake)
    argv = [
        "--model",
        "cwvae",
        "--preset",
        "smoke",
        "--horizons",
        "12",
        "--no-metrics",
        "--peak",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    row = pd.read_csv(tmp_path / "speed.csv").iloc[0]
    assert row.train_shortest_step_s == 0.5 and row.x_peak == 0.25  # against the better of the two rates
    assert row.peak_matmul_gflop_per_s == 150.0


def test_model_gflop_counts_the_plain_layers_per_video():
    """The step's GFLOP in speed.csv is the model's own arithmetic: one video's count with the speed
    features off, times the batch, equal to the plain step's count at the full batch, whatever the
    features do (decoder_gemm computes fewer products, subpixel_deconv's odd kernel more)."""
    from models import get_model_class
    from models.fastpaths import disabled

    torch.manual_seed(0)
    model = get_model_class("cwvae")(levels=2, factor=2, stoch=4, deter=8, hidden=8, enc_dense_hidden=16, cnn_depth=4)
    video = torch.rand(3, 8, 1, 64, 64)  # 24 frames: decoder_gemm's weight product (once a call) pays

    def step(v, amp=False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss, _ = model.loss(v)
        loss.backward()

    counted = model_gflop(lambda: step(video[:1]), 3)  # one video, times 3
    with disabled():
        plain = step_gflop(lambda: step(video))
    assert counted == pytest.approx(plain, rel=1e-12)
    assert step_gflop(lambda: step(video)) < plain  # decoder_gemm: fewer products
    with disabled("decoder_gemm"):
        assert step_gflop(lambda: step(video, amp=True)) > plain  # subpixel_deconv in bf16: the zero taps
    assert model_gflop(lambda: step(video[:1], amp=True), 3) == pytest.approx(plain, rel=1e-12)


def test_step_gflop_counts_the_native_transposed_conv_as_onednn_s():
    """native_last_deconv's forward (torch's slow_conv_transpose2d, which flop_registry lacks) counts
    what the same layer counts on oneDNN's path: 2 x input pixels x taps x output channels."""
    from torch import nn

    from models.fastpaths import disabled
    from models.nets import last_deconv

    deconv = nn.ConvTranspose2d(8, 1, 6, stride=2)
    x = torch.rand(3, 8, 30, 30)
    native = step_gflop(lambda: last_deconv(deconv, x))
    with disabled("native_last_deconv"):
        onednn = step_gflop(lambda: last_deconv(deconv, x))
    assert native == onednn == pytest.approx(2 * 3 * 8 * 30 * 30 * 1 * 6 * 6 / 1e9, rel=1e-12)


def test_amp_check_computes_both_losses_in_training_mode():
    """--amp-check's fp32 and bf16 losses are both training-mode losses (before: the bf16 one ran in the
    eval mode the fp32 predictions had left, which changes VTA's and SVG's losses by itself), and the
    predictions are made in eval mode."""
    from benchmarks.config import resolve_config
    from benchmarks.trainer import build_seeded

    cfg = resolve_config("vta", "mmnist", "smoke", sets=[])
    model = build_seeded(cfg)
    modes = []
    loss = model.loss
    model.loss = lambda video: (modes.append(model.training), loss(video))[1]
    out = amp_difference(model, cfg, torch.device("cpu"), 2)
    assert modes == [True, True] and model.training
    # measured 9.5e-6; the old order gave 0.04, the smoke VTA's own train-against-eval difference
    assert out["loss_fp32"] != out["loss_bf16"] and out["amp_loss_rel_diff"] < 1e-3
