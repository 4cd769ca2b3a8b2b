"""Imports every built-in dataset module so that its decorator registers it."""

from datasets import mmnist  # noqa: F401
