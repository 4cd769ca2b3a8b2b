"""Video models: the VideoModel interface, the registry, and CW-VAE.

Public API:
    from models import VideoModel, register_model, build_model, model_names
"""

from models.base import VideoModel, get_model_class, model_names, register_model


def build_model(name: str, dataset: str = "mmnist", preset: str = "smoke", **overrides) -> VideoModel:
    """A ready model: `name` at `preset` for `dataset`, with `model.*` keys overridden.

    >>> model = build_model("cwvae", dataset="mmnist", preset="paper")
    """
    from benchmarks.config import resolve_config  # config resolution lives with the other YAML

    cfg = resolve_config(model=name, dataset=dataset, preset=preset, overrides={"model": overrides})
    return cfg.build_model()


__all__ = ["VideoModel", "register_model", "build_model", "model_names", "get_model_class"]
