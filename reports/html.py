"""index.html: the report as one self-contained page (tables and figures inline), next to index.md.

The page is index.md rendered (markdown-it-py: CommonMark and tables), with every file it
links pulled in: a linked markdown file of the report (Table 1, mean rank, leaderboard,
the studies) becomes a section of the page and the link points at it; a linked or embedded
PNG or GIF is inlined as a base64 data URI. Links to other files (the CSVs) stay relative
links to the files beside it. No script, no stylesheet or font from elsewhere: the page
opens offline, anywhere, as one file. Deterministic, like every report file.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path, PurePosixPath

from rundir.atomic import write_text

MEDIA = {".png": "image/png", ".gif": "image/gif"}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1, h2, h3, h4 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; } th { background: #f3f3f3; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: .6em 0 1.2em; } figcaption { font-size: .8em; color: #555; }
ul:has(> li > figure) { list-style: none; padding-left: 0; }
img { max-width: 100%; height: auto; }
code { background: #f3f3f3; padding: 0 .2em; border-radius: 3px; font-size: .9em; }
section.file { border-top: 3px solid #4c72b0; margin-top: 2.5em; }
a.source { font-size: .8em; color: #555; }
"""


def markdown_parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


def section_id(rel: str) -> str:
    """'studies/levels.md' -> 'file-studies-levels-md'."""
    return "file-" + re.sub(r"[^a-z0-9]+", "-", rel.lower()).strip("-")


def data_uri(path: Path) -> str:
    return f"data:{MEDIA[path.suffix.lower()]};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


class Page:
    """Renders the report's markdown files into one page, each linked file once."""

    def __init__(self, out: Path):
        self.out, self.md = Path(out), markdown_parser()
        self.queue: list[str] = []  # linked markdown files still to render, as paths relative to `out`

    def resolve(self, target: str, base: PurePosixPath) -> str | None:
        """A link target relative to the file at `base` -> its path relative to `out`, if it is a report file."""
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target, flags=re.I):
            return None  # a URL, an anchor, an absolute path: left as it is
        parts: list[str] = []
        for part in (base.parent / target).parts:
            if part == "..":
                if not parts:
                    return None
                parts.pop()
            elif part != ".":
                parts.append(part)
        rel = "/".join(parts)
        return rel if (self.out / rel).is_file() else None

    def render(self, rel: str, shift: int = 0) -> str:
        """The HTML of the report file `rel`, its headings `shift` levels down, its links rewritten."""
        base = PurePosixPath(rel)
        tokens = self.md.parse((self.out / rel).read_text())
        for token in tokens:
            if token.type in ("heading_open", "heading_close") and shift:
                token.tag = f"h{min(6, int(token.tag[1]) + shift)}"
            for child in token.children or []:
                self.rewrite(child, base)
            if token.children:
                token.children = self.inline_figures(token.children, base)
        return self.md.renderer.render(tokens, self.md.options, {})

    def rewrite(self, token, base: PurePosixPath) -> None:
        if token.type == "image":
            rel = self.resolve(token.attrGet("src") or "", base)
            if rel and PurePosixPath(rel).suffix.lower() in MEDIA:
                token.attrSet("src", data_uri(self.out / rel))
        elif token.type == "link_open":
            rel = self.resolve(token.attrGet("href") or "", base)
            if rel and rel.endswith(".md"):
                token.attrSet("href", "#" + section_id(rel))
                if rel not in self.queue:
                    self.queue.append(rel)
            elif rel:
                token.attrSet("href", rel)  # relative to index.html, which sits in `out`

    def inline_figures(self, children: list, base: PurePosixPath) -> list:
        """A link to a PNG or GIF becomes the picture itself, its link text the caption."""
        from markdown_it.token import Token

        out, i = [], 0
        while i < len(children):
            token = children[i]
            rel = self.resolve(token.attrGet("href") or "", base) if token.type == "link_open" else None
            if rel and PurePosixPath(rel).suffix.lower() in MEDIA:
                end = next(j for j in range(i, len(children)) if children[j].type == "link_close")
                caption = "".join(c.content for c in children[i + 1 : end])
                figure = Token("html_inline", "", 0)
                figure.content = (
                    f'<figure><img src="{data_uri(self.out / rel)}" alt="{html.escape(caption)}">'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
                out.append(figure)
                i = end + 1
                continue
            out.append(token)
            i += 1
        return out


def write_html(out: Path, index: str = "index.md") -> Path:
    """<out>/index.html from <out>/index.md and every report file it links (module docstring)."""
    out = Path(out)
    page = Page(out)
    body = [page.render(index)]
    done = set()
    while page.queue:
        rel = page.queue.pop(0)
        if rel in done:
            continue
        done.add(rel)
        body.append(
            f'<section class="file" id="{section_id(rel)}">'
            f'<a class="source" href="{html.escape(rel)}">{html.escape(rel)}</a>\n{page.render(rel, shift=1)}</section>'
        )
    title = "cwbench report"
    text = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "</body>\n</html>\n"
    )
    path = out / "index.html"
    write_text(path, text)
    return path
