"""The study: optuna's storage shared by every worker, the workers, and how a killed study continues.

    <out>/tuning/<model>/<dataset>/<preset>/
        study.db        optuna's SQLite storage (or --storage URL, e.g. PostgreSQL on a cluster)
        runs/           one ordinary run directory per trial (benchmarks/pipeline.py)

Workers (this process, `--jobs K` local processes, or SLURM jobs through submitit) share
the study through its storage: each asks optuna for a trial, runs it, tells the result.
The TPE sampler is seeded; each worker draws from its own stream of that seed (seed,
worker, trials in the study when it started), so two workers, or a worker started again,
never propose the same parameters. TPE's constant liar keeps running trials from being
proposed twice.

A killed study continues when the same command is run again: finished trials stay
finished. A trial whose worker died (SIGKILL, node failure) stops sending heartbeats;
after `heartbeat.grace` seconds optuna marks it failed and enqueues a copy with the same
parameters (RetryFailedTrialCallback, intermediate values kept), whose run is the same
run directory, so its training resumes from its last checkpoint. A trial stopped by
Ctrl-C is re-enqueued the same way when the study is started again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from benchmarks.commands import UsageError
from benchmarks.tuning.settings import TuningSettings
from rundir.run import model_label

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STUDY_DB = "study.db"
# optuna's heartbeat and retry API is marked experimental; it has been stable since 2.9 and
# is what lets several machines share a study. Its warnings say nothing the user can act on.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
INTERRUPTED = "interrupted"  # user attr of a trial stopped by Ctrl-C (re-enqueued on the next start)
RESUMES = "resumes"  # user attr of the re-enqueued copy: the number of the trial it continues


@dataclass(frozen=True)
class StudySpec:
    """Everything a worker needs, picklable (it crosses process and SLURM boundaries)."""

    model: str
    dataset: str
    preset: str
    seed: int  # every trial's run seed
    sets: tuple[str, ...]  # --set items applied to every trial
    settings: TuningSettings
    objective: str  # resolved: lpips | ssim | psnr
    out: str  # the results directory
    storage: str = ""  # optuna storage URL; "" = sqlite:///<directory>/study.db
    device: str = "cpu"

    @property
    def directory(self) -> Path:
        return Path(self.out) / "tuning" / model_label(self.model) / self.dataset / self.preset

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.directory / STUDY_DB).resolve()}"

    @property
    def name(self) -> str:
        return f"{model_label(self.model)}-{self.dataset}-{self.preset}"

    @property
    def direction(self) -> str:
        from rundir.stats import metric_info

        return "maximize" if metric_info(self.objective).higher_is_better else "minimize"

    def identity(self) -> dict:
        """What a study keeps: run again with other values, it refuses instead of mixing two searches."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "preset": self.preset,
            "seed": self.seed,
            "set": list(self.sets),
            **self.settings.identity(),
            "objective": self.objective,
        }


def storage(spec: StudySpec) -> RDBStorage:
    engine = {"connect_args": {"timeout": 120}} if spec.storage_url.startswith("sqlite") else {}
    if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # optuna >= 4.9
        retry = {"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback}
    else:
        retry = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback}
    ((keyword, callback),) = retry.items()
    return RDBStorage(
        spec.storage_url,
        engine_kwargs=engine,
        heartbeat_interval=spec.settings.heartbeat.interval,
        grace_period=spec.settings.heartbeat.grace,
        # a dead worker's trial runs again with the same parameters: the same run, resumed
        **{keyword: callback(max_retry=3, inherit_intermediate_values=True)},
    )


def sampler_seed(spec: StudySpec, worker: int, trials_so_far: int) -> int:
    """The seed of one worker's TPE sampler: its own stream, the same on every re-run of the same state."""
    key = f"{spec.settings.seed}/{worker}/{trials_so_far}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little")


def open_study(spec: StudySpec, worker: int = 0) -> optuna.Study:
    """Create the study, or load it and check that it is the same search."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec.directory.mkdir(parents=True, exist_ok=True)
    store = storage(spec)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=spec.settings.pruning.startup_trials,
        n_warmup_steps=0,  # warm-up counts reports, below (MedianPruner counts steps)
        n_min_trials=1,
    )
    study = optuna.create_study(storage=store, study_name=spec.name, direction=spec.direction, load_if_exists=True)
    existing = study.user_attrs.get("cwbench")
    if existing is None:
        study.set_user_attr("cwbench", spec.identity())
    elif existing != spec.identity():
        changed = [k for k in spec.identity() if existing.get(k) != spec.identity()[k]]
        shown = "; ".join(f"{k}: study {existing.get(k)!r}, now {spec.identity()[k]!r}" for k in changed)
        raise UsageError(
            f"the study in {spec.directory} was made with other settings ({shown}); run it with its settings, "
            "or remove that directory to start a new study"
        )
    seed = sampler_seed(spec, worker, len(study.trials))
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.settings.startup_trials)
    return optuna.load_study(study_name=spec.name, storage=store, sampler=sampler, pruner=WarmupPruner(pruner, spec))


class WarmupPruner(optuna.pruners.BasePruner):
    """The median rule, never before a trial's `warmup_reports`-th report."""

    def __init__(self, inner: optuna.pruners.BasePruner, spec: StudySpec):
        self.inner, self.warmup = inner, spec.settings.pruning.warmup_reports

    def prune(self, study, trial) -> bool:
        return len(trial.intermediate_values) > self.warmup and self.inner.prune(study, trial)


def counts(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def recover(spec: StudySpec, say: Callable[[str], None] = print) -> None:
    """Before workers start: re-enqueue trials stopped by Ctrl-C, and retry trials whose worker died
    (waiting once up to the heartbeat grace period for trials that may still be alive elsewhere)."""
    study = open_study(spec)
    resumed = {t.user_attrs.get(RESUMES) for t in study.get_trials(deepcopy=False)}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.user_attrs.get(INTERRUPTED) and t.number not in resumed:
            study.enqueue_trial(t.params, user_attrs={RESUMES: t.number}, skip_if_exists=False)
            say(f"trial {t.number} was interrupted: it continues (same parameters, same run directory)")
    optuna.storages.fail_stale_trials(study)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running:
        grace = spec.settings.heartbeat.grace
        say(
            f"trial(s) {', '.join(str(t.number) for t in running)} marked running: waiting {grace + 1} s "
            "(the heartbeat grace period) to tell whether their workers are alive"
        )
        time.sleep(grace + 1)
        optuna.storages.fail_stale_trials(study)  # dead ones: failed and enqueued again with their parameters


def run_trial(trial: optuna.Trial, spec: StudySpec, progress: bool) -> float:
    """The objective: one trial as one run; its validation score."""
    from benchmarks.pipeline import run_one
    from benchmarks.trainer import NonFiniteLoss
    from benchmarks.tuning.trial import pruning_hook, suggest, trial_config
    from rundir.run import read_summary

    cfg = trial_config(spec, suggest(trial, spec.settings))
    directory = cfg.run_dir(spec.directory)
    trial.set_user_attr("run", directory.relative_to(spec.directory).as_posix())
    try:
        run_one(cfg, spec.directory, spec.device, progress=progress, hook=pruning_hook(trial, spec, cfg))
    except NonFiniteLoss as e:  # a learning rate that diverges: a bad setting, stopped early
        trial.set_user_attr("note", f"diverged: non-finite loss at step {e.step}")
        raise optuna.TrialPruned(str(e)) from None
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) or type(e).__name__ == "TrainingInterrupted":
            trial.set_user_attr(INTERRUPTED, True)
        raise
    summary = read_summary(directory)
    row = summary[(summary["metric"] == spec.objective) & (summary["aggregate"] == "best")]
    return float(row["value"].iloc[0])


def worker(spec: StudySpec, index: int, n_trials: int, threads: int = 0, progress: bool = False) -> list[int]:
    """Run up to `n_trials` trials of the study (fewer once it has `settings.trials` finished ones).
    Returns the numbers of the trials this worker finished."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    study = open_study(spec, index)
    done: list[int] = []

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state in FINISHED:
            done.append(trial.number)
        print(describe(trial, spec.objective), flush=True)
        from benchmarks.tuning.outputs import write_outputs

        write_outputs(study, spec)  # after every trial: a long study can be read while it runs
        if finished(study) >= spec.settings.trials:
            study.stop()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", index)
        return run_trial(trial, spec, progress)

    if n_trials > 0 and finished(study) < spec.settings.trials:
        study.optimize(objective, n_trials=n_trials, callbacks=[after])
    return done


def describe(trial: optuna.trial.FrozenTrial, objective: str) -> str:
    params = ", ".join(f"{k}={v:.4g}" for k, v in trial.params.items())
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    if trial.state == TrialState.COMPLETE:
        result = f"{objective} {trial.value:.4g}"
    else:
        result = trial.state.name.lower() + (f" ({trial.user_attrs['note']})" if trial.user_attrs.get("note") else "")
    return f"  trial {trial.number}: {params} -> {result} ({seconds:.0f} s)"


def shares(total: int, jobs: int) -> list[int]:
    """`total` trials over `jobs` workers: [3, 2] for 5 over 2."""
    return [total // jobs + (1 if i < total % jobs else 0) for i in range(jobs)]


def run_local(spec: StudySpec, todo: int, jobs: int, progress: bool) -> None:
    if jobs <= 1:
        worker(spec, 0, todo, progress=progress)
        return
    import concurrent.futures
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)  # share the cores instead of oversubscribing them
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: safe with torch
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(worker, spec, i, n, threads) for i, n in enumerate(shares(todo, jobs)) if n]
        for future in concurrent.futures.as_completed(futures):
            future.result()


def run_slurm(spec: StudySpec, todo: int, jobs: int, options, cluster: str | None = None) -> None:
    """One SLURM job per worker through submitit (options: benchmarks.suite.SlurmOptions); waits for them."""
    import submitit

    executor = submitit.AutoExecutor(folder=spec.directory / "slurm" / "%j", cluster=cluster)
    params = {
        "timeout_min": int(options.time),
        "name": f"cwbench-tune-{spec.name}",
        "gpus_per_node": int(options.gpus),
        "cpus_per_task": int(options.cpus_per_task),
    }
    if options.partition:
        params["slurm_partition"] = options.partition
    executor.update_parameters(**params)
    with executor.batch():
        submitted = [executor.submit(worker, spec, i, n) for i, n in enumerate(shares(todo, jobs)) if n]
    if cluster != "debug":
        print(f"submitted {len(submitted)} SLURM job(s) (logs in {spec.directory / 'slurm'}); waiting for them")
    for job in submitted:
        job.result()


def with_trials(spec: StudySpec, trials: int) -> StudySpec:
    return dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, trials=trials))
