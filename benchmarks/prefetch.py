"""Training batches made ahead, in a background thread, while the model trains on the current one.

    with Prefetcher(sampler, device, depth=2, count=steps) as batches:
        video = batches.next()  # (B / world, T, C, H, W) float in [0, 1], on `device`
        ... save(batches.state())  # the sampler's state after the batches consumed so far

A thread draws each global batch from the `BatchSampler` (numpy's gather from the memory-mapped
uint8 array releases the GIL), takes this rank's slice of it (benchmarks/distributed.py) and turns
it into a tensor, at most `depth` batches ahead of the consumer. On CUDA the uint8 slice is copied
into pinned host memory, sent to the device with `non_blocking=True` on a side stream and converted
to float there; the consumer's stream waits on an event recorded after that, so it never reads a
half-copied batch. On the CPU the thread writes the float batch into a tensor the consumer allocated
(no pinning: `pin_memory` needs CUDA). depth=0 makes each batch when it is asked for, in the calling
thread, as the trainer did before.

The batches are the same, in the same order, with any depth: one sampler draws them in turn.
Because the thread draws ahead, the sampler's own state is past the batches consumed; `state()`
is the state recorded with the last consumed batch (the state before the first one until then),
which is what a checkpoint saves, so a resumed run draws the batches an uninterrupted one would.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from benchmarks import distributed
from benchmarks.protocol import to_video_tensor

THREAD_NAME = "cwbench-prefetch"  # (tests look for it)
POLL_S = 0.1  # how often the thread, waiting for a free slot, checks whether it should stop


@dataclass
class Prepared:
    """One batch as the thread hands it over: the video (or the error that stopped the thread)."""

    video: Tensor | None  # (B / world, T, C, H, W) float in [0, 1], on the device
    state: dict | None  # the sampler's state right after drawing it
    ready: torch.cuda.Event | None = None  # CUDA: recorded on the copy stream after the conversion
    error: BaseException | None = None


class Prefetcher:
    """`count` batches (None: without end) of `sampler` for `rank` of `world_size`, `depth` ahead.

    A context manager: the thread starts on entry and is stopped and joined on exit, normal or not.
    The thread draws a batch only when it holds a slot, and the consumer gives one back with each batch
    it takes, so at most `depth` batches are drawn ahead. On the CPU a slot is the float tensor the
    batch is written into, allocated here in the consumer's thread: glibc serves a thread's large
    allocations from that thread's arena with mmap, and the consumer's free of such a batch would
    unmap it (~10 ms per paper-size batch on this CPU) where the main arena reuses the memory (the
    allocator policy of benchmarks/memory.py). On CUDA a slot is only a permit."""

    def __init__(self, sampler, device, depth: int = 2, rank: int = 0, world_size: int = 1, count: int | None = None):
        if depth < 0:
            raise ValueError(f"train.prefetch={depth} is out of range; valid: >= 0 (0 = off)")
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:  # the thread sets it: it needs the index
            device = torch.device("cuda", torch.cuda.current_device())
        self.sampler, self.device, self.depth = sampler, device, depth
        self.rank, self.world_size, self.count = rank, world_size, count
        self._state = sampler.state()  # before any batch: what a checkpoint saves until one is consumed
        self._taken = self._given = 0  # batches handed out; slots given to the thread
        self._slots: queue.Queue[Tensor | None] = queue.Queue()
        self._ready: queue.Queue[Prepared] = queue.Queue()  # at most `depth` items: one per slot
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        cuda = self.device.type == "cuda"
        self._stream = torch.cuda.Stream(self.device) if cuda and depth > 0 else None

    # ------------------------------------------------------------ consumer side

    def __enter__(self) -> Prefetcher:
        if self.depth > 0 and self._thread is None:
            for _ in range(self.depth):
                self._give_slot()
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def next(self) -> Tensor:
        """The next batch: (B / world, T, C, H, W) float in [0, 1] on the device."""
        if self.count is not None and self._taken >= self.count:
            raise RuntimeError(f"the prefetcher was asked for batch {self._taken + 1} of {self.count}")
        if self.depth == 0:
            item = self._prepare(None)
        else:
            if self._thread is None:
                raise RuntimeError("a Prefetcher with depth > 0 must be entered (`with`): that starts its thread")
            item = self._ready.get()
            if item.error is not None:
                raise item.error
            if item.ready is not None:
                stream = torch.cuda.current_stream(self.device)
                stream.wait_event(item.ready)  # the copy and conversion are done before anything reads it
                item.video.record_stream(stream)  # its memory (made on the copy stream) is in use here too
            self._give_slot()
        self._taken += 1
        self._state = item.state
        return item.video

    def state(self) -> dict:
        """The sampler's state after the batches consumed so far (not those made ahead)."""
        return self._state

    def close(self) -> None:
        """Stop the thread and wait for it (the batches made ahead are dropped); idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()  # it sees the stop within POLL_S: it never blocks on anything else
        for q in (self._slots, self._ready):
            while not q.empty():
                q.get_nowait()

    def _give_slot(self) -> None:
        if self.count is not None and self._given >= self.count:
            return  # every batch still to come has its slot
        self._given += 1
        if self.device.type != "cpu":
            self._slots.put(None)
            return
        B, T = self.sampler.batch_size // self.world_size, self.sampler.seq_len
        H, W, C = self.sampler.videos.shape[2:]
        self._slots.put(torch.empty(B, T, C, H, W))

    # ------------------------------------------------------------ producer side

    def _run(self) -> None:
        if self._stream is not None:
            torch.cuda.set_device(self.device)  # this thread's current device: the copy stream's
        while True:
            slot = self._next_slot()
            if slot is STOPPED:
                return
            try:
                item = self._prepare(slot)
            except BaseException as e:  # handed to the consumer, raised in the training loop
                item = Prepared(None, None, error=e)
            self._ready.put(item)
            if item.error is not None:
                return

    def _next_slot(self):
        while not self._stop.is_set():
            try:
                return self._slots.get(timeout=POLL_S)
            except queue.Empty:
                continue
        return STOPPED

    def _prepare(self, slot: Tensor | None) -> Prepared:
        batch = self.sampler.next()  # (B, T, H, W, C) uint8: the global batch, the same on every rank
        state = self.sampler.state()
        if self.world_size > 1:
            batch = distributed.shard(batch, self.rank, self.world_size)  # (B / world, T, H, W, C)
        if self._stream is not None:
            return self._to_cuda(batch, state)
        if slot is None:  # depth 0 (or a device other than the CPU and CUDA): as the trainer always made it
            return Prepared(to_video_tensor(batch, self.device), state)
        return Prepared(into_video(slot, batch), state)

    def _to_cuda(self, batch: np.ndarray, state: dict) -> Prepared:
        host = pinned_copy(batch)  # (B / world, T, H, W, C) uint8
        # the caching host allocator keeps `host` until the copy ends, though this function drops it
        with torch.cuda.stream(self._stream):
            x = host.to(self.device, non_blocking=True)  # from pinned memory: returns before the copy ends
            video = x.permute(0, 1, 4, 2, 3).float().div_(255)  # (B / world, T, C, H, W), as to_video_tensor
            ready = torch.cuda.Event()
            ready.record(self._stream)
        return Prepared(video, state, ready)


STOPPED = object()  # what _next_slot returns once close() was called


def into_video(out: Tensor, batch: np.ndarray) -> Tensor:
    """uint8 (B, T, H, W, C) written into float `out` (B, T, C, H, W) in [0, 1]: to_video_tensor's values."""
    out.copy_(torch.from_numpy(batch).permute(0, 1, 4, 2, 3))
    return out.div_(255)


def pinned_copy(batch: np.ndarray) -> Tensor:
    """A copy of the uint8 batch in page-locked host memory (which a non-blocking copy to CUDA needs)."""
    host = torch.empty(batch.shape, dtype=torch.uint8, pin_memory=True)
    np.copyto(host.numpy(), batch)
    return host
