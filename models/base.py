"""The one interface every model implements, and the registry that names them.

Every model is a `VideoModel`: `loss(video)` for training and `predict(context,
horizon, n_samples)` for open-loop prediction. Hyperparameters arrive as keyword
arguments (from the model's YAML section or `--set model.k=v`) and are checked
against the model's config dataclass, so a model is constructible with no
arguments at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor


class VideoModel(torch.nn.Module):
    """Base class of every video model in the harness.

    Subclasses set `config_class` to a frozen dataclass whose fields are the
    model's hyperparameters; `self.cfg` then holds an instance of it.
    """

    config_class: ClassVar[type | None] = None
    # the model's row label in the paper's Table 1; None = not part of the paper's comparison
    paper_label: ClassVar[str | None] = None

    def __init__(self, **hparams):
        super().__init__()
        if self.config_class is None:
            if hparams:
                raise TypeError(f"{type(self).__name__} takes no hyperparameters, got {sorted(hparams)}")
            self.cfg = None
        else:
            valid = {f.name for f in dataclasses.fields(self.config_class)}
            unknown = sorted(set(hparams) - valid)
            if unknown:
                raise TypeError(
                    f"{type(self).__name__} got unknown hyperparameter(s) {unknown}; valid: {sorted(valid)}"
                )
            self.cfg = self.config_class(**hparams)

    def loss(self, video: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """video: (B, T, C, H, W) float in [0, 1] -> (scalar loss, {name: scalar term})."""
        raise NotImplementedError(
            f"{type(self).__name__}.loss(video) -> (loss, terms) is not implemented: "
            "video is (B, T, C, H, W) in [0, 1]; return a scalar loss and a dict of logged scalars"
        )

    def predict(self, context: Tensor, horizon: int, n_samples: int = 1) -> Tensor:
        """context: (B, Tc, C, H, W) in [0, 1] -> (B, n_samples, horizon, C, H, W) in [0, 1]."""
        raise NotImplementedError(
            f"{type(self).__name__}.predict(context, horizon, n_samples=1) is not implemented: "
            "context is (B, Tc, C, H, W) in [0, 1]; return (B, n_samples, horizon, C, H, W) in [0, 1]"
        )

    def predict_chunks(self, context: Tensor, horizon: int, n_samples: int = 1, chunk: int = 100, **options):
        """The same predictions as `predict`, yielded `chunk` frames at a time:
        (B, n_samples, <= chunk, C, H, W) each. Models that can stream (CW-VAE) override it so
        that evaluation memory does not grow with the horizon; this default predicts at once."""
        yield from self.predict(context, horizon, n_samples, **options).split(chunk, dim=2)

    @property
    def trainable(self) -> bool:
        """False for references with nothing to learn (the trainer then skips training)."""
        return any(p.requires_grad for p in self.parameters())

    def observe_training_data(self, videos) -> None:
        """Hook for models that need the training set itself (e.g. the random-frame reference)."""

    def context_multiple(self) -> int:
        """The context length must be a multiple of this (CW-VAE: factor ** (levels - 1))."""
        return 1

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


# ---------------------------------------------------------------- registry

_MODELS: dict[str, type[VideoModel]] = {}
_BUILTINS_LOADED = False


def register_model(name: str) -> Callable[[type[VideoModel]], type[VideoModel]]:
    """Class decorator: `@register_model("cwvae")` adds the class under `name`."""

    def add(cls: type[VideoModel]) -> type[VideoModel]:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered by {_MODELS[name].__qualname__}")
        if not issubclass(cls, VideoModel):
            raise TypeError(f"@register_model({name!r}) needs a VideoModel subclass, got {cls}")
        _MODELS[name] = cls
        cls.registry_name = name
        return cls

    return add


def _load_builtins() -> None:
    """Fill the registry on first use (not at import): CW-VAE from this package, everything else
    through the `cwbench.models` entry points. The baselines are one of them (pyproject.toml),
    so the model layer never imports the baselines that build on it."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    import importlib

    importlib.import_module("models.cwvae")
    from models.plugins import load_entry_points

    load_entry_points()


def model_names() -> list[str]:
    _load_builtins()
    return sorted(_MODELS)


def get_model_class(name: str) -> type[VideoModel]:
    """Registered name, or `path/to/file.py:ClassName` for a model outside the repository."""
    _load_builtins()
    if name in _MODELS:
        return _MODELS[name]
    if ":" in name:
        from models.plugins import load_model_file

        return load_model_file(name)
    from models.plugins import missing_entry_points_hint

    raise KeyError(
        f"unknown model {name!r}; valid: {', '.join(sorted(_MODELS))} (or path/to/file.py:ClassName)"
        + missing_entry_points_hint()
    )
