"""The project's import graph, derived from the code with `ast`, and the directions it may take.

    python tools/import_graph.py            print the picture (a mermaid graph) and the rule table
    python tools/import_graph.py --write    put them into docs/architecture.md between the markers
    python tools/import_graph.py --check    exit 1 when docs/architecture.md's copy is not today's

Every `import` counts, at the top of a module or inside a function (a lazy import is still
a dependency). tests/test_architecture.py checks the code against ALLOWED and the doc
against `render()`.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- import-graph:begin (tools/import_graph.py --write) -->", "<!-- import-graph:end -->"

# The layers, top first. `bench` is bench.py; `tests`, `tools`, `examples` are outside the rule.
PACKAGES = ("bench", "benchmarks", "reports", "baselines", "models", "datasets", "rundir")
# package -> the packages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "bench": {"benchmarks"},
    "benchmarks": {"reports", "baselines", "models", "datasets", "rundir"},
    "reports": {"rundir"},
    "baselines": {"models", "rundir"},
    "models": {"rundir"},
    "datasets": {"rundir"},
    "rundir": set(),
}
# Narrower rules inside a package: module prefix -> the project modules (prefixes) it may import.
INNER: dict[str, tuple[str, ...]] = {
    "benchmarks.metrics": ("benchmarks.metrics", "rundir"),  # a metric never imports a model or the pipeline
    "benchmarks.cli": ("benchmarks.commands",),  # the CLI dispatches by name; commands never import the CLI
}
# Imports that break a rule on purpose, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("models", "benchmarks.config"): "`models.build_model` re-exports `benchmarks.config.build_model`, "
    "imported on first use (models/__init__.py `__getattr__`), never when `models` is imported",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files() -> list[Path]:
    files = [ROOT / "bench.py"]
    for package in PACKAGES[1:]:
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def imports_of(path: Path) -> list[tuple[str, int]]:
    """[(imported module, line)] of the project's own modules that `path` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = me.split(".")[: len(me.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{a.name}" for a in node.names]  # `from pkg import module`
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES and is_module(name):
                out.append((name, node.lineno))
    return out


def is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() or name == "bench"


def graph() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in project_files():
        me = module_name(path)
        for name, _ in imports_of(path):
            if name != me:
                edges[me].add(name)
    return dict(edges)


def package_of(module: str) -> str:
    return module.split(".")[0]


def violations() -> list[str]:
    """Every import against ALLOWED / INNER that EXCEPTIONS does not name, as 'file:line: a -> b (why)'."""
    out = []
    for path in project_files():
        me = module_name(path)
        for name, line in imports_of(path):
            src, dst = package_of(me), package_of(name)
            if (me, name) in EXCEPTIONS:
                continue
            where = f"{path.relative_to(ROOT)}:{line}: {me} -> {name}"
            if src != dst and dst not in ALLOWED[src]:
                out.append(f"{where} ({src} may import only {sorted(ALLOWED[src]) or 'nothing of the project'})")
            for prefix, allowed in INNER.items():
                inside = me == prefix or me.startswith(prefix + ".")
                if inside and package_of(name) in PACKAGES and not name.startswith(allowed) and name != me:
                    out.append(f"{where} ({prefix} may import only {', '.join(allowed)})")
    return out


def package_edges() -> dict[tuple[str, str], int]:
    """(package, package) -> how many modules of the first import the second."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for module, targets in graph().items():
        for dst in {package_of(t) for t in targets} - {package_of(module)}:
            counts[(package_of(module), dst)] += 1
    return dict(counts)


def render() -> str:
    """The picture (mermaid) and the rule table, as docs/architecture.md holds them."""
    lines = ["```mermaid", "flowchart TD"]
    for (src, dst), n in sorted(package_edges().items(), key=lambda kv: (PACKAGES.index(kv[0][0]), kv[0][1])):
        lazy = any(src == package_of(s) and dst == package_of(d) for s, d in EXCEPTIONS)
        label = f"{n} module{'s' if n > 1 else ''}"
        arrow = f"-. {label}, lazy .->" if lazy else f"-- {label} -->"
        lines.append(f"    {src} {arrow} {dst}")
    lines.append("```")
    lines += ["", "| package | may import |", "|---|---|"]
    for package in PACKAGES:
        lines.append(
            f"| `{package}` | {', '.join(f'`{p}`' for p in sorted(ALLOWED[package])) or 'nothing of the project'} |"
        )
    lines += [""] + [f"- inside `{p}`: only {', '.join(f'`{a}`' for a in allowed)}" for p, allowed in INNER.items()]
    lines += [f"- exception, `{s}` -> `{d}`: {why}" for (s, d), why in EXCEPTIONS.items()]
    return "\n".join(lines)


def doc_block(text: str) -> str | None:
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def main(argv: list[str]) -> int:
    if "--write" in argv:
        text = DOC.read_text()
        DOC.write_text(text.split(BEGIN)[0] + BEGIN + "\n" + render() + "\n" + END + text.split(END, 1)[1])
        print(f"wrote the import graph into {DOC.relative_to(ROOT)}")
        return 0
    if "--check" in argv:
        same = doc_block(DOC.read_text()) == render()
        print("docs/architecture.md matches the code" if same else "docs/architecture.md is out of date: --write")
        return 0 if same else 1
    print(render())
    for v in violations():
        print(f"violation: {v}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
