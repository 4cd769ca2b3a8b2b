"""`bench.py export` and `--from-weights`: weights leave a run as safetensors and come back bit for bit."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.cli import main
from benchmarks.config import resolve_config
from benchmarks.model_weights import FIELDS, FORMAT, read_weights, sidecar_path, write_weights
from benchmarks.trainer import CHECKPOINT
from rundir.run import read_config, read_per_example, read_status

SMOKE = ["--preset", "smoke", "--no-progress"]


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A finished CW-VAE smoke run and its weights exported (the run directory, the .safetensors)."""
    out = tmp_path_factory.mktemp("export") / "results"
    assert main(["--model", "cwvae", *SMOKE, "--out", str(out)]) == 0
    directory = resolve_config("cwvae", "mmnist", "smoke").run_dir(out)
    weights = out.parent / "shared" / "cwvae.safetensors"
    assert main(["export", str(directory), "--out", str(weights)]) == 0
    return out, directory, weights


def test_export_writes_safetensors_and_a_sidecar(exported):
    out, directory, weights = exported
    loaded = read_weights(weights)  # checks the sha256 against the sidecar
    side = json.loads(sidecar_path(weights).read_text())
    assert sidecar_path(weights).name == "cwvae.json" and set(side) == set(FIELDS)
    status = read_status(directory)
    assert side["format"] == FORMAT and side["model"] == "cwvae" and side["dataset"] == "mmnist"
    assert side["preset"] == "smoke" and side["step"] == side["total_steps"] == 4
    assert side["params"] == status["params"] == 4_354_657 and side["code_commit"] == status["git_commit"]
    assert side["model_config"] == read_config(directory)["model"] and side["source"] == str(directory.resolve())
    ckpt = torch.load(directory / CHECKPOINT, weights_only=True)
    assert side["config_hash"] == ckpt["config_hash"]
    assert sorted(loaded.tensors) == sorted(ckpt["model"])
    for name, tensor in ckpt["model"].items():
        assert torch.equal(loaded.tensors[name], tensor), name


def test_from_weights_evaluates_bit_identically_and_is_marked(exported, capsys):
    out, directory, weights = exported
    capsys.readouterr()
    code, stdout, err = run_cli(
        ["--model", "cwvae", "--from-weights", str(weights), "--no-progress", "--out", str(out)], capsys
    )
    assert code == 0, err  # the preset came from the sidecar (smoke), not the default (quick)
    scored = next(p for p in (out / "runs" / "mmnist" / "cwvae").iterdir() if p != directory)
    assert f"run directory: {scored}" in stdout
    ours, theirs = read_per_example(directory), read_per_example(scored)
    assert set(ours) == set(theirs) == {"ssim", "psnr"}
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name
    with np.load(directory / "samples" / "samples.npz") as a, np.load(scored / "samples" / "samples.npz") as b:
        assert np.array_equal(a["pred"], b["pred"])  # the predictions themselves, bit for bit
    status, cfg = read_status(scored), read_config(scored)
    sha = read_weights(weights).sha256
    assert status["weights"]["sha256"] == sha == cfg["weights_sha256"]
    assert status["weights"]["path"] == str(weights.resolve()) and status["weights"]["source"] == str(
        directory.resolve()
    )
    assert not (scored / "checkpoints").exists() and not (scored / "train.jsonl").exists()  # nothing trained
    board = pd.read_csv(out / "leaderboard.csv", keep_default_na=False)
    assert sorted(board["variant"]) == ["", f"from-weights={sha[:8]}"]
    assert f"| cwvae [from-weights={sha[:8]}] |" in (out / "leaderboard.md").read_text()
    code, stdout, _ = run_cli(
        ["--model", "cwvae", "--from-weights", str(weights), "--no-progress", "--out", str(out)], capsys
    )
    assert code == 0 and f"already finished: {scored}" in stdout


def rewrite(weights, tmp_path, change_tensors=None, change_info=None):
    """A copy of the exported weights with tensors or sidecar fields changed (and a matching sha256)."""
    loaded = read_weights(weights)
    tensors, info = (
        dict(loaded.tensors),
        {k: v for k, v in loaded.info.items() if k not in ("format", "weights_sha256")},
    )
    if change_tensors:
        change_tensors(tensors)
    info.update(change_info or {})
    path = tmp_path / "changed.safetensors"
    write_weights(path, tensors, info)
    return path


def drop_last(tensors):
    name = list(tensors)[-1]
    shape = tuple(tensors.pop(name).shape)
    return f"has no tensor {name!r} {shape}"


def cut_first_matrix(tensors):
    name = next(k for k, v in tensors.items() if v.dim() >= 2)
    before = tuple(tensors[name].shape)
    tensors[name] = tensors[name][:1]
    return f"tensor {name!r} has shape {(1, *before[1:])} in"


def add_one(tensors):
    tensors["head.extra"] = torch.zeros(3)
    return "has tensor 'head.extra', which this model does not"


@pytest.mark.parametrize("change", [drop_last, cut_first_matrix, add_one])
def test_weights_that_do_not_fit_are_refused_naming_the_tensor(exported, tmp_path, capsys, change):
    _, _, weights = exported
    said = {}
    path = rewrite(weights, tmp_path, change_tensors=lambda tensors: said.update(message=change(tensors)))
    results = tmp_path / "results"
    code, _, err = run_cli(["--model", "cwvae", "--from-weights", str(path), *SMOKE, "--out", str(results)], capsys)
    assert code == 2 and said["message"] in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (results / "runs").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "change_info, sets, message",
    [
        ({"model": "rssm"}, [], "holds weights of model 'rssm', not 'cwvae'; pass --model rssm"),
        (None, ["--set", "model.levels=2"], "model.levels is 2 here but the weights in"),
    ],
)
def test_weights_of_another_model_or_config_are_refused(exported, tmp_path, capsys, change_info, sets, message):
    _, _, weights = exported
    path = rewrite(weights, tmp_path, change_info=change_info) if change_info else weights
    results = tmp_path / "results"
    code, _, err = run_cli(
        ["--model", "cwvae", "--from-weights", str(path), *SMOKE, *sets, "--out", str(results)], capsys
    )
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (results / "runs").exists()


def test_changed_or_incomplete_weight_files_are_refused(exported, tmp_path, capsys):
    _, directory, weights = exported
    copy = tmp_path / "copy.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    argv = ["--model", "cwvae", *SMOKE, "--out", str(tmp_path / "results")]
    code, _, err = run_cli([*argv, "--from-weights", str(copy)], capsys)
    assert code == 2 and "copy.json is missing" in err and "export" in err
    sidecar_path(copy).write_text(sidecar_path(weights).read_text())
    code, _, err = run_cli([*argv, "--from-weights", str(copy)], capsys)
    assert code == 2 and f"{copy} has sha256" in err and "the file was changed" in err
    code, _, err = run_cli([*argv, "--from-weights", str(tmp_path / "model.pt")], capsys)
    assert code == 2 and "weights files end in .safetensors" in err
    code, _, err = run_cli(["export", str(tmp_path), "--out", str(tmp_path / "w.safetensors")], capsys)
    assert code == 2 and "is not a run directory" in err and err.count("\n") == 1
    code, _, err = run_cli(["export", str(directory), "--out", str(tmp_path / "w.bin")], capsys)
    assert code == 2 and "cannot tell the format" in err


def test_export_of_an_unfinished_run_says_so_and_unwritable_output_is_named(exported, tmp_path, capsys):
    _, directory, _ = exported
    run = tmp_path / "unfinished"
    run.mkdir()
    (run / "config.yaml").write_text((directory / "config.yaml").read_text())
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes((directory / "checkpoints" / "prev.pt").read_bytes())  # step 2
    code, out, _ = run_cli(["export", str(run), "--out", str(tmp_path / "w.safetensors")], capsys)
    assert code == 0 and "note: step 2 of 4: the run has not finished training" in out
    assert read_weights(tmp_path / "w.safetensors").info["step"] == 2
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(["export", str(run), "--out", str(blocker / "w.safetensors")], capsys)
    assert code == 2 and f"could not write {blocker / 'w.safetensors'}" in err and err.count("\n") == 1


def test_one_run_options_are_refused_with_a_suite(tmp_path, capsys):
    code, _, err = run_cli(["--suite", "smoke", "--from-weights", "x.safetensors", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--from-weights applies to one run (--model), not to --suite" in err
