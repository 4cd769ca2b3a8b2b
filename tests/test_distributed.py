"""DDP under torchrun on the CPU (gloo, 2 processes) equals one process on the global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = f"{REPO / 'tests' / 'data' / 'conv_next_frame.py'}:ConvNextFrame"
ARGS = [
    "bench.py",
    "--model",
    MODEL,
    "--preset",
    "smoke",
    "--no-progress",
    "--set",
    "train.steps=3",
    "--set",
    "train.batch_size=4",
    "--set",
    "train.lr=0.05",
]


def run(cmd, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*cmd, *ARGS, "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = next((Path(out) / "runs").rglob("last.pt")).parents[1]
    losses = [json.loads(line)["train/loss"] for line in (run_dir / "train.jsonl").read_text().splitlines()]
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"], losses


def test_two_gloo_processes_equal_one_process(tmp_path):
    single, single_losses = run([sys.executable], tmp_path / "one")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp, ddp_losses = run(torchrun, tmp_path / "two")
    assert len(single_losses) == len(ddp_losses) == 3
    for a, b in zip(single_losses, ddp_losses):
        assert abs(a - b) <= 1e-6 * max(1.0, abs(a))
    for name in single:
        assert torch.allclose(single[name], ddp[name], atol=1e-6), name
    assert single_losses[-1] < single_losses[0]
