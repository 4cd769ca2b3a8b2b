"""A model from a file outside the packages runs like a registered one; entry points register models."""

from __future__ import annotations

import hashlib
import shutil
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

import models.base
from benchmarks.cli import main
from benchmarks.config import ConfigError, resolve_config
from models.plugins import load_entry_points, load_model_file

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_model.py"
SPEC = f"{EXAMPLE}:TinyConvGRU"


def test_example_model_runs_a_smoke_benchmark(out_dir, capsys):
    argv = ["--model", SPEC, "--preset", "smoke", "--out", str(out_dir), "--no-progress"]
    assert main(argv) == 0
    (run,) = (out_dir / "runs" / "mmnist" / "TinyConvGRU").iterdir()  # named by the class name
    assert run.name.startswith("smoke-s0-")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model_file_sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    # examples/my_model.yaml sits next to the file: its smoke preset sets hidden 8, its train section lr 1e-3
    assert cfg["model"] == {"hidden": 8, "noise": 4, "channels": 1}
    assert cfg["train"]["lr"] == pytest.approx(1e-3) and cfg["train"]["steps"] == 4
    lines = (run / "train.jsonl").read_text().splitlines()
    assert len(lines) == 4  # the shared trainer logged every one of the smoke preset's 4 steps
    summary = pd.read_csv(run / "eval" / "summary.csv").set_index(["metric", "aggregate"])["value"]
    board = pd.read_csv(out_dir / "leaderboard.csv")
    row = board[board.model == "TinyConvGRU"].iloc[0]
    assert row["preset"] == "smoke" and row["ssim"] == pytest.approx(summary["ssim", "best"])
    assert (run / "eval" / "per_example.parquet").exists()


def test_hyperparameters_from_set_and_errors_that_list_the_valid_keys():
    cfg = resolve_config(SPEC, preset="smoke", sets=["model.hidden=16", "model.noise=0"])
    assert (cfg.model.hidden, cfg.model.noise) == (16, 0)
    assert cfg.build_model().cfg.hidden == 16
    with pytest.raises(ConfigError, match="did you mean model.hidden.*valid keys in model: hidden, noise, channels"):
        resolve_config(SPEC, preset="smoke", sets=["model.hiden=16"])
    with pytest.raises(ConfigError, match="model.noise: expected int, got 'many'"):
        resolve_config(SPEC, preset="smoke", sets=["model.noise=many"])


def test_a_changed_file_is_a_new_run(tmp_path):
    path = tmp_path / "mine.py"
    shutil.copy(EXAMPLE, path)
    before = resolve_config(f"{path}:TinyConvGRU", preset="smoke")
    assert before.model.hidden == 32  # no mine.yaml next to it: the dataclass defaults
    path.write_text(path.read_text() + "\n# an edit\n")
    after = resolve_config(f"{path}:TinyConvGRU", preset="smoke")
    assert after.model_file_sha256 != before.model_file_sha256 and after.hash() != before.hash()
    (tmp_path / "mine.yaml").write_text("model: {hidden: 12}\n")  # a YAML next to the file applies
    assert resolve_config(f"{path}:TinyConvGRU", preset="smoke").model.hidden == 12


def test_model_file_errors_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="not found"):
        load_model_file(f"{tmp_path}/missing.py:X")
    path = tmp_path / "two.py"
    path.write_text("from models import VideoModel\n\nclass A(VideoModel):\n    pass\n")
    with pytest.raises(KeyError, match=r"defines no class 'B'; VideoModel classes there: \['A'\]"):
        load_model_file(f"{path}:B")
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n")
    for _ in range(2):  # the same error again, not a half-imported module
        with pytest.raises(SyntaxError):
            load_model_file(f"{broken}:X")


def test_installed_packages_register_models_through_entry_points(tmp_path, monkeypatch):
    """A fake installed distribution whose `cwbench.models` entry point registers a model on import."""
    (tmp_path / "plugin_pkg_h11.py").write_text(
        textwrap.dedent(
            """
        from baselines.naive import CopyLast
        from models import register_model

        @register_model("plugin_copy_h11")
        class PluginCopy(CopyLast):
            pass
        """
        )
    )
    dist = tmp_path / "plugin_pkg_h11-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-pkg-h11\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cwbench.models]\nplugin_copy_h11 = plugin_pkg_h11\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(models.base, "_MODELS", dict(models.base._MODELS))  # leave the real registry alone
    load_entry_points()
    assert "plugin_copy_h11" in models.base.model_names()
    cfg = resolve_config("plugin_copy_h11", preset="smoke")
    assert type(cfg.build_model()).__name__ == "PluginCopy"
    sys.modules.pop("plugin_pkg_h11", None)
