"""A training step's wait for its batch, without and with the prefetcher (train.prefetch 0, 1, 2), on the CPU.

    python -m benchmarks.loader_wait --busy compute   # the training thread busy with convolutions (a CPU step)
    python -m benchmarks.loader_wait --busy sleep     # the training thread idle (as while a GPU computes)

The mmnist paper preset's batch: 50 windows of 100 frames of 64x64x1 uint8 drawn from a memory-mapped
array of --videos videos (a synthetic file, made once under the temporary directory and read once first
so it sits in the page cache). The depths are alternated over --rounds; medians of the waits after two
warm-up steps. docs/performance.md has the measurement.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.memory import apply_allocator_policy
from benchmarks.prefetch import Prefetcher
from benchmarks.trainer import BatchSampler


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="a training step's wait for its batch, train.prefetch 0, 1 and 2")
    p.add_argument("--videos", type=int, default=2000)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--busy-work", type=int, default=6)  # conv passes per step in the main thread
    # compute: torch convolutions on every core (a CPU training step); sleep: the main thread waits with the
    # CPU free, as it does while a GPU computes a step
    p.add_argument("--busy", choices=("compute", "sleep"), default="compute")
    p.add_argument("--sleep-s", type=float, default=0.2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--file", default=str(Path(tempfile.gettempdir()) / "cwbench_loader_wait.npy"))
    return p


def training_videos(path: Path, n: int) -> np.ndarray:
    """A memory-mapped (n, 100, 64, 64, 1) uint8 array of random frames, made once, read once (page cache)."""
    shape = (n, 100, 64, 64, 1)
    if not path.exists() or np.load(path, mmap_mode="r").shape != shape:
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        rng = np.random.default_rng(0)
        for i in range(0, n, 100):
            arr[i : i + 100] = rng.integers(0, 256, arr[i : i + 100].shape, dtype=np.uint8)
        arr.flush()
        del arr
    videos = np.load(path, mmap_mode="r")
    _ = int(np.asarray(videos).sum(dtype=np.int64) % 7)  # read once: warm page cache
    return videos


def median_ms(values) -> float:
    return statistics.median(values) * 1e3


def main() -> None:
    a = parser().parse_args()
    cpu = torch.device("cpu")
    apply_allocator_policy()  # as train() does
    videos = training_videos(Path(a.file), a.videos)
    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    x = torch.randn(64, 32, 64, 64)

    def busy():  # stands in for a training step
        if a.busy == "sleep":
            time.sleep(a.sleep_s)
            return
        with torch.no_grad():
            for _ in range(a.busy_work):
                conv(x)

    def run(depth: int) -> tuple[list, list]:
        """Per step: the wait for the batch (what the trainer times from `tic` to its batch), the busy work."""
        sampler = BatchSampler(videos, 50, 100, seed=0)
        waits, busies = [], []
        with Prefetcher(sampler, cpu, depth) as batches:  # depth 0: sampler.next() + to_video_tensor, here
            for _ in range(a.steps + 2):
                tic = time.perf_counter()
                _batch = batches.next()  # (50, 100, 1, 64, 64), alive through the busy work as in training
                waits.append(time.perf_counter() - tic)
                tic = time.perf_counter()
                busy()
                busies.append(time.perf_counter() - tic)
        return waits[2:], busies[2:]  # two warm-up steps dropped

    results = {d: ([], []) for d in (0, 1, 2)}
    for _ in range(a.rounds):  # alternated, so the machine's other load hits every depth alike
        for depth in results:
            w, b = run(depth)
            results[depth][0].extend(w)
            results[depth][1].extend(b)
    print(
        f"threads={torch.get_num_threads()} busy={a.busy} torch={torch.__version__} "
        f"videos={videos.shape} steps={a.steps}x{a.rounds}"
    )
    for depth, (w, b) in results.items():
        print(
            f"prefetch {depth}: wait median {median_ms(w):.1f} ms (p90 {np.percentile(w, 90) * 1e3:.1f}), "
            f"busy step median {median_ms(b):.0f} ms"
        )


if __name__ == "__main__":
    main()
