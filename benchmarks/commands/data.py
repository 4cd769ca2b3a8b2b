"""`python bench.py data ...`: prepare, import and list datasets.

    data list
    data prepare mmnist [--preset P] [--set data.k=v]          generate Moving MNIST
    data prepare NAME --source PATH [--allow-skip] [--force]   kth | minerl | mazes | mmnist_official
    data prepare folder --source DIR --name NAME [--size 64] [--channels auto|1|3]
                        [--test-fraction 0.1] [--train-length N] [--test-length N]
    data verify NAME                                           sha256 of every split against the manifest

`--preset` (mmnist only) picks the generated variant; without it, the default preset's
(benchmarks/config.py DEFAULT_PRESET), the one `bench.py --model M` trains on. Exit codes
(benchmarks/cli.py): 0 ok, 2 bad input (unknown name, bad source, corrupt files),
130 interrupted (run the same command again: it resumes).
"""

from __future__ import annotations

import argparse

from benchmarks.commands import UsageError, add_set_argument
from benchmarks.config import DEFAULT_PRESET, resolve_data_config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.py data", description="Prepare, import and list datasets.")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every dataset: ready or not, size, location, the command that prepares it")
    prep = sub.add_parser("prepare", help="prepare a dataset (see `data list` for names) or import a folder")
    prep.add_argument("name", help="dataset name, or `folder` to import your own videos")
    prep.add_argument("--source", help="the downloaded archive, or the folder holding it / its extracted files")
    prep.add_argument(
        "--allow-skip",
        action="store_true",
        help="skip corrupt, truncated or missing files with a warning instead of stopping",
    )
    prep.add_argument("--force", action="store_true", help="prepare again even if it is already prepared")
    prep.add_argument("--no-progress", action="store_true", help="no progress bar")
    prep.add_argument(
        "--preset", default=None, help=f"mmnist: generate the variant of this preset (default: {DEFAULT_PRESET})"
    )
    add_set_argument(prep, example="data.speed=0.5", what="a data key of mmnist")
    folder = prep.add_argument_group("folder import (`data prepare folder`)")
    folder.add_argument("--name", dest="folder_name", help="name of the new dataset (used as --dataset NAME)")
    folder.add_argument("--size", type=int, default=64, help="frame height and width after crop+resize (64)")
    folder.add_argument("--channels", default="auto", help="auto | 1 | 3 (auto: 1 if every item is gray)")
    folder.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        help="share of videos in test when DIR has no train/ and test/ subfolders (0.1)",
    )
    folder.add_argument("--train-length", type=int, default=0, help="frames per training clip (0: shortest video)")
    folder.add_argument("--test-length", type=int, default=0, help="frames per test clip (0: shortest video)")
    verify = sub.add_parser("verify", help="check every stored split's sha256 against the manifest")
    verify.add_argument("name")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.action == "list":
        return list_datasets()
    if args.action == "verify":
        return verify(args.name)
    return prepare(args)


def canonical(name: str) -> str:
    """`mmnist-official` and `mmnist_official` are the same dataset."""
    from datasets import dataset_names

    alt = name.replace("-", "_")
    return alt if name not in dataset_names() and alt in dataset_names() else name


def prepare(args) -> int:
    from datasets import get_dataset
    from datasets.prepare import PreparedDataset

    progress = not args.no_progress
    if args.name == "folder":
        return import_folder(args, progress)
    if args.folder_name:
        raise UsageError(f"--name is for `data prepare folder`; {args.name} is prepared by its own name")
    name = canonical(args.name)
    ds = get_dataset(resolve_data_config(name, args.preset or DEFAULT_PRESET, args.sets))
    if hasattr(ds, "generate"):  # generated (Moving MNIST): no source
        if args.source:
            raise UsageError(f"{name} is generated, it takes no --source (the official archive is mmnist_official)")
        if ds.is_ready() and not args.force:
            print(f"{name} is already generated in {ds.directory}")
            return 0
        ds.generate(progress=progress)
        print(f"{name} generated in {ds.directory}")
        return 0
    if not isinstance(ds, PreparedDataset):
        raise UsageError(f"{name} cannot be prepared by this command")
    if args.preset or args.sets:
        raise UsageError(f"--preset/--set do not change how {name} is stored; use them on a run")
    if not args.source:
        raise UsageError(f"give the downloaded files: {ds.prepare_command()}")
    manifest = ds.prepare(args.source, allow_skip=args.allow_skip, force=args.force, progress=progress)
    print(summary(name, ds, manifest))
    return 0


def import_folder(args, progress: bool) -> int:
    from datasets.folder import FolderOptions
    from datasets.folder import import_folder as run_import

    if not args.source or not args.folder_name:
        raise UsageError("give both: data prepare folder --source DIR --name NAME")
    options = FolderOptions(
        size=args.size,
        channels=str(args.channels),
        test_fraction=args.test_fraction,
        train_length=args.train_length,
        test_length=args.test_length,
    )
    ds = run_import(args.source, args.folder_name, options, args.allow_skip, args.force, progress)
    manifest = ds.manifest()
    print(summary(args.folder_name, ds, manifest))
    horizon_note(args.folder_name, manifest["splits"]["test"]["shape"][1])
    print(f"use it as: python bench.py --model cwvae --dataset {args.folder_name}")
    return 0


def horizon_note(name: str, test_frames: int) -> None:
    """Say how far the protocol can predict on these test clips; warn when it is not far enough."""
    import sys

    from benchmarks.config import EvalConfig, field_rule

    context = EvalConfig().context
    fvd_frames = field_rule(EvalConfig, "fvd_frames")["min"]  # I3D's shortest input
    horizon = test_frames - context
    clips = f"the test clips of {name} have {test_frames} frames"
    if horizon <= 0:
        print(
            f"warning: {clips}: the protocol's {context} context frames leave nothing to predict (longest "
            f"usable horizon: 0 frames). Use longer test videos (--test-length N cuts N-frame clips), or run "
            f"a model that allows a shorter context with --set eval.context=C (a horizon of {test_frames} - C)",
            file=sys.stderr,
        )
    elif horizon < fvd_frames:
        print(
            f"warning: {clips}: after the {context} context frames the longest usable horizon is {horizon} "
            f"predicted frame(s), too short for FVD (it needs {fvd_frames}); longer test videos predict further",
            file=sys.stderr,
        )
    else:
        print(
            f"{clips}: {context} context frames, then up to {horizon} predicted (data.test_length={test_frames}; "
            "lower it for a shorter horizon)"
        )


def summary(name: str, ds, manifest: dict) -> str:
    parts = [f"{split} {s['videos']} x {s['shape'][1]} frames" for split, s in manifest["splits"].items()]
    skipped = sum(len(v) for v in (manifest.get("source") or {}).get("skipped", {}).values())
    extra = f" ({skipped} file(s) skipped)" if skipped else ""
    return f"{name} ready in {ds.directory}: {', '.join(parts)}{extra}"


def verify(name: str) -> int:
    from datasets import DatasetNotReady, get_dataset

    ds = get_dataset(resolve_data_config(canonical(name), DEFAULT_PRESET))
    if not ds.is_ready():
        raise DatasetNotReady(f"{name} is not prepared in {ds.directory}; run: {ds.prepare_command()}")
    for split in ds.manifest()["splits"]:
        ds.verify(split)
    print(f"{name}: every split matches its manifest's sha256 ({ds.directory})")
    return 0


# ---------------------------------------------------------------- data list


def rows() -> list[dict]:
    """One row per dataset (its default config), plus other prepared variants found on disk."""
    from datasets import dataset_names, get_dataset

    out = []
    for name in dataset_names():
        try:
            ds = get_dataset(resolve_data_config(name, DEFAULT_PRESET))
        except Exception as e:  # a broken YAML must not hide the other datasets
            out.append(
                {"name": name, "ready": False, "train": "", "test": "", "location": f"config error: {e}", "command": ""}
            )
            continue
        out.append(row(name, ds))
        parent = ds.directory.parent
        if parent.is_dir():
            for variant in sorted(p for p in parent.iterdir() if p.is_dir() and p != ds.directory):
                if (variant / "manifest.json").exists():
                    out.append(row(name, ds, variant))
    return out


def row(name: str, ds, directory=None) -> dict:
    import json

    directory = directory or ds.directory
    try:
        manifest = (
            json.loads((directory / "manifest.json").read_text()) if (directory / "manifest.json").exists() else None
        )
    except json.JSONDecodeError:
        manifest = None
    splits = (manifest or {}).get("splits", {})

    def size(split: str) -> str:
        s = splits.get(split)
        return f"{s['videos']:,} x {s['shape'][1]:,} = {s['frames']:,}" if s else "-"

    ready = all(s in splits for s in ("train", "test"))
    return {
        "name": name,
        "ready": ready,
        "partial": bool(splits) and not ready,
        "train": size("train"),
        "test": size("test"),
        "location": str(directory),
        "command": ds.prepare_command(),
    }


def list_datasets() -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="datasets (data root: $CWBENCH_DATA or ./data)")
    for col in ("name", "ready", "train videos x frames", "test videos x frames", "location", "prepare with"):
        table.add_column(col, overflow="fold")
    for r in rows():
        state = "[green]yes[/green]" if r["ready"] else ("[yellow]partial[/yellow]" if r.get("partial") else "no")
        table.add_row(r["name"], state, r["train"], r["test"], r["location"], r["command"])
    Console(width=max(160, Console().width)).print(table)
    return 0
