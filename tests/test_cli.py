"""The command line end to end at the smoke preset."""

import pandas as pd
import pytest

from benchmarks.cli import main


def test_smoke_run_writes_every_file_and_resumes(out_dir, capsys):
    assert main(["--model", "cwvae", "--preset", "smoke", "--out", str(out_dir), "--no-progress"]) == 0
    runs = list((out_dir / "runs" / "mmnist" / "cwvae").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert run.name.startswith("smoke-s0-")
    for rel in [
        "config.yaml",
        "status.json",
        "train.jsonl",
        "checkpoints/last.pt",
        "eval/curves.csv",
        "eval/summary.csv",
        "eval/per_example.parquet",
        "samples/samples.npz",
    ]:
        assert (run / rel).exists(), rel
    curves = pd.read_csv(run / "eval" / "curves.csv")
    assert list(curves.columns[:7]) == ["metric", "aggregate", "t", "mean", "ci_low", "ci_high", "n"]
    assert set(curves.metric) == {"ssim", "psnr"} and curves.t.max() == 12  # 48 - 36 predicted frames
    summary = pd.read_csv(run / "eval" / "summary.csv")
    best = summary[summary["aggregate"] == "best"].set_index("metric")["value"]
    ssim_curve = curves[(curves.metric == "ssim") & (curves["aggregate"] == "best")]["mean"]
    assert best["ssim"] == pytest.approx(ssim_curve.mean(), rel=1e-6)  # Table 1: mean over predicted frames
    board = pd.read_csv(out_dir / "leaderboard.csv")
    assert board.loc[0, "model"] == "cwvae" and board.loc[0, "ssim"] == pytest.approx(best["ssim"])
    assert (out_dir / "leaderboard.md").read_text().count("| cwvae |") == 1
    # a second identical command finds the finished run and leaves it as it is
    mtime = (run / "eval" / "summary.csv").stat().st_mtime
    assert main(["--model", "cwvae", "--preset", "smoke", "--out", str(out_dir), "--no-progress"]) == 0
    assert (run / "eval" / "summary.csv").stat().st_mtime == mtime


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "nope"], "unknown model 'nope'; valid:"),
        (["--model", "cwvae", "--dataset", "nope"], "unknown dataset 'nope'; valid:"),
        (["--model", "cwvae", "--preset", "nope"], "unknown preset 'nope'; valid:"),
        (["--model", "cwvae", "--set", "train.lrr=1"], "did you mean train.lr"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, out_dir, capsys):
    assert main([*argv, "--out", str(out_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out_dir.exists()  # nothing written


def test_list(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "cwvae" in out and "notmpabs" in out and "copy_last" in out and "mmnist" in out
