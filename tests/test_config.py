"""Config resolution: precedence, --set, unknown keys, types, presets, YAML errors."""

import pytest

from benchmarks.config import ConfigError, load_yaml, resolve_config


def test_precedence_defaults_yaml_preset_set():
    paper = resolve_config("cwvae", "mmnist", "paper")
    assert paper.model.stoch == 20 and paper.model.levels == 3 and paper.model.factor == 6
    assert paper.train.lr == 3e-4 and paper.train.adam_eps == 1e-4 and paper.train.batch_size == 50
    assert paper.train.seq_len == 100 and paper.train.epochs == 300
    assert paper.data.test_length == 1000 and paper.model.dec_std == 1.0  # from the dataset YAML
    smoke = resolve_config("cwvae", "mmnist", "smoke")
    assert smoke.model.stoch == 4 and smoke.train.steps == 4
    over = resolve_config("cwvae", "mmnist", "smoke", sets=["train.lr=1e-3", "model.levels=2", "eval.metrics=[ssim]"])
    assert over.train.lr == 1e-3 and over.model.levels == 2 and over.eval.metrics == ("ssim",)


def test_paper_steps_are_300_epochs():
    cfg = resolve_config("cwvae", "mmnist", "paper")
    assert cfg.total_steps == 300 * cfg.data.n_train // 50


def test_unknown_key_names_the_nearest_and_lists_valid():
    with pytest.raises(ConfigError, match=r"unknown key train\.lrr; did you mean train\.lr\?.*valid keys in train:"):
        resolve_config("cwvae", "mmnist", "smoke", sets=["train.lrr=1"])
    with pytest.raises(ConfigError, match="model.levles.*did you mean model.levels"):
        resolve_config("cwvae", "mmnist", "smoke", sets=["model.levles=2"])


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError, match="train.steps: expected int, got 'many'"):
        resolve_config("cwvae", "mmnist", "smoke", sets=["train.steps=many"])
    with pytest.raises(ConfigError, match="train.batch_size: expected int, got 2.5"):
        resolve_config("cwvae", "mmnist", "smoke", sets=["train.batch_size=2.5"])


def test_unknown_names_list_choices():
    with pytest.raises(ConfigError, match="unknown model 'cwvea'; valid: .*cwvae"):
        resolve_config("cwvea")
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'; valid: .*mmnist"):
        resolve_config("cwvae", "mnist")
    with pytest.raises(ConfigError, match="unknown preset 'fast'; valid: paper, quick, smoke"):
        resolve_config("cwvae", "mmnist", "fast")


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  levels: 3\n  factor: [6\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+"):
        load_yaml(bad)


def test_hash_identifies_the_run():
    a = resolve_config("cwvae", "mmnist", "smoke")
    assert a.hash() == resolve_config("cwvae", "mmnist", "smoke").hash()
    assert a.hash() != resolve_config("cwvae", "mmnist", "smoke", sets=["train.lr=1e-2"]).hash()
    assert a.hash() != resolve_config("cwvae", "mmnist", "smoke", seed=1).hash()
    assert a.hash() == resolve_config("cwvae", "mmnist", "smoke", sets=["train.log_every=5"]).hash()
    assert a.hash() == resolve_config("cwvae", "mmnist", "smoke", sets=["eval.chunk=7"]).hash()
