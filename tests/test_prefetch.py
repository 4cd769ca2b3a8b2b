"""The prefetching loader: the same batches in the same order at any depth, exact checkpoints and resume,
and a thread that is gone whenever train() returns or raises."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import prefetch
from benchmarks.checkpoint import LAST, PREV
from benchmarks.config import ConfigError, resolve_config
from benchmarks.distributed import shard
from benchmarks.prefetch import THREAD_NAME, Prefetcher
from benchmarks.protocol import to_video_tensor
from benchmarks.trainer import BatchSampler, NonFiniteLoss, TrainingInterrupted, build_seeded, train
from datasets import get_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = f"{REPO / 'tests' / 'data' / 'conv_next_frame.py'}:ConvNextFrame"  # deterministic: batches decide the loss
CPU = torch.device("cpu")
STEPS = 5


def videos(n: int = 12, t: int = 20) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (n, t, 8, 8, 1), dtype=np.uint8)  # (N, T, H, W, C)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def wait_until(condition, what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.01)


# ---------------------------------------------------------------- the loader alone


@pytest.mark.parametrize("rank,world", [(0, 1), (0, 2), (1, 2)])
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_same_batches_and_consumed_state_at_any_depth(depth, rank, world):
    data = videos()
    reference = BatchSampler(data, batch_size=4, seq_len=6, seed=3)
    with Prefetcher(BatchSampler(data, 4, 6, seed=3), CPU, depth, rank, world, count=6) as batches:
        assert batches.state() == reference.state()  # nothing consumed yet
        for _ in range(6):
            expected = to_video_tensor(shard(reference.next(), rank, world), CPU)  # (2 or 4, 6, 1, 8, 8)
            got = batches.next()
            assert got.shape == (4 // world, 6, 1, 8, 8) and got.dtype == torch.float32
            assert torch.equal(got, expected)
            assert batches.state() == reference.state()
    assert not prefetch_threads()


def test_state_is_that_of_the_consumed_batches_not_of_those_made_ahead():
    sampler = BatchSampler(videos(), 4, 6, seed=0)
    reference = BatchSampler(videos(), 4, 6, seed=0)
    with Prefetcher(sampler, CPU, depth=2) as batches:
        batches.next()
        reference.next()
        wait_until(lambda: batches._ready.qsize() == 2, "two batches made ahead")
        assert batches.state() == reference.state()  # what a checkpoint saves: after the one consumed
        time.sleep(0.3)
        reference.next(), reference.next()
        assert sampler.state() == reference.state()  # the sampler drew two ahead, and not one more
    assert not prefetch_threads()


def test_close_stops_a_thread_blocked_on_a_full_queue_and_is_idempotent():
    batches = Prefetcher(BatchSampler(videos(), 4, 6, seed=0), CPU, depth=1)  # count=None: no end of its own
    with batches:
        wait_until(lambda: batches._ready.qsize() == 1, "a batch made ahead")
        assert len(prefetch_threads()) == 1
    assert not prefetch_threads()
    batches.close()


class BrokenVideos:
    """A training array whose reads fail (a damaged memory-mapped file)."""

    shape = (12, 20, 8, 8, 1)

    def __getitem__(self, index):
        raise OSError("read error in train.npy")


def test_an_error_in_the_thread_is_raised_by_next_and_the_thread_ends():
    with pytest.raises(OSError, match="read error in train.npy"):
        with Prefetcher(BatchSampler(BrokenVideos(), 4, 6, seed=0), CPU, depth=2) as batches:
            batches.next()
    assert not prefetch_threads()


def test_count_is_a_limit_and_a_bad_depth_is_named():
    sampler, reference = BatchSampler(videos(), 4, 6, seed=0), BatchSampler(videos(), 4, 6, seed=0)
    with Prefetcher(sampler, CPU, depth=2, count=2) as batches:
        batches.next(), batches.next()
        with pytest.raises(RuntimeError, match="batch 3 of 2"):
            batches.next()
    reference.next(), reference.next()
    assert sampler.state() == reference.state()  # no batch drawn past the count
    with pytest.raises(ValueError, match=r"train.prefetch=-1 is out of range; valid: >= 0"):
        Prefetcher(BatchSampler(videos(), 4, 6, seed=0), CPU, depth=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory and non-blocking copies need CUDA")
def test_cuda_batches_come_through_pinned_memory_and_equal_the_cpu_ones(monkeypatch):
    pinned = []
    original = prefetch.pinned_copy
    monkeypatch.setattr(prefetch, "pinned_copy", lambda b: pinned.append(original(b)) or pinned[-1])
    data = videos(n=32, t=40)
    reference = BatchSampler(data, 8, 30, seed=1)
    cuda = torch.device("cuda")
    with Prefetcher(BatchSampler(data, 8, 30, seed=1), cuda, depth=2, count=8) as batches:
        for _ in range(8):
            got = batches.next()  # (8, 30, 1, 8, 8) on the GPU
            torch.cuda._sleep(1_000_000)  # the consumer's stream busy: a missing wait would show as a race
            assert got.is_cuda and torch.equal(got.cpu(), to_video_tensor(reference.next(), CPU))
    assert len(pinned) == 8 and all(h.is_pinned() for h in pinned)
    assert not prefetch_threads()


# ---------------------------------------------------------------- the config key


def test_prefetch_is_operational_and_checked():
    default = resolve_config("cwvae", "mmnist", "smoke")
    assert default.train.prefetch == 2
    for depth in (0, 1, 4):
        assert resolve_config("cwvae", "mmnist", "smoke", sets=[f"train.prefetch={depth}"]).hash() == default.hash()
    with pytest.raises(ConfigError, match=r"train.prefetch=-1 is out of range; valid: >= 0"):
        resolve_config("cwvae", "mmnist", "smoke", sets=["train.prefetch=-1"])


# ---------------------------------------------------------------- in train()


def setup(depth: int, model: str = TINY, steps: int = STEPS):
    sets = [f"train.steps={steps}", "train.ckpt_every=2", "train.batch_size=4", f"train.prefetch={depth}"]
    cfg = resolve_config(model, "mmnist", "smoke", sets=sets)
    data = get_dataset(cfg.data)
    data.ensure_ready(progress=False)
    return cfg, data.load("train")


def losses(run_dir: Path) -> list[tuple[int, float]]:
    lines = [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]
    return [(r["step"], r["train/loss"]) for r in lines]


def checkpoint(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def assert_same_training(a: Path, b: Path) -> None:
    assert losses(a) == losses(b)
    for name in (LAST, PREV):
        x, y = checkpoint(a / name), checkpoint(b / name)
        assert x["step"] == y["step"]
        assert x["sampler"] == y["sampler"], name
        for key in x["model"]:
            assert torch.equal(x["model"][key], y["model"][key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: trained without prefetching, not interrupted."""
    cfg, data = setup(0)
    run_dir = tmp_path_factory.mktemp("reference")
    train(build_seeded(cfg), cfg, data, run_dir, CPU, progress=False)
    return run_dir


@pytest.mark.parametrize("depth", [1, 2])
def test_train_with_prefetch_equals_train_without(depth, uninterrupted, tmp_path):
    cfg, data = setup(depth)
    train(build_seeded(cfg), cfg, data, tmp_path, CPU, progress=False)
    assert not prefetch_threads()
    assert len(losses(tmp_path)) == STEPS
    # prev.pt is at step 4, when the thread had drawn ahead: its sampler state is still that of step 4
    assert checkpoint(tmp_path / PREV)["step"] == 4
    assert_same_training(tmp_path, uninterrupted)


class Killed(Exception):
    pass


def dying(model, at: int, how: str):
    """model.loss, stopping training during step `at` (after the checkpoint of step 2) in one of three ways."""
    original, calls = model.loss, {"n": 0}

    def loss(video):
        calls["n"] += 1
        result = original(video)
        if calls["n"] == at:
            if how == "exception":
                raise Killed
            if how == "sigint":
                os.kill(os.getpid(), signal.SIGINT)  # the trainer finishes this step, saves it, then stops
            if how == "nan":
                return result[0] * float("nan"), result[1]
        return result

    return loss


@pytest.mark.parametrize(
    "how,error,saved",
    [("exception", Killed, 2), ("sigint", TrainingInterrupted, 3), ("nan", NonFiniteLoss, 2)],
)
def test_interrupted_with_prefetch_then_resumed_equals_the_uninterrupted_run(
    how, error, saved, uninterrupted, tmp_path
):
    cfg, data = setup(2)
    model = build_seeded(cfg)
    model.loss = dying(model, 3, how)
    with pytest.raises(error):
        train(model, cfg, data, tmp_path, CPU, progress=False)
    assert not prefetch_threads()
    assert checkpoint(tmp_path / LAST)["step"] == saved

    result = train(build_seeded(cfg), cfg, data, tmp_path, CPU, progress=False)
    assert result.resumed_from == saved and result.steps == STEPS
    assert not prefetch_threads()
    assert_same_training(tmp_path, uninterrupted)


def test_cwvae_trains_the_same_with_and_without_prefetch(tmp_path):
    """A model that samples from torch's RNG: the thread draws nothing from it (the losses and weights
    would differ)."""
    runs = []
    for depth in (0, 2):
        cfg, data = setup(depth, model="cwvae", steps=3)
        train(build_seeded(cfg), cfg, data, tmp_path / str(depth), CPU, progress=False)
        runs.append(tmp_path / str(depth))
    assert losses(runs[0]) == losses(runs[1]) and len(losses(runs[0])) == 3
    a, b = (checkpoint(r / LAST) for r in runs)
    assert a["sampler"] == b["sampler"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
