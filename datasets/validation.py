"""A validation split carved from the training videos (what `bench.py tune` scores trials on).

`data.val_videos` training videos, chosen by `data.val_seed`, are held out: a run with
them trains on the other training videos only and may evaluate on them
(`eval.split: val`). They are a subset of the stored training split, so they never
overlap the test split (every dataset keeps train and test disjoint: Moving MNIST by
digits and seeds, the prepared sets by their official splits). The choice is
deterministic (the same count and seed give the same videos on every machine) and is
recorded in the dataset's manifest under `validation`, beside the splits it came from:

    "validation": {"100-s0": {"of": "train", "videos": 100, "seed": 0, "train_videos": 2000,
                              "train_sha256": "...", "indices": [3, 17, ...]}}

Nothing is copied: both parts are views of the memory-mapped training split.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np

from datasets.base import MANIFEST, Dataset
from rundir.atomic import update_json


class ValidationSplitError(ValueError):
    """A validation split that cannot be carved (too many videos asked for, ...)."""


def validation_indices(n_train: int, n_val: int, seed: int) -> np.ndarray:
    """Sorted indices (n_val,) of the training videos held out for validation."""
    if not 0 < n_val < n_train:
        raise ValidationSplitError(
            f"data.val_videos={n_val}: a validation split needs at least 1 video and must leave at least one "
            f"of the {n_train} training videos to train on; give 1 <= data.val_videos < {n_train}"
        )
    rng = np.random.default_rng([seed, 0x7A1])  # its own stream: no other draw of the harness uses this key
    return np.sort(rng.choice(n_train, size=n_val, replace=False))


class VideoSubset:
    """Some videos of an (N, T, H, W, C) array, read lazily: `subset[i, a:b]` reads video indices[i].

    Supports what the trainer, the models and the evaluation do with a split: `.shape`, `len`,
    `subset[i]`, `subset[i, ...]` and `subset[a:b]` (a copy of those videos)."""

    def __init__(self, videos, indices: np.ndarray):
        self.videos, self.indices = videos, np.asarray(indices, dtype=np.int64)
        self.shape = (len(self.indices), *videos.shape[1:])
        self.dtype = videos.dtype

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, (int, np.integer)):
            return self.videos[(int(self.indices[first]), *rest)]
        picked = self.indices[first]  # a slice or an index array of this subset
        return np.stack([self.videos[(int(i), *rest)] for i in picked]) if len(picked) else self.videos[:0]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


def split_key(n_val: int, seed: int) -> str:
    return f"{n_val}-s{seed}"


def carve_validation(dataset: Dataset, train_videos, n_val: int, seed: int) -> tuple[VideoSubset, VideoSubset]:
    """(training part, validation part) of the training split; records the choice in the manifest."""
    n_train = len(train_videos)
    val = validation_indices(n_train, n_val, seed)
    rest = np.setdiff1d(np.arange(n_train), val)
    record_validation(dataset, n_val, seed, n_train, val)
    return VideoSubset(train_videos, rest), VideoSubset(train_videos, val)


def record_validation(dataset: Dataset, n_val: int, seed: int, n_train: int, indices: np.ndarray) -> None:
    """Add the split to manifest.json (nothing written when it is there already). Several processes may
    carve at once (tune workers, a tune and a run): the read-modify-write holds the manifest's lock
    (rundir.atomic.update_json), so each one's split survives. A read-only dataset (shared on a cluster)
    keeps its manifest: the split is deterministic."""
    path = Path(dataset.directory) / MANIFEST
    key = split_key(n_val, seed)

    def entry_of(manifest: dict) -> dict:
        return {
            "of": "train",
            "videos": int(n_val),
            "seed": int(seed),
            "train_videos": int(n_train),
            "train_sha256": manifest["splits"]["train"]["sha256"],
            "indices": [int(i) for i in indices],
        }

    def add(manifest: dict) -> bool:
        entry = entry_of(manifest)
        if manifest.get("validation", {}).get(key) == entry:
            return False
        manifest.setdefault("validation", {})[key] = entry
        return True

    manifest = json.loads(path.read_text())
    if manifest.get("validation", {}).get(key) == entry_of(manifest):
        return  # recorded already: no lock, no write (a read-only dataset ends here)
    try:
        update_json(path, add)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        print(f"note: {path} is read-only; the validation split {key} is not recorded there")


def recorded_validation(dataset: Dataset) -> dict:
    """{key: entry} of the validation splits recorded in the dataset's manifest."""
    return (dataset.manifest() or {}).get("validation", {})
