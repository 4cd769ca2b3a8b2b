"""Preparing stored splits from files a researcher has downloaded: archives, folders, arrays.

Shared by the official-archive datasets (KTH, MineRL, Mazes, official Moving MNIST) and
the folder import. The stored result is the format of datasets/base.py.

Atomic and resumable:
- A split is written to `.<split>.npy.partial`, renamed to `<split>.npy` when complete,
  and only then named in manifest.json (written atomically). A killed preparation
  never leaves a split that looks complete: `is_ready()` stays False.
- Progress is kept beside the partial file: fixed-length videos go straight into the
  partial array with a `.<split>.progress.json` record (written after the array is
  flushed); variable-length videos are staged one file per video in `.staging/`.
  Running the same command again continues where the kill happened; a different
  source (another plan digest) starts over.
- Every file that cannot be used is named with the reason; preparation stops with all
  of them listed unless `allow_skip` is given, which skips them with a warning and
  records them in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from datasets.base import (
    MANIFEST,
    SPLITS,
    DataConfig,
    Dataset,
    DatasetCorrupt,
    data_root,
    finish_split,
    open_split_for_writing,
    record_split,
)
from datasets.video import VideoError
from rundir.atomic import np_save, write_json

CHECKPOINT_SECONDS = 2.0  # how often direct writing records its progress


class PrepareError(RuntimeError):
    """A source that cannot be prepared as asked; the message says what is wrong and what to do."""


# ---------------------------------------------------------------- sources: folders and zip archives


@dataclass(frozen=True)
class Entry:
    """One file of a source: a plain file under a folder, or a member of a zip archive."""

    path: str  # posix path relative to the folder, or the member name inside the zip
    size: int  # bytes (uncompressed for zip members)
    archive: str = ""  # the zip file holding it; "" for a plain file

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def parent(self) -> str:
        return PurePosixPath(self.path).parent.name

    @property
    def key(self) -> str:
        """How errors and the manifest name it: `archive.zip:member` or the relative path."""
        return f"{Path(self.archive).name}:{self.path}" if self.archive else self.path


class SourceReader:
    """Lists and reads the files of `--source`: a zip, a folder holding the named zips, or an extracted folder."""

    def __init__(self, source: Path, archive_names: tuple[str, ...] = ()):
        self.source = Path(source).expanduser()
        self._zips: dict[str, zipfile.ZipFile] = {}
        if not self.source.exists():
            raise PrepareError(f"--source {self.source} does not exist; give the downloaded archive or its folder")
        if self.source.is_file():
            zips = [self.source]
        else:
            zips = [self.source / n for n in archive_names if (self.source / n).is_file()]
        self.entries: list[Entry] = []
        if zips:
            for z in zips:
                self.entries += self._zip_entries(z)
        else:
            for p in sorted(self.source.rglob("*")):
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.source).parts):
                    self.entries.append(Entry(p.relative_to(self.source).as_posix(), p.stat().st_size))
        self.zips = [str(z) for z in zips]

    def _zip_entries(self, path: Path) -> list[Entry]:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise PrepareError(
                f"{path} is not a readable zip archive ({e}): the download is incomplete or corrupt; download it again"
            ) from e
        self._zips[str(path)] = zf
        return [Entry(i.filename, i.file_size, str(path)) for i in zf.infolist() if not i.is_dir()]

    def read(self, entry: Entry) -> bytes:
        """The file's bytes; a damaged zip member raises VideoError naming it."""
        try:
            if entry.archive:
                return self._zips[entry.archive].read(entry.path)
            return (self.source / entry.path).read_bytes()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise VideoError(entry.key, f"cannot be read from the archive ({e}): it is corrupt or truncated") from e

    def path_of(self, entry: Entry) -> Path:
        return Path(entry.archive) if entry.archive else self.source / entry.path

    def close(self) -> None:
        for zf in self._zips.values():
            zf.close()


def plan_digest(**parts) -> str:
    """Identity of a preparation: the source's files (names, sizes) and every setting that shapes the result."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------- writing one split


@dataclass
class SplitJob:
    """How to build one split from a list of items (entries, array rows, frame folders)."""

    split: str
    items: list  # anything `decode` accepts
    names: list[str]  # one display name per item (errors, manifest)
    decode: Callable[[object], np.ndarray]  # item -> (T, H, W, C) uint8, raises VideoError
    frame_shape: tuple[int, int, int]  # (H, W, C) every video must have after decoding
    exact_frames: int = 0  # > 0: each video has exactly this many frames and is one stored video
    clip_length: int = 0  # exact_frames == 0: cut videos into non-overlapping clips of this many frames
    # (0 = the shortest video's length); the remainder of each video is dropped
    fix_hint: str = "replace them (download the archive again)"  # what to do about files that cannot be used


def _bad_line(err: VideoError) -> dict:
    return {"file": err.name, "reason": err.reason}


def _fail_on_bad(job: SplitJob, bad: list[dict], source: str) -> None:
    lines = "\n".join(f"  {b['file']}: {b['reason']}" for b in bad)
    raise PrepareError(
        f"{len(bad)} {job.split} file(s) of {source} cannot be used:\n{lines}\n"
        f"{job.fix_hint} or pass --allow-skip to leave them out"
    )


def _progress_bar(progress: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress
    )


def _warn(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[yellow]warning:[/yellow] {message}", highlight=False)


def write_split(directory: Path, job: SplitJob, plan: str, allow_skip: bool, source: str, progress: bool) -> list[dict]:
    """Build `<directory>/<split>.npy` and return the skipped files ({file, reason})."""
    if job.exact_frames > 0:
        return _write_direct(directory, job, plan, allow_skip, source, progress)
    return _write_staged(directory, job, plan, allow_skip, source, progress)


def _check(video: np.ndarray, name: str, job: SplitJob) -> np.ndarray:
    if video.ndim != 4 or video.dtype != np.uint8:
        raise VideoError(name, f"decodes to {video.dtype} {list(video.shape)}, expected uint8 (T, H, W, C)")
    if tuple(video.shape[1:]) != tuple(job.frame_shape):
        H, W, C = job.frame_shape
        h, w, c = video.shape[1:]
        raise VideoError(name, f"has {w}x{h}x{c} frames (width x height x channels), expected {W}x{H}x{C}")
    if job.exact_frames and len(video) != job.exact_frames:
        hint = "truncated?" if len(video) < job.exact_frames else "not from the official archive?"
        raise VideoError(name, f"has {len(video)} frames, expected {job.exact_frames} ({hint})")
    return video


def _check_disk(directory: Path, nbytes: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if nbytes > free:
        raise PrepareError(
            f"the split needs {nbytes / 1e9:.1f} GB but {directory} has {free / 1e9:.1f} GB free; "
            "free space or point CWBENCH_DATA to a larger disk"
        )


def _write_direct(directory, job: SplitJob, plan, allow_skip, source, progress) -> list[dict]:
    """Fixed-length videos straight into the partial array, resumable through a progress record."""
    n = len(job.items)
    shape = (n, job.exact_frames, *job.frame_shape)
    record_path = directory / f".{job.split}.progress.json"
    tmp = directory / f".{job.split}.npy.partial"
    state = {"plan": plan, "next": 0, "rows": 0, "bad": []}
    if record_path.exists() and tmp.exists():
        old = json.loads(record_path.read_text())
        if old.get("plan") == plan:
            state = old
    if state["next"] > 0:
        arr = np.lib.format.open_memmap(tmp, mode="r+")
        if tuple(arr.shape) != shape:  # a different plan with the same digest cannot happen; be safe
            del arr
            state = {"plan": plan, "next": 0, "rows": 0, "bad": []}
    if state["next"] == 0:
        _check_disk(directory, int(np.prod(shape)))
        arr, tmp, _ = open_split_for_writing(directory, job.split, shape)
    final = directory / f"{job.split}.npy"
    last = time.monotonic()
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"{job.split}: decoding {n} videos", total=n, completed=state["next"])
        for i in range(state["next"], n):
            try:
                arr[state["rows"]] = _check(job.decode(job.items[i]), job.names[i], job)
                state["rows"] += 1
            except VideoError as e:
                state["bad"].append(_bad_line(e))
            state["next"] = i + 1
            bar.advance(task)
            if time.monotonic() - last > CHECKPOINT_SECONDS:
                arr.flush()  # the rows on disk first, then the record that counts them
                write_json(record_path, state)
                last = time.monotonic()
    arr.flush()
    write_json(record_path, state)
    if state["bad"] and not allow_skip:
        del arr
        _fail_on_bad(job, state["bad"], source)
    rows = state["rows"]
    if rows == 0:
        raise PrepareError(f"no usable {job.split} video in {source}")
    if rows < n:  # skipped files left empty rows at the end: copy the filled rows to a smaller array
        small, small_tmp, _ = open_split_for_writing(directory, f"{job.split}.compact", (rows, *shape[1:]))
        for start in range(0, rows, 64):
            small[start : start + 64] = arr[start : min(rows, start + 64)]
        del arr
        finish_split(small, small_tmp, final)
        tmp.unlink(missing_ok=True)
    else:
        finish_split(arr, tmp, final)
    record_path.unlink(missing_ok=True)
    return state["bad"]


def clips_of(video: np.ndarray, length: int) -> np.ndarray:
    """Non-overlapping clips (n, length, H, W, C) from the start of a (T, H, W, C) video; the remainder dropped."""
    n = len(video) // length
    return video[: n * length].reshape(n, length, *video.shape[1:])


def _write_staged(directory, job: SplitJob, plan, allow_skip, source, progress) -> list[dict]:
    """Variable-length videos: stage each decoded video, then cut clips into the split array."""
    stage = directory / ".staging" / job.split
    plan_file = stage / "plan.json"
    if plan_file.exists() and json.loads(plan_file.read_text()).get("plan") != plan:
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    write_json(plan_file, {"plan": plan})
    n = len(job.items)
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"{job.split}: decoding {n} videos", total=n)
        for i in range(n):
            done, bad = stage / f"{i:06d}.npy", stage / f"{i:06d}.bad.json"
            if not (done.exists() or bad.exists()):
                try:
                    np_save(done, _check(job.decode(job.items[i]), job.names[i], job))
                except VideoError as e:
                    write_json(bad, _bad_line(e))
            bar.advance(task)
    bad = [
        json.loads((stage / f"{i:06d}.bad.json").read_text())
        for i in range(n)
        if (stage / f"{i:06d}.bad.json").exists()
    ]
    good = [i for i in range(n) if (stage / f"{i:06d}.npy").exists()]
    lengths = {i: np.load(stage / f"{i:06d}.npy", mmap_mode="r").shape[0] for i in good}
    if not good:
        if bad and not allow_skip:
            _fail_on_bad(job, bad, source)
        raise PrepareError(f"no usable {job.split} video in {source}")
    length = job.clip_length or min(lengths.values())
    for i in good:
        if lengths[i] < length:
            bad.append({"file": job.names[i], "reason": f"has {lengths[i]} frames, fewer than one {length}-frame clip"})
    if bad and not allow_skip:
        _fail_on_bad(job, bad, source)
    keep = [i for i in good if lengths[i] >= length]
    rows = sum(lengths[i] // length for i in keep)
    _check_disk(directory, rows * length * int(np.prod(job.frame_shape)))
    arr, tmp, final = open_split_for_writing(directory, job.split, (rows, length, *job.frame_shape))
    row = 0
    for i in keep:
        clips = clips_of(np.load(stage / f"{i:06d}.npy", mmap_mode="r"), length)
        arr[row : row + len(clips)] = clips
        row += len(clips)
    finish_split(arr, tmp, final)
    return bad


# ---------------------------------------------------------------- datasets prepared from files


@dataclass(frozen=True)
class PreparedConfig(DataConfig):
    """Fields of a dataset prepared from downloaded files. Zero means: read it from the stored manifest."""

    # training videos used; 0 = all prepared ones (also turns train.epochs into steps)
    n_train: int = field(default=0, metadata={"min": 0})
    train_length: int = field(default=0, metadata={"min": 0})  # frames per stored training video; 0 = as prepared

    def __post_init__(self):
        train = stored_splits(self).get("train")
        if train:
            if self.n_train == 0:
                object.__setattr__(self, "n_train", train["videos"])
            if self.train_length == 0:
                object.__setattr__(self, "train_length", train["shape"][1])


def read_manifest(directory: Path) -> dict | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def stored_splits(cfg: DataConfig, variant: str = "default") -> dict:
    """The manifest's splits of a prepared dataset ({} when it is not prepared)."""
    m = read_manifest(data_root(cfg) / cfg.name / variant)
    return (m or {}).get("splits", {})


class PreparedDataset(Dataset):
    """A dataset built by `prepare(source, ...)` from downloaded files (see the module docstring)."""

    config_class: ClassVar[type[DataConfig]] = PreparedConfig
    archive_names: ClassVar[tuple[str, ...]] = ()  # official archive file names, first = the one to name in hints
    source_hint: ClassVar[str] = ""  # how prepare_command names the source

    def prepare_command(self) -> str:
        """With the source of this or an earlier (perhaps killed) preparation, else a placeholder."""
        recorded = ((read_manifest(self.directory) or {}).get("source") or {}).get("path", "")
        path = getattr(self, "source_path", "") or recorded
        hint = self.source_hint or (f"/path/to/{self.archive_names[0]}" if self.archive_names else "DIR")
        return f"python bench.py data prepare {self.registry_name} --source {path or hint}"

    def load(self, split: str) -> np.ndarray:
        arr = super().load(split)
        n = getattr(self.cfg, "n_train", 0)
        if split == "train" and 0 < n < len(arr):
            return arr[:n]
        return arr

    # -- subclasses implement these
    def jobs(self, reader: SourceReader, allow_skip: bool) -> list[SplitJob]:
        """One SplitJob per split; raises PrepareError when the layout or the counts are wrong."""
        raise NotImplementedError

    def preprocessing(self) -> dict:
        """What was done to the frames, recorded in the manifest."""
        return {}

    # -- the shared procedure
    def reset(self) -> None:
        """Forget a previous or partial preparation (the manifest first, so nothing looks complete)."""
        d = self.directory
        (d / MANIFEST).unlink(missing_ok=True)
        for split in SPLITS:
            for f in (
                f"{split}.npy",
                f".{split}.npy.partial",
                f".{split}.progress.json",
                f".{split}.compact.npy.partial",
                f".verified-{split}.json",
            ):
                (d / f).unlink(missing_ok=True)
        shutil.rmtree(d / ".staging", ignore_errors=True)

    def prepare(self, source: str | Path, allow_skip: bool = False, force: bool = False, progress: bool = True) -> dict:
        """Prepare both splits from `source`; returns the manifest. Resumes a killed run of the same command."""
        self.source_path = str(Path(source).expanduser().resolve())
        reader = self.open_source(Path(source))
        try:
            jobs = self.jobs(reader, allow_skip)
            plan = plan_digest(
                dataset=self.registry_name,
                variant=self.variant(),
                files={j.split: j.names for j in jobs},
                sizes=sum(e.size for e in reader.entries),
                preprocessing=self.preprocessing(),
                jobs=[(j.split, j.frame_shape, j.exact_frames, j.clip_length) for j in jobs],
            )
            try:
                manifest = self.manifest()
            except DatasetCorrupt:  # an unreadable manifest: start over
                self.reset()
                manifest = None
            old_plan = ((manifest or {}).get("source") or {}).get("plan")
            if manifest and self.is_ready() and not force:
                if old_plan == plan:
                    return manifest
                raise PrepareError(
                    f"{self.registry_name} is already prepared in {self.directory} from "
                    f"{manifest['source'].get('path', 'another source')}; pass --force to prepare it again from {source}"
                )
            if force or (manifest and old_plan != plan):
                self.reset()
            skipped = dict(((manifest or {}).get("source") or {}).get("skipped", {})) if not force else {}
            info = {
                "kind": self.source_kind(),
                "dataset": self.registry_name,
                "path": self.source_path,
                "plan": plan,
                "files": {j.split: len(j.names) for j in jobs},
                "preprocessing": self.preprocessing(),
                "prepared_by": self.prepare_command() + (" --allow-skip" if allow_skip else ""),
            }
            recorded = (self.manifest() or {}).get("splits", {})
            for job in jobs:
                if job.split in recorded and (self.directory / recorded[job.split]["file"]).exists():
                    continue  # finished before the kill
                bad = write_split(self.directory, job, plan, allow_skip, reader.source.name, progress)
                skipped[job.split] = bad
                for b in bad:
                    _warn(f"skipped {b['file']}: {b['reason']}")
                record_split(
                    self.directory, job.split, self.directory / f"{job.split}.npy", {**info, "skipped": skipped}
                )
                shutil.rmtree(self.directory / ".staging" / job.split, ignore_errors=True)  # free the disk early
            shutil.rmtree(self.directory / ".staging", ignore_errors=True)
            return self.manifest()
        finally:
            reader.close()

    def open_source(self, source: Path) -> SourceReader:
        return SourceReader(source, self.archive_names)

    def source_kind(self) -> str:
        return "archive"


def check_count(found: int, expected: int | None, what: str, allow_skip: bool, missing: list[str] = ()) -> None:
    """Compare a split's file count with the official archive's; a shortfall needs --allow-skip."""
    if expected is None or found == expected:
        return
    listed = ""
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        listed = f"; missing: {shown}"
    message = f"{what}: found {found} videos, the official archive has {expected}{listed}"
    if found > expected or not allow_skip:
        raise PrepareError(
            message
            + (
                "; is the archive complete? pass --allow-skip to prepare what is there"
                if found < expected
                else "; is this the official archive?"
            )
        )
    _warn(message + " (--allow-skip: preparing what is there)")


def entries_in_folder(reader: SourceReader, folder: str, suffix: str) -> list[Entry]:
    """Entries `.../<folder>/<name><suffix>` (the official archives nest their split folders 0 or 1 levels deep)."""
    pattern = re.compile(rf"(^|.*/){re.escape(folder)}/[^/]+{re.escape(suffix)}$", re.IGNORECASE)
    found = [e for e in reader.entries if pattern.match(e.path) and not e.name.startswith(".")]
    return sorted(found, key=lambda e: e.path)


class OfficialVideoArchive(PreparedDataset):
    """An official CW-VAE archive: `<split folder>/*.mp4` of fixed-length 64x64 videos, stored as they are."""

    paper_data = True  # the videos the official code reads

    split_folders: ClassVar[dict[str, str]] = {"train": "train", "test": "test"}
    frames: ClassVar[dict[str, int]] = {}  # frames of every video, per split
    stored_channels: ClassVar[int] = 3
    frame_size: ClassVar[int] = 64
    official_counts: ClassVar[dict[str, int]] = {}  # videos per split of the official archive, where known
    layout: ClassVar[str] = ""  # the archive's layout, for error messages

    def preprocessing(self) -> dict:
        return {"frames": dict(self.frames), "channels": self.stored_channels, "resize": "none (stored as decoded)"}

    def jobs(self, reader: SourceReader, allow_skip: bool) -> list[SplitJob]:
        from datasets.video import read_video

        C = self.stored_channels
        jobs = []
        for split in SPLITS:
            folder = self.split_folders[split]
            entries = entries_in_folder(reader, folder, ".mp4")
            if not entries:
                raise PrepareError(
                    f"{reader.source} holds no {folder}/*.mp4 videos; the official {self.archive_names[0]} holds "
                    f"{self.layout}: give that zip, or the folder it extracts to"
                )
            check_count(len(entries), self.official_counts.get(split), f"{reader.source.name} {split}", allow_skip)
            jobs.append(
                SplitJob(
                    split=split,
                    items=entries,
                    names=[e.key for e in entries],
                    decode=lambda e: read_video(reader.read(e), C, e.key),
                    frame_shape=(self.frame_size, self.frame_size, C),
                    exact_frames=self.frames[split],
                )
            )
        return jobs
