"""What a study leaves beside its storage, and how suites use it.

    best.yaml       the best trial's keys (`set:`), its score, how it was found
    trials.csv      every trial: number, state, objective, params, seconds, run, note
    objective.png   the objective against each searched parameter (pruned trials at their last report)

`tuned_keys` reads best.yaml for a suite run (`--tuned`): the keys to apply and the
record that goes into the run's config (`tuned:`), which is part of the run's identity.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import yaml
from optuna.trial import TrialState

from benchmarks.tuning.study import StudySpec, counts
from rundir.atomic import write_csv, write_text
from rundir.run import model_label

BEST, TRIALS, PLOT = "best.yaml", "trials.csv", "objective.png"


def study_directory(out: Path, model: str, dataset: str, preset: str) -> Path:
    return Path(out) / "tuning" / model_label(model) / dataset / preset


def trials_frame(study: optuna.Study, objective: str) -> pd.DataFrame:
    """One row per trial: number, state, <objective>, last_report, last_step, <params...>, seconds, run, note."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        last_step = max(t.intermediate_values, default=None)
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                objective: t.value if t.state == TrialState.COMPLETE else math.nan,
                "last_report": t.intermediate_values[last_step] if last_step is not None else math.nan,
                "last_step": last_step if last_step is not None else math.nan,
                **t.params,
                "seconds": t.duration.total_seconds() if t.duration else math.nan,
                "started": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
                "worker": t.user_attrs.get("worker", ""),
                "run": t.user_attrs.get("run", ""),
                "note": t.user_attrs.get("note", ""),
            }
        )
    return pd.DataFrame(rows)


def best_record(study: optuna.Study, spec: StudySpec) -> dict | None:
    """The content of best.yaml, or None while no trial has completed."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    s = spec.settings
    return {
        "model": spec.model,
        "dataset": spec.dataset,
        "preset": spec.preset,
        "set": {k: float(v) for k, v in best.params.items()},
        "objective": spec.objective,
        "direction": spec.direction,
        "value": float(best.value),
        "trial": best.number,
        "run": best.user_attrs.get("run", ""),
        "trials": counts(study),
        "how": (
            f"optuna TPE (seed {s.seed}, {s.startup_trials} random trials first) over "
            + ", ".join(f"{p.key} in [{p.low:g}, {p.high:g}]{' log' if p.log else ''}" for p in s.params)
            + f"; objective: validation {spec.objective} averaged over the predicted frames of "
            f"{s.validation.videos} held-out training videos (seed {s.validation.seed}), "
            f"median pruning over {s.pruning.reports} intermediate scores"
        ),
        "study_set": list(spec.sets),  # --set items of every trial (e.g. a shorter step budget)
    }


def write_outputs(study: optuna.Study, spec: StudySpec) -> list[Path]:
    """best.yaml (once a trial completed), trials.csv, objective.png, in the study's directory."""
    d = spec.directory
    frame = trials_frame(study, spec.objective)
    write_csv(d / TRIALS, frame)
    files = [d / TRIALS]
    best = best_record(study, spec)
    if best is not None:
        header = f"# written by `python bench.py tune --model {spec.model} --dataset {spec.dataset} --preset {spec.preset}`\n"
        write_text(d / BEST, header + yaml.safe_dump(best, sort_keys=False))
        files.append(d / BEST)
    if len(frame):
        files.append(plot(frame, spec, d / PLOT))
    return files


def plot(frame: pd.DataFrame, spec: StudySpec, path: Path) -> Path:
    from reports.plotting import new_figure, save

    params = spec.settings.params
    fig, axes = new_figure(3.6 * len(params), 3.2, ncols=len(params))
    complete = frame[frame["state"] == "complete"]
    pruned = frame[frame["state"] == "pruned"]
    for ax, p in zip(axes[0], params):
        if p.key not in frame:
            continue
        ax.scatter(complete[p.key], complete[spec.objective], color="#4c72b0", label="complete (final score)")
        ax.scatter(
            pruned[p.key], pruned["last_report"], facecolors="none", edgecolors="#c44e52", label="pruned (last report)"
        )
        if p.log:
            ax.set_xscale("log")
        ax.set_xlabel(p.key)
        ax.set_ylabel(
            f"validation {spec.objective} ({'higher' if spec.direction == 'maximize' else 'lower'} is better)"
        )
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Study {spec.name}: {len(frame)} trials", fontsize=9, y=1.02)
    return save(fig, path)


# ---------------------------------------------------------------- suites (--tuned)


def read_best(directory: Path) -> dict | None:
    path = Path(directory) / BEST
    if not path.is_file():
        return None
    best = yaml.safe_load(path.read_text()) or {}
    if not isinstance(best.get("set"), dict):
        from benchmarks.config import ConfigError

        raise ConfigError(f"{path} has no `set:` mapping of keys; run the study again (python bench.py tune ...)")
    return best


def tuned_keys(out: Path, model: str, dataset: str, preset: str) -> tuple[list[str], dict] | None:
    """(--set items, the run's `tuned:` record) from the study of (model, dataset, preset), or None."""
    directory = study_directory(out, model, dataset, preset)
    best = read_best(directory)
    if best is None:
        return None
    sets = [f"{k}={v!r}" for k, v in best["set"].items()]
    record = {
        "study": directory.relative_to(out).as_posix(),
        "trial": best.get("trial"),
        "objective": best.get("objective"),
        "value": best.get("value"),
        "keys": dict(best["set"]),
        "how": best.get("how", ""),
    }
    return sets, record
