"""Baselines and naive references; importing this package registers them."""

from baselines import naive, rssm, rssm_planet, svg, vta  # noqa: F401
