"""Markdown tables readable on GitHub (no extra dependency)."""

from __future__ import annotations

import math


def table(header: list[str], rows: list[list], align: list[str] | None = None) -> str:
    """header (k,), rows (n, k) of str-able cells, align per column 'l' | 'r' -> a markdown table."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def number(value: float, metric: str = "", paper: bool = False) -> str:
    """A metric value: FVD without decimals, PSNR two, others three (two for the paper's own rows,
    as printed in its Table 1)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if metric == "fvd":
        return f"{value:.0f}"
    if metric == "psnr" or paper:
        return f"{value:.2f}"
    return f"{value:.3f}"


def notes_list(title: str, notes: list[tuple[str, str]], shown: int = 6) -> list[str]:
    """[(notes joined by '; ', place)] -> lines: the title, then each note once with (up to `shown`)
    places where it applies; [] when there is none."""
    where: dict[str, list[str]] = {}
    for text, place in notes:
        for note in str(text).split("; ") if text else []:
            where.setdefault(note, []).append(place)
    if not where:
        return []
    lines = [f"{title}\n"]
    for note, places in where.items():
        unique = sorted(set(places))
        lines.append(f"- {note} ({', '.join(unique[:shown])}{' ...' if len(unique) > shown else ''})")
    return [*lines, ""]


def bold(text: str, on: bool) -> str:
    return f"**{text}**" if on and text else text
