"""Your own videos as a dataset: `python bench.py data prepare folder --source DIR --name NAME`.

A folder (searched recursively) of
- video files (.mp4, .avi, .mov, .mkv, .webm, .m4v, .gif), decoded with PyAV;
- folders of frames (.png, .jpg, .bmp), one folder per video, frames in name order;
- .npy / .npz arrays of uint8 videos (N, T, H, W) or (N, T, H, W, C), every row a video;
becomes `<data root>/NAME/default/` in the stored format of the built-in sets, with
`"kind": "folder"` in its manifest. Such directories are found by name at lookup time
(`register_dataset_finder`), so `--dataset NAME`, suites and `data list` see them.

Frames are center-cropped to a square and area-resized to `size` x `size`. Channels: 1 or 3,
or auto (1 when every item is natively gray: 2-D/1-channel arrays, gray images; video files
count as color). Split: `train/` and `test/` subfolders if DIR has both, otherwise a
seeded shuffle of the items (sorted by name, numpy default_rng(0)) puts `test_fraction` of
them (at least one) in test. Videos are cut into non-overlapping clips of the split's
length (0 = the shortest video of that split); the remainder is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets.base import DataConfig, data_root, register_dataset_finder
from datasets.prepare import PreparedConfig, PreparedDataset, PrepareError, SourceReader, SplitJob, read_manifest
from datasets.video import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    VideoError,
    image_channels,
    read_frame_folder,
    read_video,
    to_square,
)

ARRAY_SUFFIXES = (".npy", ".npz")
NAME_RULE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as FFmpeg's rgb -> gray


@dataclass(frozen=True)
class FolderConfig(PreparedConfig):
    """An imported folder: zeros are read from the stored manifest."""

    channels: int = field(default=0, metadata={"choices": (0, 1, 3)})  # 0 = as stored
    size: int = field(default=0, metadata={"min": 1, "or": 0})  # 0 = as stored
    test_length: int = field(default=0, metadata={"min": 2, "or": 0})  # 0 = the stored test clip length

    def __post_init__(self):
        super().__post_init__()
        splits = stored_splits_any(self)
        if splits:
            shape = next(iter(splits.values()))["shape"]  # (N, T, H, W, C)
            for key, value in (("channels", shape[4]), ("size", shape[2])):
                if getattr(self, key) == 0:
                    object.__setattr__(self, key, value)
            if self.test_length == 0 and "test" in splits:
                object.__setattr__(self, "test_length", splits["test"]["shape"][1])


def stored_splits_any(cfg: DataConfig) -> dict:
    m = read_manifest(data_root(cfg) / cfg.name / "default")
    return (m or {}).get("splits", {})


@dataclass(frozen=True)
class Item:
    """One video of the folder."""

    kind: str  # video | frames | array | bad
    path: Path
    key: str  # name shown in errors and the manifest
    index: int = -1  # row of an array; array key inside an .npz in `member`
    member: str = ""
    reason: str = ""  # kind == bad: why it cannot be used
    gray: bool = False  # natively one channel


@dataclass
class FolderOptions:
    size: int = 64
    channels: str = "auto"  # auto | 1 | 3
    test_fraction: float = 0.1
    train_length: int = 0
    test_length: int = 0


class FolderDataset(PreparedDataset):
    """A folder of videos imported by the user (one subclass per name, made at lookup time)."""

    config_class = FolderConfig
    description = "imported folder"

    def __init__(self, cfg: DataConfig, options: FolderOptions | None = None):
        super().__init__(cfg)
        self.options = options or FolderOptions()
        self._npz: tuple[str, dict] | None = None

    def prepare_command(self) -> str:
        """The import command with the options it was (or is being) prepared with."""
        source = (read_manifest(self.directory) or {}).get("source") or {}
        path = getattr(self, "source_path", "") or source.get("path", "DIR")
        o = self.options if getattr(self, "source_path", "") else FolderOptions(**options_of(source))
        flags = f" --size {o.size}" + (f" --channels {o.channels}" if o.channels != "auto" else "")
        flags += f" --test-fraction {o.test_fraction:g}" if o.test_fraction != FolderOptions.test_fraction else ""
        flags += f" --train-length {o.train_length}" if o.train_length else ""
        flags += f" --test-length {o.test_length}" if o.test_length else ""
        return f"python bench.py data prepare folder --source {path} --name {self.registry_name}{flags}"

    def source_kind(self) -> str:
        return "folder"

    def open_source(self, source: Path) -> SourceReader:
        if not source.is_dir():
            raise PrepareError(f"--source {source} is not a folder; give the folder that holds your videos")
        return SourceReader(source)

    def preprocessing(self) -> dict:
        o = self.options
        return {
            "size": o.size,
            "channels": o.channels,
            "resize": "center crop to a square, area resize",
            "test_fraction": o.test_fraction,
            "lengths": {"train": o.train_length, "test": o.test_length},
        }

    # -- listing
    def jobs(self, reader: SourceReader, allow_skip: bool) -> list[SplitJob]:
        o = self.options
        root = reader.source
        if (root / "train").is_dir() and (root / "test").is_dir():
            splits = {"train": find_items(root / "train", root), "test": find_items(root / "test", root)}
            for split, items in splits.items():
                if not items:
                    raise PrepareError(f"{root / split} holds no videos, frame folders or arrays")
        else:
            items = find_items(root, root)
            if len(items) < 2:
                raise PrepareError(
                    f"{root} holds {len(items)} video(s); a train/test split needs at least 2: videos "
                    f"({', '.join(VIDEO_SUFFIXES)}), folders of frames ({', '.join(IMAGE_SUFFIXES)}) "
                    f"or .npy/.npz arrays (N, T, H, W[, C]) uint8, or train/ and test/ subfolders"
                )
            splits = split_items(items, o.test_fraction)
        everything = [i for s in splits.values() for i in s if i.kind != "bad"]
        if o.channels == "auto":
            channels = 1 if everything and all(i.gray for i in everything) else 3
        else:
            channels = int(o.channels)
        lengths = {"train": o.train_length, "test": o.test_length}
        return [
            SplitJob(
                split=split,
                items=items,
                names=[i.key for i in items],
                decode=lambda item, c=channels: self.decode(item, c),
                frame_shape=(o.size, o.size, channels),
                clip_length=lengths[split],
                fix_hint=f"fix, convert or remove them in {root}",
            )
            for split, items in splits.items()
        ]

    # -- reading one item
    def decode(self, item: Item, channels: int) -> np.ndarray:
        """(T, size, size, channels) uint8."""
        if item.kind == "bad":
            raise VideoError(item.key, item.reason)
        if item.kind == "video":
            video = read_video(item.path, channels, item.key)
        elif item.kind == "frames":
            video = read_frame_folder(item.path, channels)
        else:
            video = convert_channels(self.array_row(item), channels, item.key)
        try:
            return to_square(video, self.options.size)
        except ValueError as e:
            raise VideoError(item.key, f"{e}; lower --size") from e

    def array_row(self, item: Item) -> np.ndarray:
        if item.path.suffix == ".npy":
            return np.asarray(np.load(item.path, mmap_mode="r")[item.index])
        if self._npz is None or self._npz[0] != str(item.path):  # keep one .npz open: rows are read in order
            with np.load(item.path) as z:
                self._npz = (str(item.path), {k: z[k] for k in z.files})
        return self._npz[1][item.member][item.index]


def options_of(source: dict) -> dict:
    """FolderOptions fields recorded in a manifest's source.preprocessing."""
    pre = source.get("preprocessing") or {}
    lengths = pre.get("lengths") or {}
    return {
        "size": pre.get("size", 64),
        "channels": pre.get("channels", "auto"),
        "test_fraction": pre.get("test_fraction", FolderOptions.test_fraction),
        "train_length": lengths.get("train", 0),
        "test_length": lengths.get("test", 0),
    }


def convert_channels(video: np.ndarray, channels: int, key: str) -> np.ndarray:
    """(T, H, W) or (T, H, W, 1|3) uint8 -> (T, H, W, channels)."""
    if video.ndim == 3:
        video = video[..., None]
    c = video.shape[-1]
    if c == channels:
        return video
    if c == 1:
        return np.repeat(video, 3, axis=-1)
    if c == 3:
        return np.clip(np.rint(video.astype(np.float32) @ LUMA), 0, 255).astype(np.uint8)[..., None]
    raise VideoError(key, f"has {c} channels; arrays need 1 or 3 (drop the alpha channel)")


def find_items(folder: Path, root: Path) -> list[Item]:
    """Every video under `folder`, sorted by name (see the module docstring)."""
    items: list[Item] = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if p.is_dir():
            frames = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if frames:
                try:
                    gray = image_channels(frames[0]) == 1
                    items.append(Item("frames", p, rel + "/", gray=gray))
                except VideoError as e:
                    items.append(Item("bad", p, rel + "/", reason=e.reason))
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            items.append(Item("video", p, rel))
        elif p.suffix.lower() in ARRAY_SUFFIXES:
            items += array_items(p, rel)
    frames_here = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if frames_here:  # images directly in the folder: the folder itself is one video
        items.append(
            Item("frames", folder, folder.relative_to(root).as_posix() + "/", gray=image_channels(frames_here[0]) == 1)
        )
    return items


def array_items(path: Path, rel: str) -> list[Item]:
    """One Item per video row of an .npy, or of every array of an .npz."""
    try:
        if path.suffix.lower() == ".npy":
            arrays = {"": np.load(path, mmap_mode="r")}
        else:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        return [Item("bad", path, rel, reason=f"cannot be read as a numpy array ({e}): corrupt or truncated")]
    items = []
    for member, arr in arrays.items():
        key = f"{rel}:{member}" if member else rel
        if arr.dtype != np.uint8 or arr.ndim not in (4, 5) or (arr.ndim == 5 and arr.shape[-1] not in (1, 3)):
            reason = (
                f"holds {arr.dtype} {list(arr.shape)}; expected uint8 (N, T, H, W) or (N, T, H, W, C) with C 1 or 3 "
                "(convert floats in [0, 1] with (x * 255).round().astype(np.uint8))"
            )
            items.append(Item("bad", path, key, reason=reason))
            continue
        gray = arr.ndim == 4 or arr.shape[-1] == 1
        items += [Item("array", path, f"{key}[{i}]", index=i, member=member, gray=gray) for i in range(len(arr))]
    return items


def split_items(items: list[Item], test_fraction: float) -> dict[str, list[Item]]:
    """Seeded split: `test_fraction` of the items (at least 1, at most all but 1) go to test."""
    if not 0 < test_fraction < 1:
        raise PrepareError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    items = sorted(items, key=lambda i: i.key)
    n_test = min(len(items) - 1, max(1, round(test_fraction * len(items))))
    test = set(np.random.default_rng(0).permutation(len(items))[:n_test].tolist())
    return {
        "train": [it for i, it in enumerate(items) if i not in test],
        "test": [it for i, it in enumerate(items) if i in test],
    }


# ---------------------------------------------------------------- found by name under the data root

_CLASSES: dict[str, type[FolderDataset]] = {}


def folder_class(name: str) -> type[FolderDataset]:
    """The dataset class of an imported folder `name` (one subclass per name, cached)."""
    if name not in _CLASSES:
        _CLASSES[name] = type(f"FolderDataset_{name}", (FolderDataset,), {"registry_name": name})
    return _CLASSES[name]


def _is_folder_dataset(directory: Path) -> bool:
    m = read_manifest(directory / "default")
    return bool(m) and (m.get("source") or {}).get("kind") == "folder"


def find_folder_dataset(name: str) -> type[FolderDataset] | None:
    if not NAME_RULE.match(name):
        return None
    return folder_class(name) if _is_folder_dataset(data_root(DataConfig()) / name) else None


def folder_dataset_names() -> list[str]:
    root = data_root(DataConfig())
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and NAME_RULE.match(d.name) and _is_folder_dataset(d))


register_dataset_finder(find_folder_dataset, folder_dataset_names)


def import_folder(
    source: str | Path,
    name: str,
    options: FolderOptions,
    allow_skip: bool = False,
    force: bool = False,
    progress: bool = True,
    root: str = "",
) -> FolderDataset:
    """Prepare `source` as dataset `name`; returns the ready dataset."""
    from datasets.base import get_dataset_class

    if not NAME_RULE.match(name):
        raise PrepareError(
            f"--name {name!r}: use lower-case letters, digits, '-' and '_' (starting with a letter or digit)"
        )
    try:
        builtin = not issubclass(get_dataset_class(name), FolderDataset)
    except KeyError:
        builtin = False
    if builtin or name == "folder":
        raise PrepareError(f"--name {name!r} is a built-in dataset; choose another name")
    if options.channels not in ("auto", "1", "3"):
        raise PrepareError(f"--channels must be auto, 1 or 3, got {options.channels!r}")
    if options.size < 1:
        raise PrepareError(f"--size must be a positive number of pixels, got {options.size}")
    cls = folder_class(name)
    ds = cls(FolderConfig(name=name, root=root), options)
    ds.prepare(source, allow_skip=allow_skip, force=force, progress=progress)
    return ds
