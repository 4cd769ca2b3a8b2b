"""Trainer loggers: TensorBoard event files and a W&B offline run hold the JSONL's numbers, the quick
look (sample strip, validation score) changes no trained weight, a missing package is one line."""

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from benchmarks.config import ConfigError, resolve_config
from benchmarks.loggers import STRIP_TAG, open_loggers, quick_look, sample_strip, wandb_id
from benchmarks.trainer import build_seeded, train
from datasets import get_dataset
from rundir.run import eval_key

CPU = torch.device("cpu")
# a validation split of 2 of the 8 smoke training videos, long enough for the 36 context frames
VAL = ["data.val_videos=2", "data.train_length=48"]
LOOK = ["train.eval_every=2", "train.eval_videos=2", "train.val_horizon=8", "train.log_every=1"]


def setup(sets=(), steps=4):
    """(cfg, the videos it trains on, its dataset)."""
    cfg = resolve_config("cwvae", "mmnist", "smoke", sets=[f"train.steps={steps}", *sets])
    data = get_dataset(cfg.data)
    data.ensure_ready(progress=False)
    videos = data.load("train")
    if cfg.data.val_videos:
        from datasets.validation import carve_validation

        videos = carve_validation(data, videos, cfg.data.val_videos, cfg.data.val_seed)[0]
    return cfg, videos, data


def jsonl(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]


def test_tensorboard_events_hold_the_logged_values_the_strip_and_the_validation_score(tmp_path):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, videos, data = setup(["train.loggers=[jsonl,tensorboard]", *LOOK, *VAL])
    model = build_seeded(cfg)
    with open_loggers(cfg, tmp_path, CPU, data, data.load("test")) as loggers:
        assert loggers.validation and len(loggers.videos) == 2  # the held-out training videos, not the test set
        train(model, cfg, videos, tmp_path, CPU, progress=False, loggers=loggers)

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    expected = {"train/loss", "train/nll", "train/kl_level1", "train/kl_level2", "train/kl_level3"}
    expected |= {"train/grad_norm", "train/frames_per_s", "train/lr", "val/ssim", "val/psnr"}
    assert expected <= set(tags["scalars"])
    assert tags["images"] == [STRIP_TAG] and "config/text_summary" in tags["tensors"]
    log = jsonl(tmp_path)
    for tag in expected - {"val/ssim", "val/psnr"}:  # every logged step, the JSONL's value (float32)
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [r["step"] for r in log] == [1, 2, 3, 4]
        assert [s.value for s in scalars] == pytest.approx([r[tag] for r in log], rel=1e-6), tag
    assert events.Scalars("train/lr")[0].value == pytest.approx(cfg.train.lr)
    # every eval_every steps; the last one is the final model's, recomputed here
    assert [s.step for s in events.Scalars("val/ssim")] == [2, 4]
    strip, values, _ = quick_look(model, cfg, loggers.videos, CPU, validation=True)
    assert events.Scalars("val/ssim")[-1].value == pytest.approx(values["val/ssim"], rel=1e-6)
    assert events.Scalars("val/psnr")[-1].value == pytest.approx(values["val/psnr"], rel=1e-6)
    images = events.Images(STRIP_TAG)
    assert [i.step for i in images] == [2, 4]
    import io

    decoded = np.asarray(Image.open(io.BytesIO(images[-1].encoded_image_string)).convert("RGB"))
    assert np.array_equal(decoded, strip)

    # the quick look never changes training: the same weights as a run without any logger
    plain_cfg, _, _ = setup(["train.log_every=1", *VAL])
    assert eval_key(plain_cfg.to_dict()) == eval_key(cfg.to_dict())  # loggers are operational settings
    plain = build_seeded(plain_cfg)
    train(plain, plain_cfg, videos, tmp_path / "plain", CPU, progress=False)
    for (name, a), b in zip(model.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["train/loss"] for r in jsonl(tmp_path / "plain")] == [r["train/loss"] for r in log]


def test_without_a_validation_split_the_strip_shows_a_test_video_and_nothing_is_scored(tmp_path):
    cfg, _, data = setup(["train.loggers=[tensorboard]", *LOOK])
    test = data.load("test")
    loggers = open_loggers(cfg, tmp_path, CPU, data, test)
    assert not loggers.validation and loggers.videos is test
    strip, values, caption = quick_look(build_seeded(cfg), cfg, test, CPU, validation=False)
    assert values == {} and caption.startswith("test video 1:") and strip.shape[2] == 3
    short, _, data = setup(["train.loggers=[tensorboard]", "train.eval_every=2", "data.val_videos=2"])
    with pytest.raises(ConfigError, match="training videos of 24 frames.* nothing to predict after eval.context=36"):
        open_loggers(short, tmp_path, CPU, data, data.load("test"))


def test_sample_strip_layout():
    T, H, W, context = 20, 4, 5, 8
    gt = np.arange(T, dtype=np.uint8)[:, None, None, None] * np.ones((T, H, W, 1), np.uint8)  # frame t: value t
    pred = 100 + np.arange(T - context, dtype=np.uint8)[:, None, None, None] * np.ones((1, H, W, 1), np.uint8)
    strip = sample_strip(gt, pred, context, scale=1)
    # columns: context frames 1, 3, 6, 8 (context_indices), then horizons 1, 5, 10, 12 (chosen_horizons)
    assert strip.shape == (2 * H + 2, 8 * W + 7 * 2, 3)
    col = lambda c: slice(c * (W + 2), c * (W + 2) + W)  # noqa: E731
    assert [int(strip[0, col(c).start, 0]) for c in range(8)] == [0, 2, 5, 7, 8, 12, 17, 19]
    assert [int(strip[H + 2, col(c).start, 0]) for c in range(4, 8)] == [100, 104, 109, 111]
    assert (strip[H + 2 :, col(0)] == 255).all()  # the prediction row is blank under the context


def test_logger_settings_are_checked_and_change_no_run_identity():
    from benchmarks.config import LOGGERS
    from benchmarks.loggers import ALWAYS
    from benchmarks.loggers import LOGGERS as REGISTERED

    assert [ALWAYS, *REGISTERED] == list(LOGGERS)  # every valid name has its logger
    message = r"train.loggers=\[jsonl,tensorbord\]: tensorbord is not a valid choice; valid: jsonl, tensorboard, wandb"
    with pytest.raises(ConfigError, match=message):
        resolve_config("cwvae", "mmnist", "smoke", sets=["train.loggers=[jsonl,tensorbord]"])
    with pytest.raises(ConfigError, match=r"train.val_horizon=0 is out of range; valid: >= 1"):
        resolve_config("cwvae", "mmnist", "smoke", sets=["train.val_horizon=0"])
    cfg = resolve_config("cwvae", "mmnist", "smoke", sets=["train.loggers=tensorboard", "train.eval_every=5"])
    assert cfg.train.loggers == ("tensorboard",)
    old = cfg.to_dict()  # a config written before these keys existed keeps its run directory
    for key in ("loggers", "eval_every", "eval_videos", "val_horizon"):
        del old["train"][key]
    assert eval_key(old) == cfg.hash() == resolve_config("cwvae", "mmnist", "smoke").hash()


@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_a_missing_package_is_one_line_before_anything_is_written(name, out_dir, monkeypatch, capsys):
    from benchmarks.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == name else real(n, *a))
    argv = ["--model", "cwvae", "--preset", "smoke", "--out", str(out_dir), "--no-progress"]
    assert main([*argv, "--set", f"train.loggers=[jsonl,{name}]"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: train.loggers includes {name}, but the {name} package is not installed: pip install {name} "
        f"(or pip install -e '.[{name}]' in the checkout)\n"
    )
    assert not (out_dir / "runs").exists()


def test_wandb_ids_are_stable_and_valid():
    assert wandb_id("mmnist-cwvae-smoke-s0-1234abcd") == "mmnist-cwvae-smoke-s0-1234abcd"
    assert wandb_id("my set-My/Model:x") == "my-set-My-Model-x"
    long = wandb_id("x" * 100)
    assert len(long) == 64 and long == wandb_id("x" * 100) != wandb_id("x" * 101)


# ---------------------------------------------------------------- W&B, offline, through the command line


def wandb_records(path: Path) -> list:
    """The protobuf records of a W&B transaction log (.wandb): a 7-byte header, then LevelDB-log records
    (32 KiB blocks; each chunk: crc32 4, length 2, type 1 = full, 2 = first, 3 = middle, 4 = last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    if data[:4] != b":W&B":
        pytest.skip(f"{path.name}: a W&B log format this test does not read ({data[:7]!r})")
    block, pos, chunks, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


def items(update) -> dict:
    return {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in update}


def test_wandb_offline_run_holds_config_scalars_summary_and_leaderboard_row(out_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from benchmarks.cli import main

    for var in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)  # offline is the default: nothing reaches a network
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    sets = ["train.loggers=[jsonl,wandb,tensorboard]", *LOOK, *VAL]
    argv = ["--model", "cwvae", "--preset", "smoke", "--out", str(out_dir), "--no-progress"]
    assert main([*argv, *[a for s in sets for a in ("--set", s)]]) == 0
    (run,) = (out_dir / "runs" / "mmnist" / "cwvae").iterdir()
    (offline,) = (run / "wandb").glob("offline-run-*")
    (log_file,) = offline.glob("run-*.wandb")
    records = wandb_records(log_file)
    kinds = {r.WhichOneof("record_type") for r in records}
    assert {"run", "history", "summary", "exit"} <= kinds
    (first,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = items(first.config.update)
    assert config["config_hash"] == run.name.rsplit("-", 1)[1]  # the run directory's eval key
    assert config["train"]["loggers"] == ["jsonl", "wandb", "tensorboard"] and config["model_name"] == "cwvae"
    history = [items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    logged = {int(h["_step"]): h["train/loss"] for h in history if "train/loss" in h}
    assert logged == pytest.approx({r["step"]: r["train/loss"] for r in jsonl(run)}, rel=1e-12)
    assert sorted(int(h["_step"]) for h in history if "val/ssim" in h) == [2, 4]
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(items(r.summary.update))
    scores = pd.read_csv(run / "eval" / "summary.csv")
    best = scores[scores["aggregate"] == "best"].set_index("metric")["value"]
    assert summary["eval/ssim"] == pytest.approx(best["ssim"]) and summary["eval/psnr"] == pytest.approx(best["psnr"])
    board = pd.read_csv(out_dir / "leaderboard.csv").iloc[0]
    assert summary["leaderboard/ssim"] == pytest.approx(board["ssim"]) and summary["leaderboard/model"] == "cwvae"
    (table,) = offline.glob("files/media/table/leaderboard_*.table.json")
    table = json.loads(table.read_text())
    row = dict(zip(table["columns"], table["data"][0]))
    assert row["runs"] == board["runs"] and row["ssim"] == pytest.approx(board["ssim"])
    assert len(list(offline.glob("files/media/images/samples/open_loop_*.png"))) == 2  # steps 2 and 4
    # TensorBoard beside it got the same summary
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert events.Scalars("eval/ssim")[-1].value == pytest.approx(best["ssim"], rel=1e-6)
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["eval_every"] == 2


def test_tensorboard_hides_what_a_resumed_or_restarted_training_replaces(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from benchmarks.loggers import TensorBoardLogger

    cfg = resolve_config("cwvae", "mmnist", "smoke")

    def write(start: int, steps, value: float) -> None:
        logger = TensorBoardLogger(cfg, tmp_path, start)
        for step in steps:
            logger.scalars(step, {"train/loss": value})
        logger.close(failed=False)

    def shown() -> list[tuple[int, float]]:
        events = EventAccumulator(str(tmp_path / "tensorboard"))
        events.Reload()
        return [(s.step, s.value) for s in events.Scalars("train/loss")]

    write(0, [1, 2, 3, 4], 1.0)  # killed after step 4, its checkpoint at step 2
    write(2, [3, 4, 5, 6], 2.0)  # resumed from step 2
    assert shown() == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0), (5, 2.0), (6, 2.0)]
    write(0, [1, 2], 3.0)  # --force: started over
    assert shown() == [(1, 3.0), (2, 3.0)]


def test_a_wandb_run_continues_when_training_resumes_and_is_new_when_it_starts_over(tmp_path):
    from types import SimpleNamespace

    from benchmarks.loggers import WandbLogger

    logger = SimpleNamespace(run_dir=tmp_path)
    first = WandbLogger.run_id(logger, "mmnist-cwvae-smoke-s0-abc", 0)
    assert first == "mmnist-cwvae-smoke-s0-abc"
    assert WandbLogger.run_id(logger, "mmnist-cwvae-smoke-s0-abc", 200) == first  # resumed
    assert WandbLogger.run_id(logger, "mmnist-cwvae-smoke-s0-abc", 0) == "mmnist-cwvae-smoke-s0-abc-r1"  # --force
    assert WandbLogger.run_id(logger, "mmnist-cwvae-smoke-s0-abc", 400) == "mmnist-cwvae-smoke-s0-abc-r1"
    assert WandbLogger.run_id(logger, "mmnist-cwvae-smoke-s0-abc", 0) == "mmnist-cwvae-smoke-s0-abc-r2"
