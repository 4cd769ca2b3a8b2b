"""Training curves from train.jsonl: loss and KL per level against optimizer steps.

One figure per (preset, dataset): the first panel is `train/loss` (negative ELBO per
frame for the VAEs), then one panel per `train/kl_levelN` (KL summed over the level's
active steps of a training sequence). Every seed is one line in its model's colour.
"""

from __future__ import annotations

from pathlib import Path

from reports.plotting import color_of, new_figure, save
from reports.reference import dataset_title
from rundir.run import Run, read_train_log

Y_LABELS = {"train/loss": "training loss\n(negative ELBO per frame for the VAEs)"}
WIDE = 100.0  # a KL panel whose positive values span more than this factor gets a symlog axis


def write_training(runs: list[Run], out: Path, colors: dict[str, int]) -> list[Path]:
    groups: dict[tuple[str, str], list[tuple[Run, object]]] = {}
    for run in runs:
        log = read_train_log(run.directory)
        if log.empty or "train/loss" not in log:
            continue  # nothing trained (naive references) or no step logged yet
        groups.setdefault((run.preset, run.dataset), []).append((run, log))
    files = []
    for (preset, dataset), items in sorted(groups.items(), key=lambda kv: kv[0]):
        levels = sorted(
            {int(c.removeprefix("train/kl_level")) for _, log in items for c in log if c.startswith("train/kl_level")}
        )
        columns = ["train/loss"] + [f"train/kl_level{lv}" for lv in levels]
        fig, axes = new_figure(3.6 * len(columns), 3.2, ncols=len(columns))
        labelled = set()
        for run, log in items:
            color = color_of(colors.get(run.entry, 0))
            for ax, col in zip(axes[0], columns):
                if col not in log:
                    continue
                label = None if run.entry in labelled else run.entry
                ax.plot(log["step"], log[col], color=color, lw=1.0, alpha=0.85, label=label)
            labelled.add(run.entry)
        for ax, col in zip(axes[0], columns):
            ax.set_title(col.removeprefix("train/"), fontsize=9)
            ax.set_xlabel("optimizer step")
            ax.set_ylabel(Y_LABELS.get(col) or f"KL of level {col.removeprefix('train/kl_level')}\n(nats per sequence)")
            ax.grid(alpha=0.3)
            if col != "train/loss" and spans_decades([log[col] for _, log in items if col in log]):
                ax.set_yscale("symlog", linthresh=1e-2)  # a narrow range stays linear: symlog would show no ticks
            else:
                ax.ticklabel_format(axis="y", useOffset=False)  # 3861.0, not 0.0 and "+3.861e3" above
        axes[0][0].legend(fontsize=7)
        name = dataset_title(dataset, items[0][0].paper_dataset)
        fig.tight_layout()  # no y label over its neighbour's ticks
        fig.suptitle(f"Training on {name} (preset {preset}); one line per seed", fontsize=9, y=1.04)
        files.append(save(fig, out / "training" / preset / f"{dataset}.png"))
    return files


def spans_decades(series: list) -> bool:
    """Whether the positive values of `series` (pandas Series) span more than WIDE (a log axis helps)."""
    values = [v for x in series for v in x.dropna().tolist() if v > 0]
    return bool(values) and max(values) > WIDE * min(values)
