"""Suites: many (model, dataset, seed) runs from one YAML file, then the report.

    python bench.py --suite NAME [--preset P] [--seeds N] [--launcher local|slurm] [--jobs N]

A suite is benchmarks/configs/suites/<NAME>.yaml (or a path to a YAML file):

    description: one line
    preset: quick            # default preset; --preset overrides
    seeds: 1                 # default number of seeds (0..N-1); --seeds overrides
    horizon: {smoke: 12, quick: 100, paper: 964}   # predicted frames, for runs that set `context`
    grid:                    # every model x dataset (optional)
      models: [cwvae, notmpabs]
      datasets: [mmnist, kth]
      set: []                # --set items for every grid run
    runs:                    # single runs (optional)
      - model: cwvae
        dataset: mmnist
        label: 2 levels      # a name for eval_of and the printout
        set: [model.levels=2]
        context: 36          # eval.context; with `horizon`: data.test_length = context + horizon[preset]
        eval_of: 3 levels    # evaluate the model trained by the run labelled so (same seed): no training
    stand_in:                # a dataset used in place of one that is not prepared, with a note
      mmnist_official: mmnist
    tuned: true              # apply each model's tuning study (best.yaml of `bench.py tune`); --tuned overrides

Every run is an ordinary run directory (benchmarks/pipeline.py). Finished runs are
skipped, so a killed suite is simply run again. Before anything runs, the whole suite is
checked: an entry naming a model or dataset this checkout does not have, a run whose
config is invalid, or a run directory with a damaged file refuses the suite (ConfigError
naming the entry or the file). Datasets that are not prepared are skipped, listed with the
command that prepares them, and written to <out>/suites/<NAME>.json, which the report
shows; so is a dataset that stood in for another. With `tuned` (true: every model but
those the tuning settings keep at their published settings, i.e. CW-VAE; or a list of
models), a run whose study <out>/tuning/<model>/<dataset>/<preset>/best.yaml exists gets its
keys and records them in its config (`tuned:`, part of the run's identity); the others run
untuned, listed. Runs go through an executor: in this process one at a time
(--jobs 1), N local processes (--jobs N, concurrent.futures), or SLURM jobs through
submitit (--launcher slurm). There is no scheduler of our own.

This is a library: `run_suite` raises on bad input (ConfigError, PermissionError) and
reports progress through callbacks; `bench.py --suite` (benchmarks/commands/run.py) prints,
writes the report and turns errors into exit codes.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.config import CONFIG_DIR, DEFAULT_PRESET, ConfigError, load_yaml, resolve_config
from rundir.run import EVAL_ONLY, train_key

SUITE_DIR = CONFIG_DIR / "suites"
SUITE_KEYS = {"description", "preset", "seeds", "horizon", "grid", "runs", "stand_in", "tuned"}
GRID_KEYS = {"models", "datasets", "set"}
RUN_KEYS = {"model", "dataset", "label", "set", "context", "eval_of"}


@dataclass(frozen=True)
class RunSpec:
    model: str
    dataset: str
    seed: int
    preset: str
    sets: tuple[str, ...] = ()
    label: str = ""
    eval_of: str = ""  # label of the run whose trained model this one evaluates

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.label or self.model}/s{self.seed}"


@dataclass
class Plan:
    suite: str
    preset: str
    seeds: int
    # [(spec, cfg, base_cfg)]: a training run first, then runs that evaluate its model (base_cfg: that run's config)
    chains: list[list[tuple[RunSpec, object, object]]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    missing_datasets: list[dict] = field(default_factory=list)
    substitutes: list[dict] = field(default_factory=list)  # {dataset, used, command, note}: a stand-in was used
    tuned: list[dict] = field(default_factory=list)  # {model, dataset, study, keys}: settings from a study
    untuned: list[dict] = field(default_factory=list)  # {model, dataset, reason}: asked to be tuned, no study


# ---------------------------------------------------------------- the YAML


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def load_suite(name: str) -> tuple[str, dict]:
    """(name, validated mapping) of a suite given by name or by path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        spec, name = load_yaml(path), path.stem
    else:
        path = SUITE_DIR / f"{name}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown suite {name!r}; valid: {', '.join(suite_names())} (or a path to a YAML file)")
        spec = load_yaml(path)
    _check_keys(spec, SUITE_KEYS, f"suite {name}")
    _check_keys(spec.get("grid") or {}, GRID_KEYS, f"suite {name} grid")
    for i, run in enumerate(spec.get("runs") or []):
        if not isinstance(run, dict) or "model" not in run:
            raise ConfigError(f"suite {name} runs[{i}] must be a mapping with at least `model`, got {run!r}")
        _check_keys(run, RUN_KEYS, f"suite {name} runs[{i}]")
    if not spec.get("grid") and not spec.get("runs"):
        raise ConfigError(f"suite {name} lists no runs: give `grid:` (models x datasets) or `runs:`")
    if not isinstance(spec.get("stand_in") or {}, dict):
        raise ConfigError(f"suite {name} stand_in must map a dataset to the one used in its place")
    return name, spec


def check_names(name: str, spec: dict) -> None:
    """Refuse a suite that names a model or dataset this checkout does not have, naming the entry.
    A dataset that has a `stand_in` may be missing (the stand-in is used, with a note)."""
    from datasets import dataset_names
    from models import get_model_class

    datasets, replaceable = set(dataset_names()), set(spec.get("stand_in") or {})
    grid = spec.get("grid") or {}
    entries = [(f"grid.models: {m}", m, None) for m in grid.get("models") or []]
    entries += [(f"grid.datasets: {d}", None, d) for d in grid.get("datasets") or []]
    for i, run in enumerate(spec.get("runs") or []):
        entries.append((f"runs[{i}] ({run.get('label') or run['model']})", run["model"], run.get("dataset", "mmnist")))
    entries += [(f"stand_in: {k}: {v}", None, v) for k, v in (spec.get("stand_in") or {}).items()]
    for where, model, dataset in entries:
        if model is not None:
            try:
                get_model_class(str(model))
            except KeyError as e:
                raise ConfigError(f"suite {name} {where}: {e.args[0]}") from None
        if dataset is not None and str(dataset) not in datasets | replaceable:
            raise ConfigError(
                f"suite {name} {where}: unknown dataset {dataset!r}; valid: {', '.join(sorted(datasets))}"
            )


def _check_keys(d: dict, valid: set[str], where: str) -> None:
    unknown = sorted(set(d) - valid)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {', '.join(sorted(valid))}")


def expand(spec: dict, preset: str, seeds: int, extra_sets: list[str] = ()) -> list[RunSpec]:
    """The suite's runs for `preset` and seeds 0..seeds-1, in a fixed order (base runs before eval_of runs)."""
    out: list[RunSpec] = []
    grid = spec.get("grid") or {}
    horizon = (spec.get("horizon") or {}).get(preset)
    entries = [
        {"model": m, "dataset": d, "set": list(grid.get("set") or [])}
        for d in grid.get("datasets") or ["mmnist"]
        for m in grid.get("models") or []
    ]
    entries += list(spec.get("runs") or [])
    labels = {e.get("label") for e in entries if e.get("label")}
    for e in entries:
        sets = [str(s) for s in e.get("set") or []]
        if "context" in e:
            sets.append(f"eval.context={int(e['context'])}")
            if horizon is not None:
                sets.append(f"data.test_length={int(e['context']) + int(horizon)}")
        if e.get("eval_of") and e["eval_of"] not in labels:
            raise ConfigError(f"eval_of: {e['eval_of']!r} names no run label; labels: {sorted(labels)}")
        for seed in range(seeds):
            out.append(
                RunSpec(
                    model=str(e["model"]),
                    dataset=str(e.get("dataset", "mmnist")),
                    seed=seed,
                    preset=preset,
                    sets=tuple(sets) + tuple(extra_sets),
                    label=str(e.get("label", "")),
                    eval_of=str(e.get("eval_of", "")),
                )
            )
    return sorted(out, key=lambda s: bool(s.eval_of))  # stable: base runs first, order kept otherwise


# ---------------------------------------------------------------- planning


def stand_ins(spec: dict, preset: str, progress: bool = True) -> tuple[dict[str, str], list[dict]]:
    """{dataset: the dataset used in its place} for each `stand_in` dataset that is not prepared,
    and one note per substitution (for the manifest and the report)."""
    from benchmarks.config import resolve_data_config
    from datasets import DatasetCorrupt, DatasetNotReady, dataset_names, get_dataset

    used, notes = {}, []
    for wanted, fallback in (spec.get("stand_in") or {}).items():
        if wanted in dataset_names():
            dataset = get_dataset(resolve_data_config(wanted, preset))
            try:
                dataset.ensure_ready(progress=progress)
                continue  # prepared: the suite uses it
            except (DatasetNotReady, DatasetCorrupt):
                command = dataset.prepare_command()
        else:
            command = f"(dataset {wanted!r} is not available in this checkout)"
        used[wanted] = str(fallback)
        notes.append(
            {
                "dataset": wanted,
                "used": str(fallback),
                "command": command,
                "note": f"{wanted} is not prepared: its runs use {fallback} instead, which is not the same "
                f"test set (prepare it with `{command}` and run the suite again)",
            }
        )
    return used, notes


def tuned_models(tuned) -> set[str] | None:
    """The models a suite's `tuned` value asks to tune: None for false/absent, else a set
    ({'*'}: every model the tuning settings do not keep at its published settings)."""
    if tuned in (None, False):
        return None
    if tuned is True or tuned == "baselines":
        return {"*"}
    names = tuned.split(",") if isinstance(tuned, str) else tuned
    if not isinstance(names, (list, tuple)):
        raise ConfigError(f"tuned must be true, false or a list of models, got {tuned!r}")
    return {str(n).strip() for n in names if str(n).strip()}


def apply_tuning(s: RunSpec, wanted: set[str], out: Path, plan: Plan) -> tuple[RunSpec, dict]:
    """The run with its study's best keys (and the `tuned` record for its config), if it is to be tuned."""
    from benchmarks.tuning.outputs import tuned_keys
    from benchmarks.tuning.settings import load_settings, trains

    if not trains(s.model, s.dataset):
        return s, {}
    if "*" in wanted:
        if s.model in load_settings(s.model, s.dataset, s.preset).keep_paper_settings:
            return s, {}
    elif s.model not in wanted:
        return s, {}
    found = tuned_keys(out, s.model, s.dataset, s.preset)
    if found is None:
        item = {
            "model": s.model,
            "dataset": s.dataset,
            "reason": f"no study; run: python bench.py tune --model {s.model} --dataset {s.dataset} --preset {s.preset}",
        }
        if item not in plan.untuned:
            plan.untuned.append(item)
        return s, {}
    sets, record = found
    item = {"model": s.model, "dataset": s.dataset, "study": record["study"], "keys": record["keys"]}
    if item not in plan.tuned:
        plan.tuned.append(item)
    return dataclasses.replace(s, sets=(*s.sets, *sets)), record


def plan_suite(
    name: str, spec: dict, preset: str, seeds: int, out: Path, extra_sets=(), progress=True, tuned=None
) -> Plan:
    """Resolve every run, prepare generated datasets, and group what is left to do into chains.
    tuned: overrides the suite's `tuned` (see `tuned_models`)."""
    from benchmarks.pipeline import is_finished, record_run
    from datasets import DatasetCorrupt, DatasetNotReady, get_dataset
    from rundir.run import RunDirError, check_run_files

    plan = Plan(suite=name, preset=preset, seeds=seeds)
    check_names(name, spec)
    substitute, plan.substitutes = stand_ins(spec, preset, progress)
    specs = [
        dataclasses.replace(s, dataset=substitute[s.dataset]) if s.dataset in substitute else s
        for s in expand(spec, preset, seeds, extra_sets)
    ]
    # every run's config first (each key's range, names): a bad one refuses the suite before any data is made
    configs = []
    wanted = tuned_models(spec.get("tuned") if tuned is None else tuned)
    for s in specs:
        try:
            record = {}
            if wanted is not None:
                s, record = apply_tuning(s, wanted, out, plan)
            cfg = resolve_config(s.model, s.dataset, preset, sets=list(s.sets), seed=s.seed)
            configs.append((s, dataclasses.replace(cfg, tuned=record)))
        except ConfigError as e:
            raise ConfigError(f"suite {name}, run {s.name}: {e}") from None
    damaged = []
    for s, cfg in configs:
        try:
            check_run_files(cfg.run_dir(out))
        except RunDirError as e:
            damaged.append(f"{s.name}: {e.path} is damaged ({e.reason})")
    if damaged:
        raise ConfigError(
            f"suite {name}: {len(damaged)} run director{'y has' if len(damaged) == 1 else 'ies have'} a damaged "
            f"file: {'; '.join(damaged)}. Repair or delete them (or redo that run alone with --force), then run "
            "the suite again"
        )
    resolved: list[tuple[RunSpec, object]] = []
    data_state: dict[str, str] = {}  # dataset directory -> "" ready, else the reason
    for s, cfg in configs:
        dataset = get_dataset(cfg.data)
        key = str(dataset.directory)
        if key not in data_state:
            try:
                dataset.ensure_ready(progress=progress)  # generated datasets are made here, once, not in workers
                data_state[key] = ""
            except (DatasetNotReady, DatasetCorrupt) as e:
                data_state[key] = str(e)
                item = {"dataset": s.dataset, "command": dataset.prepare_command(), "reason": str(e)}
                if all(m["dataset"] != s.dataset for m in plan.missing_datasets):
                    plan.missing_datasets.append(item)
        if data_state[key]:
            continue
        resolved.append((s, cfg))

    by_label = {(s.label, s.seed, s.dataset): (s, cfg) for s, cfg in resolved if s.label and not s.eval_of}
    chains: dict[str, list] = {}
    for s, cfg in resolved:
        directory = cfg.run_dir(out)
        if s.eval_of:
            base = by_label.get((s.eval_of, s.seed, s.dataset))
            if base is None:
                continue  # its base run was skipped (missing model or dataset)
            if train_key(base[1].to_dict()) != train_key(cfg.to_dict()):
                raise ConfigError(
                    f"suite {name}: {s.name} has eval_of {s.eval_of!r} but changes more than "
                    f"{', '.join(EVAL_ONLY)}; give it its own training (drop eval_of)"
                )
            chain_key = str(base[1].run_dir(out))
        else:
            base = None
            chain_key = str(directory)
        if is_finished(directory):
            record_run(directory, cfg.to_dict(), overwrite=False)  # finished before run.json existed
            plan.finished.append(str(directory))
            continue
        chains.setdefault(chain_key, []).append((s, cfg, base[1] if s.eval_of else None))
    plan.chains = list(chains.values())
    return plan


# ---------------------------------------------------------------- one job (runs in any process)


def copy_checkpoint(base_dir: Path, directory: Path) -> None:
    from benchmarks.trainer import CHECKPOINT
    from rundir.atomic import atomic_open

    with open(base_dir / CHECKPOINT, "rb") as src, atomic_open(directory / CHECKPOINT, "wb") as dst:
        shutil.copyfileobj(src, dst)


def execute_chain(chain: list[tuple], out: str, device: str, progress: bool, threads: int = 0) -> list[dict]:
    """Run a chain (a training run, then runs that only evaluate its model). Returns one dict per run."""
    import torch

    from benchmarks.pipeline import is_finished, run_one
    from rundir.run import update_status

    if threads:
        torch.set_num_threads(threads)
    out_path = Path(out)
    results = []
    for spec, cfg, base_cfg in chain:
        tic = time.perf_counter()
        directory = cfg.run_dir(out_path)
        try:
            if base_cfg is not None:
                base_dir = base_cfg.run_dir(out_path)
                if not is_finished(base_dir):
                    raise RuntimeError(f"the run whose model it evaluates ({spec.eval_of}) did not finish")
                directory.mkdir(parents=True, exist_ok=True)
                copy_checkpoint(base_dir, directory)
                run_one(cfg, out_path, device, progress=progress, re_eval=True)  # scores the copy; trains nothing
                update_status(directory, trained_in=str(base_dir.relative_to(out_path)))
            else:
                run_one(cfg, out_path, device, progress=progress)
            results.append(
                {
                    "run": spec.name,
                    "dir": str(directory),
                    "status": "done",
                    "seconds": round(time.perf_counter() - tic, 1),
                }
            )
        except Exception as e:  # one failed run must not stop the others; it is reported
            results.append(
                {
                    "run": spec.name,
                    "dir": str(directory),
                    "status": "failed",
                    "error": f"{type(e).__name__}: {e}",
                    "trace": traceback.format_exc(limit=5),
                }
            )
    return results


# ---------------------------------------------------------------- executors


def _quiet(result: dict) -> None:
    pass


def run_local(
    chains, out: Path, device: str, jobs: int, progress: bool, on_result: Callable[[dict], None] = _quiet
) -> list[dict]:
    if jobs <= 1:
        results = []
        for chain in chains:
            for r in execute_chain(chain, str(out), device, progress):
                on_result(r)
                results.append(r)
        return results
    import concurrent.futures
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)  # share the cores instead of oversubscribing them
    results = []
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: safe with torch
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(execute_chain, chain, str(out), device, False, threads) for chain in chains]
        for future in concurrent.futures.as_completed(futures):
            for r in future.result():
                on_result(r)
                results.append(r)
    return results


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None  # SLURM partition
    time: int = 24 * 60  # minutes per job
    gpus: int = 1  # GPUs per job (what `--gpus` says; pass --gpus 0 for CPU jobs)
    cpus_per_task: int = 4


def run_slurm(
    chains,
    out: Path,
    device: str,
    options: SlurmOptions = SlurmOptions(),
    cluster: str | None = None,
    on_result: Callable[[dict], None] = _quiet,
) -> list[dict]:
    """One SLURM job per chain through submitit; waits for them. cluster='debug' runs them here (tests)."""
    import submitit

    folder = out / "slurm" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = {
        "timeout_min": int(options.time),
        "name": "cwbench",
        "gpus_per_node": int(options.gpus),
        "cpus_per_task": int(options.cpus_per_task),
    }
    if options.partition:
        params["slurm_partition"] = options.partition
    executor.update_parameters(**params)
    jobs = []
    with executor.batch():
        for chain in chains:
            jobs.append((chain, executor.submit(execute_chain, chain, str(out), device, False)))
    if jobs and cluster != "debug":
        print(
            f"submitted {len(jobs)} SLURM job(s) (logs in {out / 'slurm'}); waiting for them. If you stop "
            "waiting, the jobs go on: run the report later, or this suite again once they have ended."
        )
    results = []
    for chain, job in jobs:
        try:
            chain_results = job.result()
        except Exception as e:  # the job itself died (time limit, node failure): every run of it failed
            chain_results = [
                {"run": s.name, "status": "failed", "error": f"SLURM job {job.job_id}: {e}"} for s, _, _ in chain
            ]
        for r in chain_results:
            on_result(r)
            results.append(r)
    return results


# ---------------------------------------------------------------- the command


def write_manifest(plan: Plan, results: list[dict], out: Path) -> Path:
    """<out>/suites/<suite>.json, which the report reads (rundir.run.read_suites)."""
    from rundir.run import write_suite_manifest

    return write_suite_manifest(
        out,
        plan.suite,
        {
            "suite": plan.suite,
            "preset": plan.preset,
            "seeds": plan.seeds,
            "already_finished": len(plan.finished),
            "ran": sorted(r["run"] for r in results if r["status"] == "done"),
            "failed": [{"run": r["run"], "error": r["error"]} for r in results if r["status"] != "done"],
            "missing_datasets": plan.missing_datasets,
            "stand_ins": plan.substitutes,
            "tuned": plan.tuned,
            "untuned": plan.untuned,
        },
    )


@dataclass
class SuiteOutcome:
    plan: Plan
    results: list[dict]  # one per run done now: run, dir, status (done | failed), seconds or error
    manifest: Path  # <out>/suites/<name>.json

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.results if r["status"] != "done"]


def run_suite(
    suite: str,
    out: Path,
    preset: str | None = None,
    seeds: int | None = None,
    device: str = "cpu",
    launcher: str = "local",
    jobs: int = 1,
    sets: list[str] = (),
    progress: bool = True,
    slurm: SlurmOptions = SlurmOptions(),
    on_plan: Callable[[Plan, str], None] = lambda plan, description: None,
    on_result: Callable[[dict], None] = _quiet,
    tuned=None,
) -> SuiteOutcome:
    """Plan the suite, run what is missing, write its manifest. Raises ConfigError / PermissionError
    on bad input before any run starts; a failed run is in the outcome, not raised."""
    from rundir.run import check_writable

    out = Path(out)
    name, spec = load_suite(suite)
    preset = preset or spec.get("preset", DEFAULT_PRESET)
    seeds = int(seeds if seeds is not None else spec.get("seeds", 1))
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if launcher not in ("local", "slurm"):
        raise ConfigError(f"--launcher must be local or slurm, got {launcher!r}")
    plan = plan_suite(name, spec, preset, seeds, out, list(sets), progress=progress, tuned=tuned)
    check_writable(out)  # after the plan's checks: a refused suite leaves no empty --out behind
    on_plan(plan, str(spec.get("description", "")).strip())
    if launcher == "slurm":
        results = run_slurm(plan.chains, out, device, slurm, on_result=on_result)
    else:
        results = run_local(plan.chains, out, device, jobs, progress=progress, on_result=on_result)
    return SuiteOutcome(plan, results, write_manifest(plan, results, out))
