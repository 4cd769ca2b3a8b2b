"""Datasets: Moving MNIST generated offline, and sets prepared from official archives.

Public API:
    from datasets import get_dataset, dataset_names
"""

from datasets.base import (
    DataConfig,
    Dataset,
    DatasetCorrupt,
    DatasetNotReady,
    dataset_names,
    get_dataset_class,
    register_dataset,
)


def get_dataset(cfg: DataConfig) -> Dataset:
    return get_dataset_class(cfg.name)(cfg)


__all__ = [
    "DataConfig",
    "Dataset",
    "DatasetCorrupt",
    "DatasetNotReady",
    "dataset_names",
    "get_dataset",
    "get_dataset_class",
    "register_dataset",
]
