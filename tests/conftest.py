"""Shared test set-up: one CPU thread, data and caches under a per-session temp dir."""

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_root(tmp_path_factory):
    """Generated datasets go to a temp dir shared by the whole test session."""
    root = tmp_path_factory.mktemp("data")
    old = os.environ.get("CWBENCH_DATA")
    os.environ["CWBENCH_DATA"] = str(root)
    yield root
    if old is None:
        os.environ.pop("CWBENCH_DATA", None)
    else:
        os.environ["CWBENCH_DATA"] = old


@pytest.fixture
def out_dir(tmp_path):
    return tmp_path / "results"
