"""Sample strips (like the paper's Fig 6 and Fig 7) as PNG, and the same videos as GIF.

A strip is a grid: columns are a few context frames then predictions at chosen
horizons; the first row is the ground truth, every further row one model's (or one
setting's) prediction of the same test video. The GIF plays the whole video with the
panels side by side: ground truth, then each prediction (the context is shown in
every panel while it lasts).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from reports.plotting import new_figure, save
from rundir.atomic import atomic_open

HORIZONS = (1, 5, 10, 25, 50, 100, 250, 500, 750, 1000)  # predicted frames shown, clipped to the horizon
CONTEXT_SHOWN = 4  # context frames shown (evenly spaced, the last one included)
GIF_MAX_FRAMES = 200  # longer videos are subsampled evenly
GIF_SCALE = 2  # nearest-neighbour upscaling of 64x64 frames


def chosen_horizons(horizon: int, horizons=HORIZONS) -> list[int]:
    """Horizons (1-based) to show for predictions of `horizon` frames; the last frame always included."""
    out = [h for h in horizons if h <= horizon]
    if horizon not in out:
        out.append(horizon)
    return out


def context_indices(context: int, n: int = CONTEXT_SHOWN) -> list[int]:
    """0-based indices of `n` evenly spaced context frames ending at the last one."""
    n = min(n, context)
    return sorted({int(round(x)) for x in np.linspace(context - 1, 0, n)})


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 with C in {1, 3} -> (H, W, 3) uint8."""
    return np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame[..., :3]


def strip_png(
    gt: np.ndarray, rows: list[tuple[str, np.ndarray]], context: int, title: str, path: Path, horizons=HORIZONS
) -> Path:
    """gt (T, H, W, C) uint8; rows [(name, pred (horizon, H, W, C) uint8)] -> PNG at `path`."""
    horizon = min(len(p) for _, p in rows) if rows else len(gt) - context
    ctx = context_indices(context)
    hs = chosen_horizons(min(horizon, len(gt) - context), horizons)
    n_cols, n_rows = len(ctx) + len(hs), 1 + len(rows)
    fig, axes = new_figure(0.95 * n_cols + 1.2, 0.95 * n_rows + 0.5, ncols=n_cols, nrows=n_rows)
    labels = [f"ctx {i + 1}" for i in ctx] + [f"t+{h}" for h in hs]
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(ctx):
                img = gt[ctx[c]] if r == 0 else None  # predictions rows leave the context blank
            else:
                h = hs[c - len(ctx)]
                img = gt[context + h - 1] if r == 0 else rows[r - 1][1][h - 1]
            if img is None:
                ax.axis("off")
                continue
            ax.imshow(to_rgb(img), interpolation="nearest")
            if r == 0:
                ax.set_title(labels[c], fontsize=7)
        axes[r][0].set_ylabel(
            "ground truth" if r == 0 else rows[r - 1][0], fontsize=7, rotation=0, ha="right", va="center"
        )
        if r > 0:  # the blank context cells hide their axis: put the row name on the first shown cell
            first = axes[r][len(ctx)]
            first.set_ylabel(rows[r - 1][0], fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return save(fig, path)


def strip_gif(gt: np.ndarray, rows: list[tuple[str, np.ndarray]], context: int, path: Path, fps: int = 10) -> Path:
    """Animated panels [ground truth | row 1 | row 2 ...]; a header names each panel and the frame."""
    from PIL import Image, ImageDraw

    horizon = min([len(p) for _, p in rows] + [len(gt) - context])
    total = context + horizon
    steps = np.unique(np.linspace(0, total - 1, min(total, GIF_MAX_FRAMES)).round().astype(int))
    H, W, C = gt.shape[1:4]
    gray = C == 1  # grayscale videos stay 8-bit gray (exact and fast); colour ones get a fast per-frame palette
    mode, white, black = ("L", 255, 0) if gray else ("RGB", (255, 255, 255), (0, 0, 0))
    names = ["ground truth"] + [name for name, _ in rows]
    pw, ph, header = W * GIF_SCALE, H * GIF_SCALE, 24
    frames = []
    for t in steps:
        canvas = Image.new(mode, (pw * len(names) + 2 * (len(names) - 1), ph + header), white)
        draw = ImageDraw.Draw(canvas)
        for i, name in enumerate(names):
            src = gt[t] if (i == 0 or t < context) else rows[i - 1][1][t - context]
            tile = Image.fromarray(src[..., 0] if gray else to_rgb(src)).resize((pw, ph), Image.NEAREST)
            x = i * (pw + 2)
            canvas.paste(tile, (x, header))
            draw.text((x + 2, 1), name[: max(4, pw // 6)], fill=black)
        stamp = f"context {t + 1}/{context}" if t < context else f"t+{t - context + 1}"
        draw.text((2, 12), stamp, fill=black if gray else ((200, 0, 0) if t >= context else (0, 90, 0)))
        frames.append(canvas if gray else canvas.quantize(colors=256, method=Image.Quantize.FASTOCTREE))
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())
    return Path(path)


def write_strip(
    gt: np.ndarray, rows: list[tuple[str, np.ndarray]], context: int, title: str, stem: Path, horizons=HORIZONS
) -> list[Path]:
    """stem.png and stem.gif of one test video."""
    return [
        strip_png(gt, rows, context, title, stem.with_suffix(".png"), horizons),
        strip_gif(gt, rows, context, stem.with_suffix(".gif")),
    ]
