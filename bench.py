#!/usr/bin/env python
"""cwbench: train and evaluate video-prediction models open loop.

python bench.py --model cwvae --dataset mmnist --preset quick
python bench.py --list
"""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
