"""`python -m benchmarks ...`: the same as `python bench.py ...` and `cwbench ...`."""

from benchmarks.cli import run

if __name__ == "__main__":
    run()
