"""Dataset registry, the stored format and its manifest.

Every dataset, generated or prepared from an official archive, is stored the same way:

    <data root>/<name>/<variant>/
        train.npy, test.npy   uint8 (N, T, H, W, C), memory-mapped when read
        manifest.json         shapes, counts, source, config, sha256 of each split

A split is complete only once the manifest names it with its checksum; the manifest
is written last and atomically, so a killed preparation never looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from rundir.atomic import commit, sha256_file, update_json, write_json

MANIFEST = "manifest.json"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataConfig:
    """Fields every dataset has. Dataset classes extend it with their own. Valid ranges are
    field metadata (benchmarks/config.py RANGE_KEYS); a subclass that changes a default keeps them."""

    name: str = "mmnist"  # registry name of the dataset
    channels: int = field(default=1, metadata={"choices": (1, 3)})  # image channels
    size: int = field(default=64, metadata={"min": 1})  # frame height and width
    # frames per test video used by the protocol (context + horizon)
    test_length: int = field(default=1000, metadata={"min": 2})
    dec_std: float = field(default=1.0, metadata={"above": 0})  # decoder std of the official CW-VAE code
    root: str = ""  # data root; empty = $CWBENCH_DATA or ./data
    val_videos: int = 0  # training videos held out as a validation split (datasets/validation.py); 0 = none
    val_seed: int = 0  # seed of the validation split's choice of videos


class DatasetNotReady(RuntimeError):
    """A dataset that must be prepared first; the message names the command."""


class DatasetCorrupt(RuntimeError):
    """Stored files disagree with their manifest."""


def data_root(cfg: DataConfig) -> Path:
    return Path(cfg.root or os.environ.get("CWBENCH_DATA", "data"))


class Dataset:
    """A named source of videos. Subclasses implement `variant`, and `prepare` or `generate`."""

    config_class: ClassVar[type[DataConfig]] = DataConfig
    registry_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # the dataset's name in the paper's Table 1 ("Moving MNIST"); None: not one of the paper's datasets
    paper_name: ClassVar[str | None] = None
    # its videos are the paper's own (prepared from the archive its official code reads), not a
    # generated stand-in: where two datasets share a paper name, the mean rank counts this one
    paper_data: ClassVar[bool] = False

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg

    # -- where it lives
    def variant(self) -> str:
        """Sub-directory name: changes when the stored content would change."""
        return "default"

    @property
    def directory(self) -> Path:
        return data_root(self.cfg) / self.registry_name / self.variant()

    def prepare_command(self) -> str:
        return f"python bench.py data prepare {self.registry_name} --source DIR"

    # -- state
    def manifest(self) -> dict | None:
        path = self.directory / MANIFEST
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetCorrupt(f"{path} is not valid JSON ({e}); delete {self.directory} and prepare it again") from e

    def manifest_sha256(self) -> str:
        """What a run records of its data: sha256 of the manifest's `splits` (each split's file, shape
        and sha256) as canonical JSON (`splits_sha256`), so that recording a validation split in the
        manifest later changes nothing. '' when there is no manifest."""
        manifest = self.manifest()
        return splits_sha256(manifest) if manifest else ""

    def is_ready(self) -> bool:
        m = self.manifest()
        return m is not None and all(s in m.get("splits", {}) for s in SPLITS)

    def ensure_ready(self, progress: bool = True) -> None:
        """Generated datasets generate themselves; prepared ones must exist already."""
        if not self.is_ready():
            raise DatasetNotReady(
                f"dataset {self.registry_name!r} is not prepared in {self.directory}; run: {self.prepare_command()}"
            )

    def load(self, split: str) -> np.ndarray:
        """(N, T, H, W, C) uint8, memory-mapped. Checks shape against the manifest."""
        self.ensure_ready()
        m = self.manifest()
        info = m["splits"][split]
        path = self.directory / info["file"]
        if not path.exists():
            raise DatasetCorrupt(f"{path} is missing but the manifest lists it; run: {self.prepare_command()}")
        try:
            arr = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as e:
            raise DatasetCorrupt(f"{path} is unreadable ({e}); delete it and run: {self.prepare_command()}") from e
        if list(arr.shape) != info["shape"] or arr.dtype != np.uint8:
            raise DatasetCorrupt(
                f"{path} holds {arr.dtype} {list(arr.shape)} but the manifest says uint8 {info['shape']}; "
                f"delete {self.directory} and run: {self.prepare_command()}"
            )
        return arr

    def verify(self, split: str) -> None:
        """The split's sha256 must equal the manifest's. Hashing runs once per version of the
        file: a stamp beside it remembers (size, mtime) of the last file that matched."""
        info = self.manifest()["splits"][split]
        path = self.directory / info["file"]
        stamp_path = self.directory / f".verified-{split}.json"
        if stamp_path.exists():
            try:
                if json.loads(stamp_path.read_text()) == verified_stamp(path, info["sha256"]):
                    return
            except json.JSONDecodeError:
                pass
        digest = sha256_file(path)
        if digest != info["sha256"]:
            raise DatasetCorrupt(
                f"{path}: sha256 {digest[:12]}... does not match the manifest's {info['sha256'][:12]}... "
                f"(corrupt or truncated); delete {self.directory} and run: {self.prepare_command()}"
            )
        write_json(stamp_path, verified_stamp(path, digest))


def splits_sha256(manifest: dict) -> str:
    """sha256 of json.dumps(manifest["splits"], sort_keys=True, separators=(",", ":")): the same stored
    videos give the same hash on every machine."""
    text = json.dumps(manifest.get("splits", {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def verified_stamp(path: Path, sha256: str) -> dict:
    """What `Dataset.verify` remembers of a file whose sha256 matched: its size and mtime."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def record_split(directory: Path, split: str, path: Path, source: dict) -> None:
    """Add a finished split to the manifest (read-modify-write under the manifest's lock, atomic: another
    process recording a split or a validation split at the same time keeps its entry)."""
    arr = np.load(path, mmap_mode="r")
    digest = sha256_file(path)
    entry = {
        "file": path.name,
        "shape": list(arr.shape),
        "dtype": "uint8",
        "videos": int(arr.shape[0]),
        "frames": int(arr.shape[0] * arr.shape[1]),
        "sha256": digest,
    }
    write_json(directory / f".verified-{split}.json", verified_stamp(path, digest))  # just hashed: no re-hash

    def add(manifest: dict) -> bool:
        manifest.setdefault("splits", {})[split] = entry
        manifest["source"] = source
        return True

    update_json(directory / MANIFEST, add, default={"splits": {}})


def open_split_for_writing(directory: Path, split: str, shape: tuple[int, ...]) -> tuple[np.ndarray, Path, Path]:
    """A uint8 .npy memmap at a temp path; call `finish_split` to fsync and rename it."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{split}.npy"
    tmp = directory / f".{split}.npy.partial"
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    return arr, tmp, final


def finish_split(arr: np.ndarray, tmp: Path, final: Path) -> None:
    arr.flush()
    del arr
    commit(tmp, final)


# ---------------------------------------------------------------- registry

_DATASETS: dict[str, type[Dataset]] = {}
_FINDERS: list[tuple[Callable[[str], type[Dataset] | None], Callable[[], list[str]]]] = []
_BUILTINS_LOADED = False


def register_dataset(name: str) -> Callable[[type[Dataset]], type[Dataset]]:
    def add(cls: type[Dataset]) -> type[Dataset]:
        if name in _DATASETS and _DATASETS[name] is not cls:
            raise ValueError(f"dataset name {name!r} is already registered")
        _DATASETS[name] = cls
        cls.registry_name = name
        return cls

    return add


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        import datasets.builtin  # noqa: F401  (decorators fill the registry)


def register_dataset_finder(find: Callable[[str], type[Dataset] | None], names: Callable[[], list[str]]) -> None:
    """Datasets found at lookup time rather than registered at import (e.g. folders a user
    imported under the data root): `find(name)` returns a class or None, `names()` lists them."""
    _FINDERS.append((find, names))


def dataset_names() -> list[str]:
    _load_builtins()
    return sorted(set(_DATASETS).union(*(names() for _, names in _FINDERS)))


def get_dataset_class(name: str) -> type[Dataset]:
    _load_builtins()
    if name in _DATASETS:
        return _DATASETS[name]
    for find, _ in _FINDERS:
        cls = find(name)
        if cls is not None:
            return cls
    raise KeyError(f"unknown dataset {name!r}; valid: {', '.join(dataset_names())}")


def config_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]
