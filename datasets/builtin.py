"""Imports every built-in dataset module so that its decorator registers it."""

from datasets import folder, kth, mazes, minerl, mmnist, mmnist_official  # noqa: F401
