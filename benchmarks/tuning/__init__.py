"""`bench.py tune`: the paper's tuning of the baselines, as a resumable, parallel optuna study.

The paper tunes each baseline's learning rate in [1e-4, 1e-3] and decoder std in
[0.1, 1] (Section 3.1). `tune` searches those ranges (benchmarks/configs/tuning/) with
optuna's TPE sampler, every trial an ordinary run trained without a held-out validation
split of the training videos and scored on it open loop (datasets/validation.py,
benchmarks/tuning/trial.py); the test split is never read. Bad trials stop early (median
pruning over intermediate validation scores). The study lives in
<out>/tuning/<model>/<dataset>/<preset>/ (benchmarks/tuning/study.py) with best.yaml,
trials.csv and objective.png (benchmarks/tuning/outputs.py), which `--suite S --tuned`
applies to the suite's runs.

A library: `tune` raises on bad input (ConfigError, UsageError, PermissionError);
benchmarks/commands/tune.py prints and turns errors into exit codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.tuning.outputs import read_best, study_directory, tuned_keys, write_outputs
from benchmarks.tuning.settings import TuningSettings, load_settings, resolve_objective, trains
from benchmarks.tuning.study import StudySpec, counts, finished, open_study, recover, run_local, run_slurm

__all__ = ["TuneOutcome", "prepare", "read_best", "study_directory", "tune", "tuned_keys", "TuningSettings"]


@dataclass
class TuneOutcome:
    spec: StudySpec
    ran: int  # trials started by this command
    counts: dict[str, int]  # trials of the study by state
    best: dict | None  # best.yaml's content, None while no trial has completed
    files: list[Path]
    seconds: float


def prepare(
    model: str,
    dataset: str,
    preset: str,
    out: Path,
    trials: int | None = None,
    objective: str | None = None,
    sets: tuple[str, ...] = (),
    seed: int = 0,
    storage: str = "",
    device: str = "cpu",
    progress: bool = True,
) -> StudySpec:
    """Check everything a study needs before its first trial; returns its spec. The dataset is made
    ready and the validation split carved (recorded in the manifest) here, once; the test split is not read."""
    from benchmarks.commands import UsageError
    from benchmarks.config import resolve_config
    from benchmarks.pipeline import split_videos
    from benchmarks.tuning.trial import trial_config
    from datasets import get_dataset
    from rundir.run import check_writable

    resolve_config(model, dataset, preset, sets=list(sets), seed=seed)  # names a bad model, dataset or key
    if not trains(model, dataset):
        raise UsageError(f"model {model!r} trains nothing: there is nothing to tune")
    settings = load_settings(model, dataset, preset, trials=trials, objective=objective)
    objective = resolve_objective(settings.objective)
    spec = StudySpec(model, dataset, preset, seed, tuple(sets), settings, objective, str(out), storage, device)
    corner = trial_config(spec, {p.key: p.low for p in settings.params})  # every searched key exists
    check_writable(Path(out))
    dataset_obj = get_dataset(corner.data)
    dataset_obj.ensure_ready(progress=progress)
    split_videos(dataset_obj, corner)  # raises if the validation videos cannot serve the protocol
    return spec


def tune(
    spec: StudySpec,
    jobs: int = 1,
    launcher: str = "local",
    slurm=None,
    progress: bool = True,
    say: Callable[[str], None] = print,
    cluster: str | None = None,
) -> TuneOutcome:
    """Run the study's missing trials on `jobs` workers, then write its outputs."""
    from benchmarks.commands import UsageError

    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if launcher not in ("local", "slurm"):
        raise UsageError(f"--launcher must be local or slurm, got {launcher!r}")
    tic = time.perf_counter()
    recover(spec, say)
    study = open_study(spec)
    todo = max(0, spec.settings.trials - finished(study))
    say(
        f"study {spec.name} ({spec.storage_url}): objective validation {spec.objective} ({spec.direction}); "
        f"{finished(study)} of {spec.settings.trials} trials finished, {todo} to run on {jobs} "
        f"{'SLURM job' if launcher == 'slurm' else 'worker'}(s)"
    )
    if todo:
        if launcher == "slurm":
            from benchmarks.suite import SlurmOptions

            run_slurm(spec, todo, jobs, slurm or SlurmOptions(), cluster=cluster)
        else:
            run_local(spec, todo, jobs, progress=progress and jobs == 1)
    study = open_study(spec)
    files = write_outputs(study, spec)
    return TuneOutcome(spec, todo, counts(study), read_best(spec.directory), files, time.perf_counter() - tic)
