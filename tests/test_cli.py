"""The command line end to end at the smoke preset."""

import json

import pandas as pd
import pytest
import yaml

from benchmarks.cli import main
from rundir.run import eval_key


def test_smoke_run_writes_every_file_and_resumes(out_dir, capsys):
    assert main(["--model", "cwvae", "--preset", "smoke", "--out", str(out_dir), "--no-progress"]) == 0
    runs = list((out_dir / "runs" / "mmnist" / "cwvae").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert run.name.startswith("smoke-s0-")
    for rel in [
        "config.yaml",
        "run.json",
        "status.json",
        "train.jsonl",
        "checkpoints/last.pt",
        "eval/curves.csv",
        "eval/summary.csv",
        "eval/per_example.parquet",
        "samples/samples.npz",
    ]:
        assert (run / rel).exists(), rel
    # run.json: what a report needs of the run, written by the pipeline
    info = json.loads((run / "run.json").read_text())
    assert info["label"] == "cwvae" and info["paper_label"] == "CW-VAE" and info["paper_dataset"] == "Moving MNIST"
    assert info["variant"] == "" and info["reference"] is False and (info["context"], info["horizon"]) == (36, 12)
    assert info["bands"] == [[1, 12], [1, 1], [2, 5], [6, 12]]  # rundir.stats.horizon_bands(12)
    assert info["metrics"]["ssim"]["higher_is_better"] and info["metrics"]["psnr"]["per_example"]
    assert eval_key(yaml.safe_load((run / "config.yaml").read_text())) == run.name.rsplit("-", 1)[1]
    curves = pd.read_csv(run / "eval" / "curves.csv")
    assert list(curves.columns[:7]) == ["metric", "aggregate", "t", "mean", "ci_low", "ci_high", "n"]
    assert set(curves.metric) == {"ssim", "psnr"} and curves.t.max() == 12  # 48 - 36 predicted frames
    summary = pd.read_csv(run / "eval" / "summary.csv")
    best = summary[summary["aggregate"] == "best"].set_index("metric")["value"]
    ssim_curve = curves[(curves.metric == "ssim") & (curves["aggregate"] == "best")]["mean"]
    assert best["ssim"] == pytest.approx(ssim_curve.mean(), rel=1e-6)  # Table 1: mean over predicted frames
    board = pd.read_csv(out_dir / "leaderboard.csv")
    assert board.loc[0, "model"] == "cwvae" and board.loc[0, "ssim"] == pytest.approx(best["ssim"])
    assert (out_dir / "leaderboard.md").read_text().count("| cwvae |") == 1
    # a second identical command finds the finished run and leaves it as it is
    mtime = (run / "eval" / "summary.csv").stat().st_mtime
    assert main(["--model", "cwvae", "--preset", "smoke", "--out", str(out_dir), "--no-progress"]) == 0
    assert (run / "eval" / "summary.csv").stat().st_mtime == mtime


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "nope"], "unknown model 'nope'; valid:"),
        (["--model", "cwvae", "--dataset", "nope"], "unknown dataset 'nope'; valid:"),
        (["--model", "cwvae", "--preset", "nope"], "unknown preset 'nope'; valid:"),
        (["--model", "cwvae", "--set", "train.lrr=1"], "did you mean train.lr"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, out_dir, capsys):
    assert main([*argv, "--out", str(out_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out_dir.exists()  # nothing written


def test_list(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "cwvae" in out and "notmpabs" in out and "copy_last" in out and "mmnist" in out


def test_one_table_turns_errors_into_exit_codes():
    """benchmarks/cli.py's ERRORS names classes that exist; KeyboardInterrupt is 130; a bug is re-raised."""
    import importlib

    from benchmarks.cli import ERRORS, EXIT_INTERRUPTED, exit_code

    for qualified, code in ERRORS.items():
        module, _, name = qualified.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        error = cls.__new__(cls)  # no __init__: some take structured arguments
        assert issubclass(cls, BaseException) and exit_code(error) == code, qualified
    assert exit_code(KeyboardInterrupt()) == EXIT_INTERRUPTED
    assert exit_code(ZeroDivisionError()) is None


def test_a_bug_keeps_its_traceback(monkeypatch):
    import benchmarks.commands.run as run_command

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(run_command, "run_one", broken)
    with pytest.raises(ZeroDivisionError):
        main(["--model", "cwvae"])


def test_the_default_preset_is_one_everywhere():
    import inspect

    from benchmarks.commands.check_model import parser as check_parser
    from benchmarks.config import DEFAULT_PRESET, build_model, resolve_config
    from benchmarks.conformance import KitConfig

    assert DEFAULT_PRESET == "quick"
    for fn in (build_model, resolve_config):
        assert inspect.signature(fn).parameters["preset"].default == DEFAULT_PRESET
    assert KitConfig().preset == DEFAULT_PRESET and check_parser().parse_args(["cwvae"]).preset == DEFAULT_PRESET
    assert resolve_config("cwvae").preset == DEFAULT_PRESET


def test_run_and_tune_take_the_slurm_options_declared_once():
    """`--partition/--time/--gpus/--cpus-per-task` come from one helper: the same defaults (SlurmOptions')
    and help in `bench.py --suite` and `bench.py tune`; a value given, 0 GPUs included, reaches SlurmOptions."""
    from benchmarks.commands import run, slurm_options, tune
    from benchmarks.suite import SlurmOptions

    suite = ["--suite", "smoke", "--launcher", "slurm"]
    default = SlurmOptions(partition=None, time=1440, gpus=1, cpus_per_task=4)
    assert slurm_options(run.parser().parse_args(suite)) == default
    assert slurm_options(tune.parser().parse_args(["--model", "rssm"])) == default
    given = ["--partition", "gpu", "--time", "30", "--gpus", "0", "--cpus-per-task", "8"]
    chosen = SlurmOptions(partition="gpu", time=30, gpus=0, cpus_per_task=8)
    assert slurm_options(run.parser().parse_args([*suite, *given])) == chosen
    assert slurm_options(tune.parser().parse_args(["--model", "rssm", *given])) == chosen
    for parser, when in ((run.parser(), "--suite --launcher slurm"), (tune.parser(), "--launcher slurm")):
        text = " ".join(parser.format_help().split())
        assert f"--partition PARTITION with {when}: SLURM partition" in text
        assert f"--time TIME with {when}: minutes per job (default: 1440)" in text
        assert f"--gpus GPUS with {when}: GPUs per job (default: 1)" in text
        assert f"--cpus-per-task CPUS_PER_TASK with {when}: CPUs per job (default: 4)" in text
