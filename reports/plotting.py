"""Matplotlib set-up shared by the report's figures: Agg backend, deterministic PNGs."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never opens a window (and works on headless machines)

import matplotlib.pyplot as plt  # noqa: E402

from rundir.atomic import atomic_open  # noqa: E402

# no "Software: matplotlib x.y" or dates in the files: the same runs give the same bytes
PNG_METADATA = {"Software": None}


def new_figure(width: float = 6.0, height: float = 4.0, ncols: int = 1, nrows: int = 1):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    return fig, axes


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Write the figure as PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(fig)
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())
    return Path(path)


def color_of(index: int):
    return plt.get_cmap("tab10")(index % 10)
