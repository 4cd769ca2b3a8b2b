"""`bench.py speed` measures and appends a row per model to speed.csv."""

import pandas as pd

from benchmarks.commands.speed import main
from benchmarks.speed import paper_rate


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
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    frame = pd.read_csv(out / "speed.csv")
    assert list(frame.model) == ["earlier", "cwvae", "copy_last"]  # appended
    cw = frame.iloc[1]
    assert cw.train_frames_per_s > 0 and cw["predict_frames_per_s@12"] > 0 and cw.train_peak_rss_mb > 50
    assert cw.params > 1e6 and cw.batch == 2 and cw.seq_len == 12
    assert {"machine", "device", "torch", "git_commit", "time"} <= set(frame.columns)
    assert "train_frames_per_s" in capsys.readouterr().out


def test_paper_reference_rates_follow_table_d1():
    assert round(paper_rate("CW-VAE")) == 2800  # 300 epochs in 2.5 days, as the paper says
    assert paper_rate("SVG") < paper_rate("NoTmpAbs") < paper_rate("VTA") < paper_rate("CW-VAE") < paper_rate("RSSM")
    assert paper_rate(None) is None and paper_rate("PlaNet") is None  # outside the paper's comparison
