"""Models from outside the repository: `path/to/file.py:ClassName` and entry points."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from rundir.atomic import sha256_file


def split_model_spec(spec: str) -> tuple[Path, str]:
    path, _, cls_name = spec.rpartition(":")
    return Path(path), cls_name


def load_model_file(spec: str):
    """Import `ClassName` from `path/to/file.py` (a VideoModel subclass)."""
    from models.base import VideoModel

    path, cls_name = split_model_spec(spec)
    if not path.is_file():
        raise KeyError(f"model file {str(path)!r} not found (from --model {spec!r}); give path/to/file.py:ClassName")
    # keyed by path and content: an edited file is imported afresh, as its runs are new runs
    where = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    mod_name = f"cwbench_external_{where}_{sha256_file(path)[:10]}"
    if mod_name not in sys.modules:
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[mod_name]  # a fixed file is imported afresh on the next try
            raise
    module = sys.modules[mod_name]
    cls = getattr(module, cls_name, None)
    if cls is None:
        names = [
            n
            for n, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, VideoModel) and v is not VideoModel
        ]
        raise KeyError(f"{str(path)!r} defines no class {cls_name!r}; VideoModel classes there: {names}")
    if not (isinstance(cls, type) and issubclass(cls, VideoModel)):
        raise KeyError(f"{spec!r} is not a VideoModel subclass (from models import VideoModel)")
    if not hasattr(cls, "registry_name") or cls.registry_name is None:
        cls.registry_name = cls_name
    return cls


GROUP = "cwbench.models"


def load_entry_points() -> None:
    """Installed packages register models through the `cwbench.models` entry-point group
    (this project's own baselines too: pyproject.toml)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=GROUP):
        ep.load()  # the loaded module's @register_model decorators fill the registry


def missing_entry_points_hint() -> str:
    """A hint for an unknown model when this project is not installed (its baselines then never register)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("cwbench")
    except PackageNotFoundError:
        return (
            "; the baselines register through cwbench's entry points: install it first (make venv, or pip install -e .)"
        )
    return ""
