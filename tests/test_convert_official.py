"""tools/convert_official_cwvae.py: an official TF checkpoint -> harness weights (safetensors + sidecar).

The checkpoint fixture (tests/data/rssm_official_ckpt) was written by the official code's own
Checkpoint class after three training steps of the one-level model (tests/data/README.md);
rssm_official.npz holds the same trained weights, so the converted tensors are checked
against the mapping of those. Reading a TF checkpoint needs tensorflow, which cwbench does not
depend on: that test is skipped where it is missing. The mapping itself is tested without
TF in tests/test_cwvae_official.py.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.model_weights import read_weights
from models.official_cwvae import to_state_dict

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def converter():
    spec = importlib.util.spec_from_file_location(
        "convert_official_cwvae", REPO / "tools" / "convert_official_cwvae.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converts_the_official_checkpoint_fixture(tmp_path, capsys):
    pytest.importorskip("tensorflow", reason="reading TF checkpoints needs tensorflow (not a cwbench dependency)")
    out = tmp_path / "rssm.safetensors"
    assert converter().main([str(DATA / "rssm_official_ckpt"), "--out", str(out), "--dataset", "minerl"]) == 0
    assert "wrote" in capsys.readouterr().out
    weights = read_weights(out)  # checks the sidecar's sha256 against the file
    z = np.load(DATA / "rssm_official.npz")
    trained = to_state_dict({k[10:]: z[k] for k in z.files if k.startswith("train/var/")})
    assert set(weights.tensors) == set(trained)
    assert all(torch.equal(weights.tensors[k], trained[k]) for k in trained)
    info = json.loads(out.with_suffix(".json").read_text())
    assert (info["model"], info["dataset"], info["step"]) == ("rssm", "minerl", 3)  # three official Adam steps
    assert info["params"] == sum(t.numel() for t in trained.values())
    assert info["model_config"]["levels"] == 1 and info["model_config"]["channels"] == 3
    assert info["model_config"]["dec_std"] == 0.4 and info["model_config"]["cnn_depth"] == 1


def test_without_tensorflow_one_line_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` raises ImportError
    out = tmp_path / "x.safetensors"
    assert converter().main([str(DATA / "rssm_official_ckpt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install tensorflow-cpu" in err and "Traceback" not in err
    assert not out.exists()


def test_a_directory_without_a_checkpoint_is_named(tmp_path, capsys):
    pytest.importorskip("tensorflow", reason="reading TF checkpoints needs tensorflow (not a cwbench dependency)")
    assert converter().main([str(tmp_path), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert f"{tmp_path} holds no TF checkpoint" in capsys.readouterr().err
