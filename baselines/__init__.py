"""Baselines and naive references; importing this package registers them."""

from baselines import naive  # noqa: F401
