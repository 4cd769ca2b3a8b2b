"""Reading and writing video frames: PyAV (its wheels carry FFmpeg), PNG folders, area resizing.

Every reader returns uint8 frames (T, H, W, C) with C = 1 (gray) or 3 (RGB), and raises
`VideoError` naming the file when it cannot be decoded.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class VideoError(RuntimeError):
    """A file that is corrupt, truncated or not the expected video; the message names it."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


def read_video(source: str | Path | bytes | BinaryIO, channels: int, name: str = "") -> np.ndarray:
    """Decode every frame of a video: (T, H, W, channels) uint8. channels 1 = FFmpeg's gray (luma)."""
    import av

    name = name or str(source)
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    fmt = "gray" if channels == 1 else "rgb24"
    frames = []
    try:
        with av.open(source if not isinstance(source, Path) else str(source)) as container:
            if not container.streams.video:
                raise VideoError(name, "holds no video stream")
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format=fmt))
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        raise VideoError(name, f"cannot be decoded ({e}): the file is corrupt or truncated") from e
    if not frames:
        raise VideoError(name, "decodes to 0 frames: the file is empty, corrupt or truncated")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise VideoError(name, f"frames change size within the video: {sorted(shapes)}")
    video = np.stack(frames)  # (T, H, W) or (T, H, W, 3)
    return video[..., None] if channels == 1 else video


def write_video(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str = "mpeg4", quality: int = 2) -> None:
    """Encode (T, H, W, C) uint8 frames (C = 1 or 3) to a video file (format from the suffix)."""
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    T, H, W, C = frames.shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": str(quality)}  # near-lossless: tests compare values
        for frame in frames:
            image = frame[..., 0] if C == 1 else frame
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="gray" if C == 1 else "rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_image(path: Path, channels: int) -> np.ndarray:
    """One image as (H, W, channels) uint8 (PIL converts: 'L' gray or 'RGB')."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I"):  # 16-bit gray: keep the top 8 bits
                arr = np.asarray(img, dtype=np.uint32) >> (8 if img.mode != "I" else 0)
                img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
            arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise VideoError(str(path), f"cannot be read as an image ({e}): the file is corrupt or truncated") from e
    return arr[..., None] if channels == 1 else arr


def image_channels(path: Path) -> int:
    """1 for gray images ('L', 'I;16', '1', 'I'), 3 otherwise, without decoding pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return 1 if img.mode in ("1", "L", "I", "I;16", "I;16B", "LA") else 3
    except (UnidentifiedImageError, OSError) as e:
        raise VideoError(str(path), f"cannot be read as an image ({e})") from e


def read_frame_folder(folder: Path, channels: int) -> np.ndarray:
    """A folder of images, one per frame, in name order: (T, H, W, channels) uint8."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VideoError(str(folder), f"holds no frames ({', '.join(IMAGE_SUFFIXES)})")
    frames = [read_image(p, channels) for p in files]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise VideoError(str(folder), f"frames have different sizes: {sorted(shapes)}")
    return np.stack(frames)


# ---------------------------------------------------------------- resizing


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of area (box) downsampling: each output pixel averages the input
    pixels it covers, weighted by overlap. Rows sum to 1 (a constant image stays constant)."""
    if n_out > n_in:
        raise ValueError(f"area resizing only shrinks: {n_in} -> {n_out} pixels")
    edges = np.arange(n_out + 1) * (n_in / n_out)  # output pixel i covers input [edges[i], edges[i+1])
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)  # (n_out, n_in)
    return overlap / (n_in / n_out)


def center_crop_square(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, C) -> (T, S, S, C) with S = min(H, W), cropped around the center."""
    T, H, W, C = frames.shape
    S = min(H, W)
    top, left = (H - S) // 2, (W - S) // 2
    return frames[:, top : top + S, left : left + S]


def to_square(frames: np.ndarray, size: int) -> np.ndarray:
    """Center-crop to a square, then area-resize to (T, size, size, C) uint8 (rounded)."""
    frames = center_crop_square(frames)
    S = frames.shape[1]
    if S == size:
        return np.ascontiguousarray(frames)
    if S < size:
        raise ValueError(f"frames of {S}x{S} pixels are smaller than the requested {size}x{size}")
    A = area_matrix(S, size).astype(np.float32)  # (size, S)
    out = np.einsum("ij,tjkc,lk->tilc", A, frames.astype(np.float32), A, optimize=True)  # (T, size, size, C)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
