"""Run directories: where one (model, dataset, preset, seed, config) lives.

<out>/runs/<dataset>/<model>/<preset>-s<seed>-<confighash>/
    config.yaml  status.json  checkpoints/last.pt  train.jsonl
    eval/curves.csv  eval/summary.csv  samples/samples.npz
"""

from __future__ import annotations

import json
import platform
import subprocess
import tempfile
from pathlib import Path

import yaml

from benchmarks.atomic import write_json, write_text


def model_label(model_name: str) -> str:
    """Registry name, or `Name` for `path/to/file.py:Name`."""
    return model_name.rpartition(":")[2] if ":" in model_name else model_name


def run_dir(out: Path, cfg) -> Path:
    return Path(out) / "runs" / cfg.dataset / model_label(cfg.model_name) / f"{cfg.preset}-s{cfg.seed}-{cfg.hash()}"


def check_writable(out: Path) -> None:
    """Create `out` if needed and prove a file can be written there; else PermissionError."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-probe-"):
            pass
    except OSError as e:
        raise PermissionError(
            f"output directory {out} is not writable ({e.strerror or e}); pass --out DIR with a writable directory"
        ) from None


def write_config(directory: Path, cfg) -> None:
    path = directory / "config.yaml"
    text = cfg.to_yaml()
    if not path.exists() or path.read_text() != text:
        write_text(path, text)


def read_status(directory: Path) -> dict:
    path = Path(directory) / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def update_status(directory: Path, **fields) -> dict:
    status = {**read_status(directory), **fields}
    write_json(Path(directory) / "status.json", status)
    return status


def read_config(directory: Path) -> dict:
    return yaml.safe_load((Path(directory) / "config.yaml").read_text())


def iter_runs(out: Path):
    """Every run directory under <out>/runs that has a config.yaml."""
    root = Path(out) / "runs"
    if root.exists():
        yield from sorted(p.parent for p in root.glob("*/*/*/config.yaml"))


def machine_info() -> dict:
    import torch

    info = {"machine": platform.node(), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = ""
    return info
