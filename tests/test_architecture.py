"""Imports flow one way (tools/import_graph.py ALLOWED), docs/architecture.md shows today's graph,
and a report loads neither torch nor any model: it reads run directories only."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd

from rundir.atomic import write_csv
from rundir.run import run_info, write_config, write_info

REPO = Path(__file__).resolve().parent.parent
HARNESS = ("torch", "models", "baselines", "datasets")  # what a report must never load


def import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_imports_flow_one_way():
    assert import_graph().violations() == []


def test_no_import_cycle_crosses_a_package():
    ig = import_graph()
    graph = ig.graph()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    crossing = [
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if ig.package_of(a) != ig.package_of(b) and a in reach(b) and (a, b) not in ig.EXCEPTIONS
    ]
    assert crossing == []  # e.g. benchmarks.cli <-> benchmarks.suite would be inside; cli -> suite is INNER's


def test_the_architecture_doc_shows_todays_graph():
    ig = import_graph()
    assert ig.doc_block(ig.DOC.read_text()) == ig.render(), "run: python tools/import_graph.py --write"


def loaded_modules(code: str, *args: str) -> set[str]:
    """Top-level names of every module a fresh interpreter imports running `code` (python -X importtime)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {n for n in names if n and n != "imported package"}


def fake_results(root: Path) -> Path:
    """One finished run written through rundir/, as the pipeline writes it."""
    cfg = {
        "model_name": "cwvae",
        "dataset": "mmnist",
        "preset": "smoke",
        "seed": 0,
        "model": {},
        "data": {"name": "mmnist", "test_length": 48},
        "train": {},
        "eval": {"context": 36, "metrics": ["ssim"]},
    }
    run = root / "runs" / "mmnist" / "cwvae" / "smoke-s0-fake"
    write_config(run, cfg)
    write_info(run, run_info(cfg, cfg, "CW-VAE", "Moving MNIST", reference=False))
    rows = [dict(metric="ssim", aggregate="best", t=t, mean=0.5, ci_low=0.4, ci_high=0.6, n=2) for t in range(1, 13)]
    write_csv(run / "eval" / "curves.csv", pd.DataFrame(rows))
    summary = [dict(metric="ssim", aggregate="best", value=0.5, ci_low=0.4, ci_high=0.6, n=2)]
    write_csv(run / "eval" / "summary.csv", pd.DataFrame(summary))
    return root


def test_import_reports_build_loads_no_harness_torch_or_model():
    loaded = {name.split(".")[0] for name in loaded_modules("import reports.build")}
    assert loaded.isdisjoint({*HARNESS, "benchmarks"}), sorted(loaded & {*HARNESS, "benchmarks"})
    assert "rundir" in loaded and "reports" in loaded


def test_bench_report_loads_neither_torch_nor_a_model(tmp_path):
    results = fake_results(tmp_path / "results")
    code = "import sys, runpy; sys.argv = ['bench.py', *sys.argv[1:]]; runpy.run_path('bench.py', run_name='__main__')"
    modules = loaded_modules(code, "report", "--runs", str(results))
    loaded = {name.split(".")[0] for name in modules}
    assert loaded.isdisjoint(HARNESS), sorted(loaded & set(HARNESS))
    harness = {m for m in modules if m.startswith("benchmarks")}
    # the CLI, the command and the config constants only: no pipeline, trainer, metrics or suite
    assert harness <= {
        "benchmarks",
        "benchmarks.cli",
        "benchmarks.commands",
        "benchmarks.commands.report",
        "benchmarks.config",
    }
    assert (results / "report" / "table1.md").read_text().count("| CW-VAE | **0.500** |") == 1
