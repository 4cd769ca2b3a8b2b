"""The conformance kit: does a model keep the VideoModel contract the harness relies on?

`run_checks("path/to/file.py:Name")` (or a registered name) builds the model at a preset's
sizes (the default preset unless told; smoke is the fastest) and runs, in seconds on a CPU,
on synthetic moving-square videos:

    construct     builds with no arguments and from its resolved config
    loss          loss(video) returns a finite scalar and (trainable models) finite gradients
    predict       predict returns (B, n_samples, horizon, C, H, W) floats in [0, 1]
    seeded        the same seed gives the same samples (randomness from torch's seeded RNG)
    chunked       predict_chunks (the evaluation's streaming path) yields what predict returns
    context_only  predictions do not change when the frames after the context are NaN
    training      a few Adam steps on one fixed batch lower the loss (skipped: nothing to train)
    checkpoint    a fresh instance loaded from the state_dict predicts the same

Predictions go through `benchmarks.protocol.open_loop`, exactly as in an evaluation. A check
that depends on a failed one is skipped and says which. `python bench.py check-model` prints
the results as a table.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from benchmarks.config import DEFAULT_PRESET
from benchmarks.protocol import ProtocolError, open_loop, open_loop_chunks, to_video_tensor

PASS, FAIL, SKIP = "pass", "fail", "skip"

CHECKS: dict[str, str] = {
    "construct": "builds with no arguments and from its config",
    "loss": "loss is a finite scalar with gradients",
    "predict": "predict returns (B, n_samples, horizon, C, H, W) in [0, 1]",
    "seeded": "the same seed gives the same samples",
    "chunked": "predict_chunks yields the same predictions as predict",
    "context_only": "frames after the context do not change predictions",
    "training": "a few Adam steps lower the loss",
    "checkpoint": "a state_dict round trip gives the same predictions",
}


class KitInputError(ValueError):
    """The model to check could not be named (unknown name, missing file, unknown dataset or preset)."""


class CheckFailed(Exception):
    """A check's failure; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class KitConfig:
    n_videos: int = 2  # videos per batch (B)
    horizon: int = 4  # predicted frames after the context
    n_samples: int = 2  # samples per video
    steps: int = 5  # Adam steps on one fixed batch for the training check
    seed: int = 0  # seeds the model's initialisation, the videos and the sampling
    preset: str = DEFAULT_PRESET  # the preset whose model sizes are built


@dataclass
class CheckResult:
    name: str  # a key of CHECKS
    status: str  # pass | fail | skip
    message: str = ""  # what was measured, or what was wrong and what to do
    seconds: float = 0.0


@dataclass
class KitReport:
    model: str
    dataset: str
    setup: str  # e.g. "2 videos x 40 frames of 64x64x1, context 36, 2 samples"
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.status != FAIL for r in self.results)

    def status(self, name: str) -> str:
        return next((r.status for r in self.results if r.name == name), SKIP)


def synthetic_videos(n: int, length: int, size: int, channels: int, seed: int) -> np.ndarray:
    """n videos of one bright square bouncing in a dark frame: uint8 (n, length, size, size, channels)."""
    rng = np.random.default_rng([seed, 11])
    side = max(2, size // 5)
    videos = np.zeros((n, length, size, size, channels), np.uint8)
    for i in range(n):
        pos = rng.uniform(0, size - side, 2)
        vel = rng.uniform(-3, 3, 2)
        color = rng.integers(128, 256, channels)
        for t in range(length):
            y, x = pos.round().astype(int)
            videos[i, t, y : y + side, x : x + side] = color
            pos += vel
            for d in range(2):  # bounce off the walls
                if not 0 <= pos[d] <= size - side:
                    vel[d] = -vel[d]
                    pos[d] = np.clip(pos[d], 0, size - side)
    return videos


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().nan_to_num(nan=float("inf")).max())


def _timed(name: str, fn: Callable[[], str], report: KitReport, needs: tuple[str, ...] = ()) -> None:
    """Run one check: returns normally (pass, with a message), raises CheckFailed (fail) or anything else (fail)."""
    failed = [n for n in needs if report.status(n) != PASS]
    if failed:
        report.results.append(CheckResult(name, SKIP, f"needs the {', '.join(repr(n) for n in failed)} check to pass"))
        return
    tic = time.perf_counter()
    try:
        status, message = PASS, fn()
        if isinstance(message, tuple):
            status, message = message
    except CheckFailed as e:
        status, message = FAIL, str(e)
    except Exception as e:  # the model raised: show where
        status, message = FAIL, f"raised {type(e).__name__}: {e}"
    report.results.append(CheckResult(name, status, message, time.perf_counter() - tic))


def run_checks(
    model: str, dataset: str = "mmnist", sets: list[str] | tuple[str, ...] = (), kit: KitConfig = KitConfig()
) -> KitReport:
    """Run every check on `model` (a registered name or path/to/file.py:Name); see the module docstring."""
    from benchmarks.config import ConfigError, resolve_config
    from benchmarks.trainer import make_optimizer, rng_state, seed_everything, set_rng_state
    from models.base import get_model_class

    try:
        model_cls = get_model_class(model)
    except KeyError as e:
        raise KitInputError(e.args[0]) from None
    state: dict = {}
    report = KitReport(model=model, dataset=dataset, setup="")

    def construct() -> str:
        try:
            model_cls()
        except Exception as e:
            raise CheckFailed(
                f"{model_cls.__name__}() failed ({type(e).__name__}: {e}): give every hyperparameter a default "
                "in the config dataclass (config_class)"
            ) from None
        try:
            cfg = resolve_config(model, dataset, kit.preset, sets=sets, seed=kit.seed)
        except ConfigError as e:
            raise CheckFailed(f"its config does not resolve: {e}") from None
        seed_everything(kit.seed)
        state["cfg"], state["model"] = cfg, cfg.build_model()
        return f"{state['model'].num_params():,} trainable parameters at the {kit.preset} preset"

    # The first check may fail on a name error of the dataset or preset: that is bad input.
    try:
        cfg0 = resolve_config(model, dataset, kit.preset, sets=sets, seed=kit.seed)
    except ConfigError as e:
        if "unknown dataset" in str(e) or "unknown preset" in str(e):
            raise KitInputError(str(e)) from None
        cfg0 = None
    data = cfg0.data if cfg0 is not None else None
    size, channels = (data.size, data.channels) if data is not None else (64, 1)
    context = cfg0.eval.context if cfg0 is not None else 36
    seq_len = cfg0.train.seq_len if cfg0 is not None else 12
    length = max(context + kit.horizon, seq_len)
    videos = synthetic_videos(kit.n_videos, length, size, channels, kit.seed)  # (B, T, H, W, C) uint8
    video = to_video_tensor(videos, "cpu")  # (B, T, C, H, W) in [0, 1]
    video = video[:, : context + kit.horizon]  # the test clip: context + horizon frames
    batch = to_video_tensor(videos[:, :seq_len], "cpu")  # (B, seq_len, C, H, W) training window
    report.setup = (
        f"{kit.n_videos} videos x {context + kit.horizon} frames of {size}x{size}x{channels}, context {context}, "
        f"{kit.n_samples} samples; training window {seq_len} frames; {kit.preset} preset sizes"
    )

    def predictions(m, clip: Tensor, seed: int = kit.seed) -> Tensor:
        return open_loop(m, clip, context, kit.n_samples, seed=seed)  # (B, n, horizon, C, H, W)

    def loss_check() -> str:
        m = state["model"]
        m.observe_training_data(videos)  # as the trainer does before training
        m.train()
        torch.manual_seed(kit.seed)
        out = m.loss(batch)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise CheckFailed(f"loss(video) must return (loss, terms), got {type(out).__name__}")
        loss, terms = out
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise CheckFailed(f"loss must be a 0-dim tensor (a scalar), got {shape}: reduce it with .mean() or .sum()")
        if not torch.isfinite(loss):
            raise CheckFailed(f"loss is {loss.item()} on videos (B, T, C, H, W) = {tuple(batch.shape)} in [0, 1]")
        if not isinstance(terms, dict):
            raise CheckFailed(f"terms must be a dict of logged scalars, got {type(terms).__name__}")
        for k, v in terms.items():
            if isinstance(v, Tensor) and v.numel() != 1:
                raise CheckFailed(f"logged term {k!r} has shape {tuple(v.shape)}; each term must be a scalar")
        if not m.trainable:
            return f"loss {loss.item():.4g}; no trainable parameters, so no gradients to check"
        if not loss.requires_grad:
            raise CheckFailed(
                "loss does not require grad: it is detached from the parameters "
                "(computed under torch.no_grad(), .item() or .detach()?)"
            )
        m.zero_grad(set_to_none=True)
        loss.backward()
        named = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
        bad = [n for n, p in named if p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            raise CheckFailed(f"non-finite gradients in {len(bad)} parameter tensor(s), e.g. {bad[:3]}")
        missing = [n for n, p in named if p.grad is None]
        if len(missing) == len(named):
            raise CheckFailed(
                "loss.backward() reached no parameter: the loss does not depend on the model's parameters"
            )
        m.zero_grad(set_to_none=True)
        note = f"; note: {len(missing)} parameter tensor(s) get no gradient, e.g. {missing[:2]}" if missing else ""
        return f"loss {loss.item():.4g}, {len(terms)} logged term(s), finite gradients{note}"

    def predict_check() -> str:
        m = state["model"]
        m.eval()
        preds = predictions(m, video)
        if not preds.is_floating_point():
            raise CheckFailed(f"predict returned dtype {preds.dtype}; return floats in [0, 1]")
        state["preds"] = preds
        return f"shape {tuple(preds.shape)}, values in [{preds.min().item():.3g}, {preds.max().item():.3g}]"

    def seeded_check() -> str:
        m = state["model"]
        again = predictions(m, video)
        diff = max_abs_diff(again, state["preds"])
        if diff > 0:
            raise CheckFailed(
                f"two predictions with seed {kit.seed} differ (max |diff| {diff:.3g}): draw randomness from torch's "
                "global RNG (torch.randn, torch.rand_like, ...), which the protocol seeds; not from numpy, random, "
                "a private torch.Generator or the clock"
            )
        other = predictions(m, video, seed=kit.seed + 1)
        varies = max_abs_diff(other, state["preds"]) > 0
        spread = kit.n_samples > 1 and max_abs_diff(state["preds"][:, 1:], state["preds"][:, :1]) > 0
        kind = "stochastic: another seed gives other samples" if varies else "deterministic: every seed gives the same"
        return f"identical under one seed; {kind}" + ("; samples differ" if spread else "")

    def context_only_check() -> str:
        m = state["model"]
        poisoned = video.clone()
        poisoned[:, context:] = float("nan")  # (B, T, C, H, W): every frame after the context is NaN
        try:  # a model that keeps state from the videos it was shown would now hold NaNs
            with torch.no_grad():
                m.loss(poisoned)
        except Exception:
            pass
        advice = "predict must depend only on the context it is given, not on state kept from loss() or earlier calls"
        try:
            preds = predictions(m, poisoned)
        except ProtocolError as e:
            raise CheckFailed(
                f"predictions changed when the frames after the context were NaN ({e}): {advice}"
            ) from None
        diff = max_abs_diff(preds, state["preds"])
        if diff > 0:
            raise CheckFailed(
                f"predictions changed (max |diff| {diff:.3g}) when the frames after the context were NaN: {advice}"
            )
        return "predictions unchanged with NaN after the context"

    def chunked_check() -> str:
        m, chunk = state["model"], max(1, kit.horizon - 1)  # two chunks: horizon - 1 frames, then 1
        parts = list(open_loop_chunks(m, video[:, :context], kit.horizon, kit.n_samples, seed=kit.seed, chunk=chunk))
        diff = max_abs_diff(torch.cat(parts, dim=2), state["preds"])
        if diff > 0:
            raise CheckFailed(
                f"predict_chunks(chunk={chunk}) yields other predictions than predict (max |diff| {diff:.3g}) under "
                "the same seed: evaluation streams through predict_chunks, so both must draw the same samples"
            )
        return f"{len(parts)} chunks of <= {chunk} frames equal predict's output"

    def training_check():
        m, cfg = state["model"], state["cfg"]
        if not m.trainable:
            return SKIP, "not applicable: no trainable parameters (nothing to train)"
        opt = make_optimizer(m, cfg)
        clip = cfg.train.clip_grad if cfg.train.clip_grad > 0 else float("inf")
        m.train()
        losses = []
        for _ in range(kit.steps + 1):
            torch.manual_seed(kit.seed)  # the same noise at every step: one fixed objective
            loss, _ = m.loss(batch)
            losses.append(loss.item())
            if not np.isfinite(losses[-1]):
                raise CheckFailed(
                    f"loss became {losses[-1]} after {len(losses) - 1} Adam steps (lr {cfg.train.lr:g}); "
                    "lower train.lr or check the loss for log(0) and division by zero"
                )
            if len(losses) == kit.steps + 1:
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
            opt.step()
        m.zero_grad(set_to_none=True)
        first, last = losses[0], losses[-1]
        if not last < first:
            raise CheckFailed(
                f"loss did not decrease: {first:.5g} -> {last:.5g} after {kit.steps} Adam steps (lr {cfg.train.lr:g}) "
                "on one fixed batch with fixed noise; check that the loss is what should be minimised and that it "
                "depends on the parameters, or raise train.lr"
            )
        return f"loss {first:.5g} -> {last:.5g} after {kit.steps} Adam steps (lr {cfg.train.lr:g})"

    def checkpoint_check() -> str:
        m, cfg = state["model"], state["cfg"]
        m.eval()
        expected = predictions(m, video)
        buffer = io.BytesIO()
        torch.save(m.state_dict(), buffer)
        buffer.seek(0)
        seed_everything(kit.seed + 1)  # a different initialisation: everything must come from the checkpoint
        fresh = cfg.build_model()
        fresh.observe_training_data(videos)  # as the trainer does before it loads a checkpoint
        try:
            fresh.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=True))
        except RuntimeError as e:
            raise CheckFailed(f"load_state_dict into a fresh instance failed: {e}") from None
        fresh.eval()
        diff = max_abs_diff(predictions(fresh, video), expected)
        if diff > 0:
            raise CheckFailed(
                f"a fresh instance loaded from the state_dict predicts differently (max |diff| {diff:.3g}): keep "
                "everything predict uses in parameters or buffers (self.register_buffer), not in plain attributes"
            )
        return f"{len(m.state_dict())} tensors saved and loaded; same predictions"

    saved = rng_state()  # the kit seeds the global RNGs; the caller's streams are restored after it
    try:
        _timed("construct", construct, report)
        _timed("loss", loss_check, report, needs=("construct",))
        _timed("predict", predict_check, report, needs=("construct",))
        _timed("seeded", seeded_check, report, needs=("predict",))
        _timed("chunked", chunked_check, report, needs=("seeded",))
        _timed("context_only", context_only_check, report, needs=("seeded",))
        _timed("training", training_check, report, needs=("loss",))
        _timed("checkpoint", checkpoint_check, report, needs=("seeded",))
    finally:
        set_rng_state(saved)
    return report
