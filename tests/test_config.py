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


@pytest.mark.parametrize("dataset,epochs", [("mmnist", 300), ("kth", 300), ("minerl", 600), ("mazes", 100)])
@pytest.mark.parametrize("model", ["cwvae", "notmpabs", "rssm"])
def test_training_length_per_dataset_follows_the_official_configs(model, dataset, epochs):
    """Official configs/{mmnist,minerl,mazes}.yml num_epochs; KTH has none: the paper's 300."""
    assert resolve_config(model, dataset, "paper").train.epochs == epochs


def test_inherits_takes_the_base_yaml_with_the_own_keys_over_it():
    from benchmarks.config import model_yaml

    cwvae, rssm, notmpabs = model_yaml("cwvae"), model_yaml("rssm"), model_yaml("notmpabs")
    assert rssm == {**cwvae, "model": {**cwvae["model"], "levels": 1, "factor": 1}}
    assert notmpabs == {**cwvae, "model": {**cwvae["model"], "factor": 1}}
    quick = resolve_config("rssm", "mmnist", "quick")
    assert (quick.model.levels, quick.model.deter, quick.train.steps) == (1, 100, 800)  # cwvae.yaml's quick preset


def test_inherits_errors_name_the_file_and_what_to_do(tmp_path, monkeypatch):
    import benchmarks.config as config

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.yaml").write_text("inherits: b\n")
    (tmp_path / "models" / "b.yaml").write_text("inherits: a\n")
    (tmp_path / "models" / "c.yaml").write_text("inherits: nope\n")
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path)
    with pytest.raises(ConfigError, match=r"b.yaml: `inherits: a` makes a cycle \(a -> b -> a\); remove one"):
        config.model_yaml("a")
    with pytest.raises(ConfigError, match=r"c.yaml: inherits 'nope', which has no YAML; valid: a, b, c"):
        config.model_yaml("c")
