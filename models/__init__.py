"""Video models: the VideoModel interface, the registry, shared networks and CW-VAE.

Public API:
    from models import VideoModel, register_model, model_names, get_model_class, build_model

The model layer imports nothing above it. `build_model` resolves a model's config from
the harness's YAML, so it lives with config resolution (benchmarks/config.py); it is
re-exported here and looked up on first use, never when `models` is imported.
"""

from models.base import VideoModel, get_model_class, model_names, register_model

__all__ = ["VideoModel", "register_model", "build_model", "model_names", "get_model_class"]


def __getattr__(name: str):
    if name == "build_model":
        from benchmarks.config import build_model  # re-export, resolved on first use (see above)

        return build_model
    raise AttributeError(f"module 'models' has no attribute {name!r}")
