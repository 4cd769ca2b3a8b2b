"""Sample strips (like the paper's Fig 6 and Fig 7) as PNG, and the same videos as GIF.

A strip is a grid: columns are a few context frames then predictions at chosen
horizons; the first row is the ground truth, every further row one model's (or one
setting's) prediction of the same test video. The GIF plays the whole video with the
panels side by side: ground truth, then each prediction (the context is shown in
every panel while it lasts).
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np

from reports.plotting import new_figure, save
from rundir.atomic import atomic_open
from rundir.run import STRIP, read_samples

HORIZONS = (1, 5, 10, 25, 50, 100, 250, 500, 750, 1000)  # predicted frames shown, clipped to the horizon
CONTEXT_SHOWN = 4  # context frames shown (evenly spaced, the last one included)
GIF_MAX_FRAMES = 200  # longer videos are subsampled evenly
GIF_SCALE = 2  # nearest-neighbour upscaling of 64x64 frames
GAP = 2  # white pixels between the cells of a PNG strip
LINE = 12  # pixels per line of PIL's default font in a GIF's header


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
    """gt (T, H, W, C) uint8; rows [(name, pred (horizon, H, W, C) uint8)] -> PNG at `path`.

    One image of cells (ground truth on top, one row per prediction; a prediction row leaves the
    context columns blank), drawn on a single axes whose ticks name the columns and rows."""
    horizon = min(len(p) for _, p in rows) if rows else len(gt) - context
    ctx = context_indices(context)
    hs = chosen_horizons(min(horizon, len(gt) - context), horizons)
    n_cols, n_rows = len(ctx) + len(hs), 1 + len(rows)
    H, W = gt.shape[1:3]
    step_y, step_x = H + GAP, W + GAP
    canvas = np.full((n_rows * step_y - GAP, n_cols * step_x - GAP, 3), 255, np.uint8)  # (rows, cols, RGB)
    for r in range(n_rows):
        for c in range(n_cols):
            if c < len(ctx):
                img = gt[ctx[c]] if r == 0 else None  # prediction rows leave the context blank
            else:
                h = hs[c - len(ctx)]
                img = gt[context + h - 1] if r == 0 else rows[r - 1][1][h - 1]
            if img is not None:
                canvas[r * step_y : r * step_y + H, c * step_x : c * step_x + W] = to_rgb(img)
    fig, axes = new_figure(0.95 * n_cols + 1.2, 0.95 * n_rows + 0.5)
    ax = axes[0][0]
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([c * step_x + W / 2 for c in range(n_cols)], [f"ctx {i + 1}" for i in ctx] + [f"t+{h}" for h in hs])
    ax.set_yticks([r * step_y + H / 2 for r in range(n_rows)], ["ground truth"] + [name for name, _ in rows])
    ax.xaxis.tick_top()
    ax.tick_params(length=0, labelsize=7)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(title, fontsize=9)
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
    pw, ph = W * GIF_SCALE, H * GIF_SCALE
    labels = [textwrap.wrap(name, max(4, pw // 6), break_on_hyphens=False) or [""] for name in names]  # never cut
    header = LINE * (max(len(lines) for lines in labels) + 1)  # the names' lines, then the frame stamp
    frames = []
    for t in steps:
        canvas = Image.new(mode, (pw * len(names) + 2 * (len(names) - 1), ph + header), white)
        draw = ImageDraw.Draw(canvas)
        for i in range(len(names)):
            src = gt[t] if (i == 0 or t < context) else rows[i - 1][1][t - context]
            tile = Image.fromarray(src[..., 0] if gray else to_rgb(src)).resize((pw, ph), Image.NEAREST)
            x = i * (pw + 2)
            canvas.paste(tile, (x, header))
            for k, line in enumerate(labels[i]):
                draw.text((x + 2, 1 + LINE * k), line, fill=black)
        stamp = f"context {t + 1}/{context}" if t < context else f"t+{t - context + 1}"
        draw.text((2, header - LINE), stamp, fill=black if gray else ((200, 0, 0) if t >= context else (0, 90, 0)))
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


def write_run_strip(directory: Path, title: str, max_samples: int = 3) -> Path | None:
    """<run>/samples/strip.png: test video 1's ground truth over its prediction (up to `max_samples`
    samples) at a few horizons, so that one run can be looked at without a report. None: no samples."""
    saved = read_samples(directory)
    if saved is None or not len(saved["gt"]):
        return None
    pred = saved["pred"][0]  # (n_samples, horizon, H, W, C)
    names = ["prediction"] if len(pred) == 1 else [f"sample {k + 1}" for k in range(min(len(pred), max_samples))]
    rows = [(name, pred[k]) for k, name in enumerate(names)]
    return strip_png(saved["gt"][0], rows, saved["context"], title, Path(directory) / STRIP)
