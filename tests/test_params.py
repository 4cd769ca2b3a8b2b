"""Parameter counts at the paper preset against the paper's Table D.2, and `bench.py params`."""

import csv
import io
from contextlib import redirect_stdout

import pytest

from benchmarks.cli import main
from benchmarks.commands import params as params_cmd
from benchmarks.config import model_yaml
from datasets import dataset_names
from models import build_model, get_model_class

# Table D.2 of the paper (trainable parameters, small / large version), as printed.
TABLE_D2 = {
    "cwvae": ("12M", "34M"),
    "notmpabs": ("12M", "34M"),
    "rssm": ("5M", "13M"),
    "svg": ("13M", "23M"),
    "vta": ("3M", None),
}
# The dataset whose config makes the large version; its channels when it is not registered yet.
LARGE = {"cwvae": ("minerl", 3), "notmpabs": ("minerl", 3), "rssm": ("minerl", 3), "svg": ("kth", 1)}


def millions(n: int) -> str:
    return f"{round(n / 1e6)}M"


def large_model(name: str):
    dataset, channels = LARGE[name]
    if dataset in dataset_names():
        return build_model(name, dataset=dataset, preset="paper")
    # dataset not registered (yet): apply the model YAML's section for it by hand
    overrides = model_yaml(name)["datasets"][dataset]["model"]
    return build_model(name, dataset="mmnist", preset="paper", channels=channels, **overrides)


@pytest.mark.parametrize("name", sorted(TABLE_D2))
def test_small_version_rounds_to_table_d2(name):
    model = build_model(name, dataset="mmnist", preset="paper")
    assert millions(model.num_params()) == TABLE_D2[name][0]


@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_version_rounds_to_table_d2(name):
    assert millions(large_model(name).num_params()) == TABLE_D2[name][1]


def test_rssm_count_in_closed_form():
    """Count the small RSSM (one-level CW-VAE) layer by layer (torch layouts: GRU has two bias vectors)."""
    s, d, h, e = 20, 200, 200, 1024
    enc = (1 * 32 + 32 * 64 + 64 * 128 + 128 * 256) * 16 + (32 + 64 + 128 + 256)
    dec = (s + d) * 1024 + 1024 + 1024 * 128 * 25 + 128 + 128 * 64 * 25 + 64 + 64 * 32 * 36 + 32 + 32 * 1 * 36 + 1
    gru = 3 * (h * d + d * d + 2 * d)
    head = 2 * (h * s + s)  # mean and std layers
    prior = ((s + s + d) * h + h) + gru + (d * h + h) + head  # input: sample and the (zero) context (s, h)
    post = ((d + e) * h + h) + (h * h + h) + head
    assert build_model("rssm", preset="paper").num_params() == enc + dec + prior + post == 5_103_009


def test_rssm_planet_count_in_closed_form():
    """Count the small PlaNet RSSM layer by layer (torch layouts: GRU has two bias vectors)."""
    s, d, h, e = 30, 200, 200, 1024
    enc = (1 * 32 + 32 * 64 + 64 * 128 + 128 * 256) * 16 + (32 + 64 + 128 + 256)
    dec = (s + d) * 1024 + 1024 + 1024 * 128 * 25 + 128 + 128 * 64 * 25 + 64 + 64 * 32 * 36 + 32 + 32 * 1 * 36 + 1
    gru = 3 * (h * d + d * d + 2 * d)
    cell = (s * h + h) + gru + (d * h + h) + (h * 2 * s + 2 * s) + ((d + e) * h + h) + (h * 2 * s + 2 * s)
    assert build_model("rssm_planet", preset="paper").num_params() == enc + dec + cell == 5_039_089


@pytest.mark.parametrize("preset", ["smoke", "quick", "paper"])
@pytest.mark.parametrize("dataset", sorted(dataset_names()))
def test_rssm_is_one_level_cwvae_at_every_dataset_and_preset(dataset, preset):
    rssm = build_model("rssm", dataset=dataset, preset=preset)
    cwvae = build_model("cwvae", dataset=dataset, preset=preset, levels=1)
    assert rssm.cfg == cwvae.cfg.__class__(**{**vars(cwvae.cfg), "factor": 1})
    assert rssm.num_params() == cwvae.num_params()
    assert [(k, v.shape) for k, v in rssm.state_dict().items()] == [(k, v.shape) for k, v in cwvae.state_dict().items()]


def test_svg_vgg_is_the_kth_variant():
    assert model_yaml("svg")["datasets"]["kth"]["model"]["backbone"] == "vgg"
    assert large_model("svg").cfg.backbone == "vgg"


def test_params_command_csv():
    out = io.StringIO()
    with redirect_stdout(out):
        assert params_cmd.main(["--format", "csv", "--model", "rssm", "--model", "vta"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    small = {r["model"]: r for r in rows if r["variant"] == "small"}
    assert small["rssm"]["params"] == "5103009" and small["rssm"]["dataset"] == "mmnist"
    assert small["vta"]["params"] == str(build_model("vta", preset="paper").num_params())
    assert [r["variant"] for r in rows if r["model"] == "vta"] == ["small"]  # Table D.2 has no large VTA
    large = next(r for r in rows if r["model"] == "rssm" and r["variant"] == "large")
    assert large["dataset"] == "minerl"
    if "minerl" in dataset_names():
        assert millions(int(large["params"])) == "13M"
    else:
        assert large["params"] == "" and "minerl" in large["note"]


def test_params_command_table_and_bad_model(capsys):
    assert params_cmd.main(["--model", "vta"]) == 0
    shown = capsys.readouterr().out
    assert "vta" in shown and "2,752,581" in shown
    assert main(["params", "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err


@pytest.mark.parametrize("name,label", [("cwvae", "CW-VAE"), ("notmpabs", "NoTmpAbs"), ("rssm", "RSSM")])
def test_paper_label_names_the_table1_row(name, label):
    assert get_model_class(name).paper_label == label
    assert get_model_class("copy_last").paper_label is None  # a reference, outside the paper's comparison
    assert get_model_class("rssm_planet").paper_label is None  # a variant, outside the paper's comparison
