"""Streamed open-loop evaluation of one run: eval/curves.csv, eval/summary.csv, samples/.

Predictions are produced one batch of test videos at a time and reduced to per-frame
scores immediately; only (videos x samples x horizon) numbers per metric are kept.
With several samples, `best` picks per video the sample with the best time-averaged
score (as SVG and CW-VAE report) and `mean` averages over samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.memory import apply_allocator_policy
from benchmarks.metrics import FRAME_METRICS
from benchmarks.metrics.fvd import MIN_VIDEOS, FVDStream, fvd_lengths
from benchmarks.metrics.i3d import VERSION as I3D_VERSION
from benchmarks.protocol import ProtocolError, check_context, frame_scores, open_loop_chunks, to_video_tensor
from rundir.run import write_evaluation
from rundir.stats import AGGREGATES, METRICS, best_sample, metric_info, reduce_samples, t_interval


def metric_functions(cfg) -> tuple[dict, dict]:
    """({name: fn} scoring the predictions clipped to [0, 1], {name: fn} scoring them unclipped).

    Unclipped: the official-mode metrics (`ssim_official`, `psnr_official`), and with
    `eval.mode=official` every metric, `ssim` and `psnr` then in their official form."""
    unknown = [m for m in cfg.eval.metrics if m not in METRICS]
    if unknown:
        raise ProtocolError(f"unknown metric(s) {unknown} in eval.metrics; valid: {sorted(METRICS)}")
    clipped, raw = {}, {}
    official_mode = cfg.eval.mode == "official"
    for name in cfg.eval.metrics:
        if name not in FRAME_METRICS:
            continue  # set-level metrics (FVD) are computed elsewhere
        metric = FRAME_METRICS[name]
        fn = metric.official if (official_mode and metric.official) else metric.fn
        (raw if metric.raw or official_mode else clipped)[name] = fn
    return clipped, raw


def aggregate(scores: dict[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """scores {metric: (N, n_samples, horizon)} -> (curves, summary) tables."""
    curve_rows, summary_rows = [], []
    for name, s in scores.items():
        higher = metric_info(name).higher_is_better
        for agg in AGGREGATES:
            v = reduce_samples(s, agg, higher)  # (N, horizon)
            mean, lo, hi = t_interval(v, axis=0)
            for t in range(v.shape[1]):
                curve_rows.append(
                    dict(metric=name, aggregate=agg, t=t + 1, mean=mean[t], ci_low=lo[t], ci_high=hi[t], n=len(v))
                )
            m, lo, hi = t_interval(v.mean(1))  # over videos of the time-averaged score
            summary_rows.append(
                dict(metric=name, aggregate=agg, value=float(m), ci_low=float(lo), ci_high=float(hi), n=len(v))
            )
    return pd.DataFrame(curve_rows), pd.DataFrame(summary_rows)


def paper_fvd_setting(cfg) -> tuple[int, int] | None:
    """(videos, predicted frames) FVD covers at the paper preset for this model and dataset."""
    from benchmarks.config import resolve_config

    try:
        p = resolve_config(cfg.model_name, cfg.dataset, "paper")
    except Exception:  # e.g. a model file that has moved; then there is nothing to compare with
        return None
    videos = p.eval.n_videos if p.eval.n_videos > 0 else getattr(p.data, "n_test", 0)
    videos = min(videos, p.eval.fvd_videos) if p.eval.fvd_videos > 0 else videos
    frames = p.data.test_length - p.eval.context
    frames = min(frames, p.eval.fvd_frames) if p.eval.fvd_frames > 0 else frames
    return (videos, frames) if videos > 0 else None


def fvd_setup(cfg, n_videos: int, horizon: int) -> tuple[FVDStream, str]:
    """The FVD accumulator of this evaluation and a note saying where it departs from the paper."""
    e = cfg.eval
    frames = min(e.fvd_frames, horizon) if e.fvd_frames > 0 else horizon
    videos = min(e.fvd_videos, n_videos) if e.fvd_videos > 0 else n_videos
    lengths = fvd_lengths(e.fvd_lengths, frames)
    notes = []
    paper = paper_fvd_setting(cfg)
    if paper and (videos < paper[0] or frames < paper[1]):
        notes.append(
            f"FVD on {videos} videos x {frames} predicted frames, fewer than the paper protocol's "
            f"{paper[0]} x {paper[1]}: not comparable with published FVD"
        )
    if videos < MIN_VIDEOS:
        notes.append(f"FVD undefined with {videos} video(s): it needs >= {MIN_VIDEOS}; raise eval.n_videos/fvd_videos")
    if not lengths:
        notes.append(f"FVD undefined: I3D needs >= 9 predicted frames, FVD covers {frames}")
    if e.n_samples > 1:
        notes.append("fvd mean: all samples pooled; best: per video the best sample by the first per-frame metric")
    note = "; ".join(notes)
    if note:
        print(f"note: {note}")
    return FVDStream(lengths if videos >= MIN_VIDEOS else [], videos), note


def fvd_tables(
    stream: FVDStream, arrays: dict[str, np.ndarray], note: str, frames: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """FVD rows for curves.csv (t = subsequence length) and summary.csv (the whole prediction)."""
    best = None
    if arrays:  # best-of-N by the first per-frame metric, as `aggregate` picks it
        name, s = next(iter(arrays.items()))
        best = best_sample(s[: stream.n_videos], metric_info(name).higher_is_better)  # (N,)
    values = stream.result(best) if stream.lengths else {frames: (np.nan, np.nan)}  # {L: (pooled, best)}
    curve_rows, summary_rows = [], []
    for length, (pooled, chosen) in values.items():
        for agg, v in (("best", chosen), ("mean", pooled)):
            row = dict(metric="fvd", aggregate=agg, mean=v, ci_low=np.nan, ci_high=np.nan, n=stream.n_videos)
            row.update(notes=note, version=I3D_VERSION)
            curve_rows.append(dict(row, t=length))
            if length == max(values):
                summary_rows.append(dict(row, value=row.pop("mean")))
    return pd.DataFrame(curve_rows), pd.DataFrame(summary_rows)


def evaluate(model, cfg, test_videos: np.ndarray, run_dir: Path, device, progress: bool = True) -> pd.DataFrame:
    """Evaluate `model` open loop on `test_videos` (N, T, H, W, C) uint8; write eval/ and samples/."""
    from rich.progress import Progress

    from benchmarks.progress import is_terminal

    e = cfg.eval
    n_videos = len(test_videos) if e.n_videos <= 0 else min(e.n_videos, len(test_videos))
    length = cfg.data.test_length
    if test_videos.shape[1] < length:
        raise ProtocolError(
            f"test videos have {test_videos.shape[1]} frames but data.test_length is {length}; "
            "prepare longer videos or lower data.test_length"
        )
    check_context(model, e.context, length)
    apply_allocator_policy()  # blocks up to 1 GiB in the heap, no trim (benchmarks/memory.py); idempotent
    clipped_fns, raw_fns = metric_functions(cfg)
    fns = {**clipped_fns, **raw_fns}
    model.eval()
    scores: dict[str, list] = {name: [] for name in cfg.eval.metrics if name in fns}  # in eval.metrics' order
    saved_gt, saved_pred = [], []
    fvd = fvd_setup(cfg, n_videos, length - e.context) if "fvd" in e.metrics else None  # (stream, note)
    # a transient bar: on a terminal only (in a log it would leave an empty line behind)
    with Progress(disable=not (progress and is_terminal()), transient=True) as bar:
        what = " + FVD" if fvd else ""
        task = bar.add_task(f"open-loop eval{what} ({n_videos} videos x {length - e.context} frames)", total=n_videos)
        horizon = length - e.context
        fvd_window = max(fvd[0].lengths, default=0) if fvd else 0  # predicted frames FVD needs
        for start in range(0, n_videos, e.batch_size):
            stop = min(start + e.batch_size, n_videos)
            keep = max(0, min(stop, e.save_samples) - start)  # videos of this batch saved to samples/
            context = to_video_tensor(test_videos[start:stop, : e.context], device)  # (B, Tc, C, H, W)
            chunks = open_loop_chunks(
                model,
                context,
                horizon,
                e.n_samples,
                seed=cfg.seed * 1_000_003 + start,
                chunk=e.chunk,
                raw=bool(raw_fns),  # unclipped decoder means where a model has them (CW-VAE)
                use_obs=e.use_obs,
            )
            batch_scores = {name: [] for name in scores}
            fvd_real, fvd_fake, kept = (
                [context[:, :0]],
                [context[:, None, :0].expand(-1, e.n_samples, -1, -1, -1, -1)],
                [],
            )
            wants_fvd = fvd and (fvd[0].max_videos <= 0 or fvd[0].n_videos < fvd[0].max_videos)
            done = 0
            for raw in chunks:  # (B, n, c, C, H, W): memory stays one chunk (plus FVD's window)
                preds = raw.clamp(0, 1) if raw_fns else raw  # what the model predicts without raw=True
                size = preds.shape[2]
                first = e.context + done
                target = to_video_tensor(test_videos[start:stop, first : first + size], device)  # (B, c, C, H, W)
                for name, value in {
                    **frame_scores(preds, target, clipped_fns),
                    **frame_scores(raw, target, raw_fns),
                }.items():
                    batch_scores[name].append(value.numpy())
                if wants_fvd and done < fvd_window:
                    fvd_real.append(target[:, : fvd_window - done])
                    fvd_fake.append(preds[:, :, : fvd_window - done])
                if keep:
                    kept.append((preds[:keep] * 255).round().byte().permute(0, 1, 2, 4, 5, 3).cpu())
                done += size
            for name, parts in batch_scores.items():
                scores[name].append(np.concatenate(parts, axis=2))  # (B, n, horizon)
            if wants_fvd:
                fvd[0].update(torch.cat(fvd_real, 1), torch.cat(fvd_fake, 2))  # (B, L, ...), (B, n, L, ...)
            if keep:
                saved_gt.append(test_videos[start : start + keep, :length])
                saved_pred.append(torch.cat(kept, 2).numpy())  # (keep, n, horizon, H, W, C) uint8
            bar.advance(task, stop - start)
    arrays = {name: np.concatenate(v) for name, v in scores.items()}  # (N, n_samples, horizon)
    curves, summary = aggregate(arrays)
    if "lpips" in arrays:  # learned metrics name their weights in the tables
        from benchmarks.metrics.lpips import VERSION

        for table in (curves, summary):
            table.loc[table["metric"] == "lpips", "version"] = VERSION
    if fvd:
        frames = min(e.fvd_frames, length - e.context) if e.fvd_frames > 0 else length - e.context
        fvd_curves, fvd_summary = fvd_tables(fvd[0], arrays, fvd[1], frames)
        curves = pd.concat([curves, fvd_curves], ignore_index=True)
        summary = pd.concat([summary, fvd_summary], ignore_index=True)
    samples = None
    if saved_gt:  # gt (S, T, H, W, C) and pred (S, n_samples, horizon, H, W, C), uint8
        samples = {"gt": np.concatenate(saved_gt), "pred": np.concatenate(saved_pred), "context": e.context}
    write_evaluation(run_dir, curves, summary, arrays, samples)  # summary.csv last: marks it complete
    return summary
