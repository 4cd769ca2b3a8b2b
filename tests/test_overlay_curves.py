"""tools/overlay_curves.py: the lines it draws are the runs' curves, bad input is one line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent


def overlay_tool():
    spec = importlib.util.spec_from_file_location("overlay_curves", REPO / "tools" / "overlay_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(run: Path, shift: float) -> pd.DataFrame:
    """A run directory with eval/curves.csv of 5 frames (best and mean rows) for ssim and lpips."""
    rows = []
    for metric in ("ssim", "lpips"):
        for aggregate, extra in (("best", 0.0), ("mean", -0.5)):
            for t in (3, 1, 2, 5, 4):  # unsorted on purpose: the tool sorts by t
                m = shift + 0.1 * t + extra + (metric == "lpips")
                rows.append((metric, aggregate, t, m, m - 0.01, m + 0.01, 32))
    frame = pd.DataFrame(rows, columns=["metric", "aggregate", "t", "mean", "ci_low", "ci_high", "n"])
    (run / "eval").mkdir(parents=True)
    frame.to_csv(run / "eval" / "curves.csv", index=False)
    return frame


def test_overlay_draws_each_runs_best_curve(tmp_path):
    tool = overlay_tool()
    write_run(tmp_path / "a", 0.0)
    write_run(tmp_path / "b", 0.25)
    out = tmp_path / "fig.png"
    assert tool.main([str(out), f"before={tmp_path / 'a'}", f"after={tmp_path / 'b'}", "--metrics", "ssim,lpips"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = tool.plot_overlay(tool.read_runs([f"before={tmp_path / 'a'}", f"after={tmp_path / 'b'}"]), ["ssim", "lpips"])
    (ssim, lpips) = fig.axes
    assert [line.get_label() for line in ssim.lines] == ["before", "after"]
    t = np.arange(1, 6)
    np.testing.assert_allclose(ssim.lines[0].get_xdata(), t)
    np.testing.assert_allclose(ssim.lines[0].get_ydata(), 0.1 * t)  # the best rows, sorted by t
    np.testing.assert_allclose(ssim.lines[1].get_ydata(), 0.25 + 0.1 * t)
    np.testing.assert_allclose(lpips.lines[1].get_ydata(), 1.25 + 0.1 * t)
    assert "lower is better" in lpips.get_ylabel() and "higher is better" in ssim.get_ylabel()
    plt.close(fig)


def test_overlay_names_a_bad_argument(tmp_path, capsys):
    tool = overlay_tool()
    write_run(tmp_path / "a", 0.0)
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(tmp_path / "fig.png"), str(tmp_path / "a")])  # no LABEL=
    assert exit_.value.code == 2
    assert "expected LABEL=RUN_DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / "fig.png"), f"a={tmp_path / 'a'}", "--metrics", "fvd"])
    assert "no 'fvd' curve" in capsys.readouterr().err
    assert not (tmp_path / "fig.png").exists()
