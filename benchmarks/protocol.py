"""The open-loop protocol: the model sees `context` frames, then predicts alone.

`open_loop` is the only place where a model meets test videos. It hands the model a
copy of the context frames and nothing else (the runtime guard), seeds its sampling,
and checks what comes back. `evaluate` streams over a test split with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor


class ProtocolError(RuntimeError):
    """A model broke the protocol's contract (shape, range) or the setup is invalid."""


def check_context(model, context: int, length: int) -> None:
    multiple = model.context_multiple()
    if context % multiple:
        raise ProtocolError(
            f"{type(model).__name__} needs a context that is a multiple of {multiple} "
            f"(factor^(levels-1)); eval.context is {context}"
        )
    if length <= context:
        raise ProtocolError(
            f"test videos of {length} frames leave nothing to predict after {context} context frames; "
            "raise data.test_length or lower eval.context"
        )


def open_loop(
    model,
    video: Tensor,
    context: int = 36,
    n_samples: int = 1,
    seed: int = 0,
    raw: bool = False,
    use_obs: tuple[bool, ...] = (),
) -> Tensor:
    """video: (B, T, C, H, W) in [0, 1] -> predictions (B, n_samples, T - context, C, H, W) in [0, 1].

    The model is handed only `video[:, :context]` (a copy): it never sees a later frame.
    raw=True asks models that support it (CW-VAE) for unclipped decoder means, as the
    official evaluation scored them; the [0, 1] check is then skipped. use_obs (CW-VAE,
    bottom level first) makes levels marked False follow their prior during the context.
    """
    B, T, C, H, W = video.shape
    check_context(model, context, T)
    horizon = T - context
    observed = video[:, :context].clone()  # (B, context, C, H, W): a fresh tensor, no view of later frames
    with seeded(video.device, seed), torch.no_grad():
        preds = model.predict(observed, horizon, n_samples, **predict_options(model, raw, use_obs))
    check_predictions(model, preds, (B, n_samples, horizon, C, H, W), raw)
    return preds


def open_loop_chunks(
    model,
    context_frames: Tensor,
    horizon: int,
    n_samples: int = 1,
    seed: int = 0,
    chunk: int = 100,
    raw: bool = False,
    use_obs: tuple[bool, ...] = (),
) -> Iterator[Tensor]:
    """Like `open_loop`, but handed only the context (B, Tc, C, H, W) and yielding the
    predictions `chunk` frames at a time, (B, n_samples, <= chunk, C, H, W), so that memory
    stays one chunk for models that stream (`VideoModel.predict_chunks`). Same values as
    `open_loop` for the same seed."""
    B, Tc, C, H, W = context_frames.shape
    check_context(model, Tc, Tc + horizon)
    observed = context_frames.clone()
    done = 0
    with seeded(context_frames.device, seed), torch.no_grad():
        options = predict_options(model, raw, use_obs)
        for part in model.predict_chunks(observed, horizon, n_samples, chunk=chunk, **options):
            size = min(chunk, horizon - done)
            check_predictions(model, part, (B, n_samples, size, C, H, W), raw)
            done += size
            yield part
    if done != horizon:
        raise ProtocolError(f"{type(model).__name__}.predict_chunks yielded {done} frames, expected {horizon}")


@contextlib.contextmanager
def seeded(device: torch.device, seed: int):
    """Sampling seeded for the prediction, the caller's RNG state untouched afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def predict_options(model, raw: bool, use_obs: tuple[bool, ...]) -> dict:
    options = {}
    if raw and accepts(model, "raw"):
        options["raw"] = True
    if use_obs:
        if not accepts(model, "use_obs"):
            raise ProtocolError(f"{type(model).__name__}.predict has no use_obs option; clear eval.use_obs")
        options["use_obs"] = tuple(use_obs)
    return options


def check_predictions(model, preds: Tensor, expected: tuple, raw: bool) -> None:
    if tuple(preds.shape) != expected:
        raise ProtocolError(f"{type(model).__name__}.predict returned {tuple(preds.shape)}, expected {expected}")
    if not torch.isfinite(preds).all() or (not raw and (preds.min() < 0 or preds.max() > 1)):
        raise ProtocolError(
            f"{type(model).__name__}.predict must return finite values in [0, 1]; got "
            f"min {preds.min().item():.3g}, max {preds.max().item():.3g}"
        )


def accepts(model, option: str) -> bool:
    """Whether the model's predict takes the keyword `option`."""
    import inspect

    return option in inspect.signature(model.predict).parameters


def to_video_tensor(batch: np.ndarray, device) -> Tensor:
    """uint8 (B, T, H, W, C) -> float (B, T, C, H, W) in [0, 1]."""
    x = torch.from_numpy(np.array(batch, dtype=np.uint8)).to(device)  # a writable copy of the (memmap) slice
    return x.permute(0, 1, 4, 2, 3).float().div_(255)


def frame_scores(preds: Tensor, target: Tensor, metric_fns: dict) -> dict[str, Tensor]:
    """preds (B, n, h, C, H, W), target (B, h, C, H, W) -> {metric: (B, n, h)}."""
    B, n, h = preds.shape[:3]
    tgt = target[:, None].expand_as(preds)
    flat_p, flat_t = preds.flatten(0, 2), tgt.flatten(0, 2)  # (B*n*h, C, H, W)
    return {name: fn(flat_p, flat_t).reshape(B, n, h).cpu() for name, fn in metric_fns.items()}
