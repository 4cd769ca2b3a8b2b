#!/usr/bin/env python
"""cwbench: train and evaluate video-prediction models open loop.

python bench.py --model cwvae --dataset mmnist --preset quick
python bench.py --list

The same as the `cwbench` command (`pip install -e .` or `make venv` installs it) and `python -m benchmarks`.
"""

from benchmarks.cli import run

if __name__ == "__main__":
    run()
