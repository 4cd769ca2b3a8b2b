"""`python bench.py relabel [--out results]`: give run directories made before run.json their run.json.

A report reads run directories only; what it cannot know from config.yaml alone (the
model's Table 1 label, the dataset's name in the paper, the run's variant) the pipeline
writes into run.json when a run starts. Runs made before that have none: the report keeps
them out of Table 1 and the mean rank and lists them. This command writes it for each of
them, as the pipeline would now (nothing is trained or evaluated). Their variants are
computed against today's presets, which may have changed since they ran: the command
prints each one to check. Runs that have run.json are left as they are, except that one
written before run.json recorded `paper_data` (the dataset's videos are the paper's own,
which the mean rank prefers where two datasets share a paper name) gets that key.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str]) -> int:
    from benchmarks.commands import UsageError
    from benchmarks.pipeline import describe_run, record_run
    from rundir.run import INFO, read_info, readable_runs, results_root, write_info

    p = argparse.ArgumentParser(prog="bench.py relabel", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results", help="results directory holding runs/ (default: results)")
    args = p.parse_args(argv)
    out = results_root(Path(args.out))
    if not (out / "runs").is_dir():
        raise UsageError(f"no runs/ under {out}; pass --out DIR (the --out of your runs)")
    done = filled = 0
    for directory, cfg in readable_runs(out):  # a damaged run is skipped with a warning
        if (directory / INFO).exists():
            info = read_info(directory, cfg)
            if "paper_data" not in info:
                info.pop("legacy", None)
                write_info(directory, {**info, "paper_data": describe_run(cfg, info["reference"])["paper_data"]})
                filled += 1
            continue
        record_run(directory, cfg, overwrite=False)
        info = read_info(directory, cfg)
        shown = f"variant {info['variant']!r}" if info["variant"] else "the preset's own config"
        label = info["paper_label"] or "not in the paper's comparison"
        print(f"{directory.relative_to(out)}: {shown}; Table 1: {label}")
        done += 1
    print(f"wrote run.json in {done} run director{'y' if done == 1 else 'ies'} under {out / 'runs'}")
    if filled:
        print(f"recorded paper_data in the run.json of {filled} more run director{'y' if filled == 1 else 'ies'}")
    return 0
