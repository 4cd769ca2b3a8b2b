"""Moving MNIST generator: determinism, physics, disjoint digits, speed scale."""

import numpy as np
import pytest

from benchmarks.config import resolve_config
from datasets import get_dataset
from datasets.mmnist import LIMIT, SPEED_RANGE, MovingMNISTConfig, mnist_digits, render_video, trajectory


def test_digits_are_disjoint_and_balanced():
    train, test = mnist_digits()
    assert train.shape == (4000, 28, 28) and test.shape == (1000, 28, 28)
    train_set = {d.tobytes() for d in train}
    assert not any(d.tobytes() in train_set for d in test)


def test_trajectory_physics():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        path = trajectory(rng, 200, speed=1.0)
        assert path.min() >= 0 and path.max() <= LIMIT  # digits stay inside the 64x64 frame
        step = np.diff(path, axis=0)
        speed = np.linalg.norm(step, axis=1)
        # between bounces the speed is constant and in [2, 6] px/frame
        assert SPEED_RANGE[0] - 1e-9 <= np.median(speed) <= SPEED_RANGE[1] + 1e-9
        # bounce: every velocity component changes sign only at an edge
        flips = np.flatnonzero(np.sign(step[1:, 0]) != np.sign(step[:-1, 0]))
        for f in flips:
            # reflection happened between positions f+1 and f+2: the digit was near an edge
            near = min(path[f + 1, 0], LIMIT - path[f + 1, 0])
            assert near <= SPEED_RANGE[1]


def test_bounce_reflects_at_the_edge():
    rng = np.random.default_rng(0)
    path = trajectory(rng, 500, speed=1.0)
    for axis in range(2):
        v = np.diff(path[:, axis])
        assert (v > 0).any() and (v < 0).any()  # it came back at least once


def test_speed_scale_scales_displacement():
    base = trajectory(np.random.default_rng(7), 2, speed=1.0)
    slow = trajectory(np.random.default_rng(7), 2, speed=0.25)
    d_base, d_slow = np.linalg.norm(base[1] - base[0]), np.linalg.norm(slow[1] - slow[0])
    if 0 < base[0].min() and base[0].max() < LIMIT - 6:  # no bounce in the first step
        assert d_slow == pytest.approx(0.25 * d_base)


def test_render_is_deterministic_and_in_frame():
    train, _ = mnist_digits()
    a, pa = render_video(np.random.default_rng([0, 0, 3]), train, 2, 30, 1.0)
    b, pb = render_video(np.random.default_rng([0, 0, 3]), train, 2, 30, 1.0)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == (30, 64, 64)
    assert a.reshape(30, -1).max(1).min() > 0  # every frame shows a digit


def test_generated_dataset_is_deterministic_prefix_and_regenerates(tmp_path):
    small = get_dataset(MovingMNISTConfig(root=str(tmp_path), n_train=3, n_test=2, train_length=10, test_length=40))
    small.ensure_ready(progress=False)
    big = get_dataset(MovingMNISTConfig(root=str(tmp_path), n_train=5, n_test=2, train_length=10, test_length=40))
    big.ensure_ready(progress=False)
    assert np.array_equal(small.load("train"), big.load("train")[:3])  # each video has its own seed
    assert small.load("test").shape == (2, 40, 64, 64, 1)
    # a manifest that disagrees with the config makes it regenerate
    manifest = small.directory / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"n_train": 3', '"n_train": 4'))
    assert not small.is_ready()
    small.ensure_ready(progress=False)
    assert small.is_ready()


def test_speed_is_a_dataset_parameter():
    cfg = resolve_config("copy_last", "mmnist", "smoke", sets=["data.speed=0.5"])
    assert cfg.data.speed == 0.5
    with pytest.raises(ValueError, match=r"data.speed=5.0 is out of range; valid: in \(0, 3.0\]"):
        resolve_config("copy_last", "mmnist", "smoke", sets=["data.speed=5.0"])
