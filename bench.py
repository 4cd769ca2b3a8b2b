#!/usr/bin/env python
"""cwbench: train and evaluate video-prediction models open loop.

python bench.py --model cwvae --dataset mmnist --preset quick
python bench.py --list
"""

import os
import sys

from benchmarks.cli import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `bench.py --list | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
