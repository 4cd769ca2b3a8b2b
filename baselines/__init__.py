"""Baselines and naive references; importing this package registers them."""

from baselines import naive, rssm, svg, vta  # noqa: F401
