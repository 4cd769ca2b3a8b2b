"""The paper's studies, each found in the run directories by what differs between runs.

- levels (Table 2): CW-VAE runs on Moving MNIST with different `model.levels`; KL per
  level from train.jsonl, with the paper's Table 2 as reference rows.
- factor (Fig 1): 3-level CW-VAE runs on Moving MNIST with different `model.factor`;
  per-horizon curves, with the naive references (random frame) and the other models.
- speed (Fig 8): CW-VAE runs on Moving MNIST with different `data.speed`; KL per level
  against speed.
- top_prior (Fig 7): runs with `eval.use_obs` switching a level off; strips of the
  ground truth, the normal prediction (the run that shares the training) and the
  predictions with the level drawn from its prior.

A study is written when its runs exist (at least two distinct values of its variable;
one `use_obs` run for top_prior). Each returns the files it wrote.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from reports import markdown
from reports.aggregate import curves_over_seeds, over_seeds, run_rows
from reports.curves import plot_curves
from reports.plotting import color_of, new_figure, save
from reports.reference import dataset_title, directions, higher_is_better, metric_order, metric_title, paper_table2
from reports.samples import write_strip
from rundir.atomic import write_csv, write_text
from rundir.run import Run, read_samples, read_train_log

STUDY_MODEL = "cwvae"  # the suites levels, factor, speed and top_prior (benchmarks/configs/suites/) train it
STUDY_DATASET = "mmnist"


def final_kl(run: Run, tail: float = 0.1) -> dict[int, float]:
    """{level: KL} from train.jsonl: the mean of `train/kl_levelN` over the last `tail` of the logged steps."""
    log = read_train_log(run.directory)
    cols = sorted(
        (c for c in log if c.startswith("train/kl_level")), key=lambda c: int(c.removeprefix("train/kl_level"))
    )
    if log.empty or not cols:
        return {}
    last = log.tail(max(1, int(round(len(log) * tail))))
    return {int(c.removeprefix("train/kl_level")): float(last[c].mean()) for c in cols}


def _plain(run: Run) -> bool:
    """A CW-VAE run on Moving MNIST that uses every level's posterior during the context."""
    return run.model == STUDY_MODEL and run.dataset == STUDY_DATASET and not list(run.get("eval.use_obs", []) or [])


def _unique_training(runs: list[Run]) -> list[Run]:
    """One run per training (runs that differ only in their evaluation share their KLs)."""
    seen, out = set(), []
    for run in runs:
        if run.train_key not in seen:
            seen.add(run.train_key)
            out.append(run)
    return out


def kl_rows(runs: list[Run], keys: dict[str, str]) -> pd.DataFrame:
    """Per run: the `keys` config values (name -> dotted key), seed, seq_len and final KL per level."""
    rows = []
    for run in _unique_training(runs):
        kl = final_kl(run)
        if not kl:
            continue
        row = {
            "preset": run.preset,
            **{name: run.get(dotted) for name, dotted in keys.items()},
            "seed": run.seed,
            "seq_len": run.get("train.seq_len"),
            "steps": int(run.status.get("steps", 0)),
        }
        row.update({f"kl_level{lv}": v for lv, v in kl.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def mean_over_seeds(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    kl_cols = sorted((c for c in rows if c.startswith("kl_level")), key=lambda c: int(c.removeprefix("kl_level")))
    grouped = rows.groupby(by, sort=True)
    frame = grouped[kl_cols].mean()
    frame["seeds"] = grouped["seed"].nunique()
    frame["seq_len"] = grouped["seq_len"].first()
    frame["steps"] = grouped["steps"].max()
    return frame.reset_index()


# ---------------------------------------------------------------- levels (Table 2)


def levels_study(runs: list[Run], out: Path) -> list[Path]:
    rows = kl_rows(
        [r for r in runs if _plain(r) and float(r.get("data.speed", 1.0)) == 1.0],
        {"levels": "model.levels", "factor": "model.factor"},
    )
    if rows.empty or rows.groupby("preset")["levels"].nunique().max() < 2:
        return []
    ours = mean_over_seeds(rows, ["preset", "levels", "factor"])
    paper = paper_table2().assign(preset="paper", seeds=np.nan, seq_len=100, steps=np.nan)
    table = pd.concat([ours, paper], ignore_index=True)
    kl_cols = sorted((c for c in table if c.startswith("kl_level")), key=lambda c: int(c.removeprefix("kl_level")))
    table = table[["preset", "levels", "factor", *kl_cols, "seeds", "seq_len", "steps"]]
    directory = out / "studies"
    write_csv(directory / "levels.csv", table)
    lines = [
        "# Levels: KL per level (Table 2)",
        "",
        "KL of each level summed over the level's active time steps of a training sequence of `seq_len` "
        "frames, averaged over the last 10% of the logged training steps and over seeds (train.jsonl). "
        "The paper's rows (Table 2) are for 100-frame sequences after full training; at other sequence "
        "lengths and shorter training only the pattern across levels compares.",
        "",
    ]
    for preset, g in table.groupby("preset", sort=False):
        lines.append(f"## {'The paper (Table 2)' if preset == 'paper' else f'Preset `{preset}`'}\n")
        body = [
            [
                f"{int(r.levels)}-level CW-VAE",
                int(r.factor) if r.levels > 1 else "–",  # one level: no abstraction
                *[("–" if pd.isna(getattr(r, c)) else f"{getattr(r, c):.4g}") for c in kl_cols],
                "" if pd.isna(r.seeds) else int(r.seeds),
                int(r.seq_len),
            ]
            for r in g.sort_values(["levels", "factor"], ascending=[False, True]).itertuples()
        ]
        lines.append(
            markdown.table(
                ["model", "factor", *[f"level {c.removeprefix('kl_level')}" for c in kl_cols], "seeds", "seq_len"], body
            )
        )
    write_text(directory / "levels.md", "\n".join(lines))
    fig, axes = new_figure(6.0, 3.6)
    ax = axes[0][0]
    sources = [(p, g) for p, g in table.groupby("preset", sort=False)]
    width = 0.8 / max(1, len(kl_cols))
    for i, c in enumerate(kl_cols):
        labels, values = [], []
        for preset, g in sources:
            for r in g.sort_values(["levels", "factor"]).itertuples():
                labels.append(f"{preset}\n{int(r.levels)}L k{int(r.factor)}")
                values.append(getattr(r, c))
        x = np.arange(len(labels)) + (i - (len(kl_cols) - 1) / 2) * width
        ax.bar(x, np.nan_to_num(np.asarray(values, float), nan=0.0), width, label=f"level {i + 1}", color=color_of(i))
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=6)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_ylim(0, 3 * float(np.nanmax(table[kl_cols].to_numpy(float))))
    ax.set_ylabel("KL per sequence (nats)")
    ax.legend(fontsize=7)
    ax.set_title("KL per level (Table 2)", fontsize=10)
    return [directory / "levels.csv", directory / "levels.md", save(fig, directory / "levels.png")]


# ---------------------------------------------------------------- factor (Fig 1)


def factor_study(runs: list[Run], out: Path, colors: dict[str, int]) -> list[Path]:
    files = []
    chosen = [r for r in runs if _plain(r) and r.get("model.levels") == 3 and float(r.get("data.speed", 1.0)) == 1.0]
    for preset in sorted({r.preset for r in chosen}):
        mine = [r for r in chosen if r.preset == preset]
        factors = sorted({int(r.get("model.factor")) for r in mine})
        if len(factors) < 2:
            continue
        relabelled = [dataclasses.replace(r, variant=f"factor {int(r.get('model.factor'))}") for r in mine]
        others = [
            r
            for r in runs
            if r.dataset == STUDY_DATASET and r.preset == preset and not r.variant and r.model != STUDY_MODEL
        ]  # random frame (Fig 1's line) and the other models, as they are
        curves = curves_over_seeds(relabelled + others)
        if curves.empty:
            continue
        curves = curves[curves["preset"] == preset]
        study_colors = {r.entry: factors.index(int(r.get("model.factor"))) for r in relabelled}
        study_colors.update(
            {e: len(factors) + colors.get(e, 0) for e in curves["entry"].unique() if e not in study_colors}
        )
        contexts = {
            k: sorted({int(r.get("eval.context")) for r in mine if int(r.get("model.factor")) == k}) for k in factors
        }
        write_csv(out / "studies" / f"factor_{preset}.csv", curves)
        files.append(out / "studies" / f"factor_{preset}.csv")
        for metric in metric_order(curves["metric"].unique()):
            g = curves[curves["metric"] == metric]
            title = (
                f"{dataset_title(STUDY_DATASET, mine[0].paper_dataset)}: CW-VAE abstraction factors (preset {preset}, contexts "
                + ", ".join(f"k{k}: {'/'.join(map(str, c))}" for k, c in contexts.items())
                + ")"
            )
            files.append(plot_curves(g, title, metric, out / "studies" / f"factor_{preset}_{metric}.png", study_colors))
        summary = over_seeds(run_rows(relabelled + others))
        files.append(
            _write_summary_md(
                summary,
                out / "studies" / f"factor_{preset}.md",
                f"# Abstraction factor (Fig 1), preset `{preset}`",
                "3-level CW-VAE with factors "
                + ", ".join(map(str, factors))
                + " on Moving MNIST; each factor's context is a multiple of factor^2 "
                "(above), all predict the same number of frames. Curves: "
                + ", ".join(f"`factor_{preset}_{m}.png`" for m in metric_order(curves["metric"].unique()))
                + ".",
            )
        )
    return files


def _write_summary_md(summary: pd.DataFrame, path: Path, title: str, text: str) -> Path:
    metrics = metric_order(summary["metric"].unique())
    rows = []
    for entry, g in summary.groupby("entry", sort=True):
        g = g.set_index("metric")
        rows.append(
            [
                entry,
                *[markdown.number(g.loc[m, "value"], m) if m in g.index else "–" for m in metrics],
                int(g["n_seeds"].max()),
            ]
        )
    recorded = directions(summary)
    header = ["run", *[metric_title(m) + (" ↑" if higher_is_better(m, recorded) else " ↓") for m in metrics], "seeds"]
    write_text(path, f"{title}\n\n{text}\n\nMeans over predicted frames:\n\n" + markdown.table(header, rows))
    return path


# ---------------------------------------------------------------- speed (Fig 8)


def speed_study(runs: list[Run], out: Path) -> list[Path]:
    rows = kl_rows(
        [r for r in runs if _plain(r)], {"speed": "data.speed", "levels": "model.levels", "factor": "model.factor"}
    )
    if rows.empty:
        return []
    files = []
    for (preset, levels, factor), g in rows.groupby(["preset", "levels", "factor"], sort=True):
        if g["speed"].nunique() < 2:
            continue
        table = mean_over_seeds(g, ["preset", "levels", "factor", "speed"])
        stem = out / "studies" / f"speed_{preset}_L{levels}_k{factor}"
        write_csv(stem.with_suffix(".csv"), table)
        kl_cols = [f"kl_level{lv}" for lv in range(1, int(levels) + 1) if f"kl_level{lv}" in table]
        names = {1: "bottom level", int(levels): "top level"}
        fig, axes = new_figure(5.2, 3.6)
        ax = axes[0][0]
        for c in kl_cols:
            lv = int(c.removeprefix("kl_level"))
            ax.plot(
                table["speed"] * 100,
                table[c],
                marker="o",
                color=color_of(lv - 1),
                label=f"level {lv}" + (f" ({names[lv]})" if lv in names and levels > 1 else ""),
            )
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.set_xlabel("speed of the moving digits (%)")
        ax.set_ylabel("KL per sequence (nats)")
        ax.set_title(
            f"KL per level vs digit speed (Fig 8); {int(levels)} levels, factor {int(factor)}, {preset}", fontsize=9
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        files += [stem.with_suffix(".csv"), save(fig, stem.with_suffix(".png"))]
        body = [
            [f"{100 * r.speed:g}%", *[f"{getattr(r, c):.4g}" for c in kl_cols], int(r.seeds), int(r.seq_len)]
            for r in table.itertuples()
        ]
        text = (
            "# Digit speed (Fig 8)\n\nKL per level (summed over a training sequence of `seq_len` frames, last "
            "10% of the logged steps, mean over seeds) of CW-VAE trained on Moving MNIST at each speed "
            f"(`data.speed`, 100% = 2-6 px/frame). {int(levels)} levels, factor {int(factor)}, preset "
            f"`{preset}`.\n\n"
        )
        write_text(
            stem.with_suffix(".md"),
            text
            + markdown.table(
                ["speed", *[f"level {c.removeprefix('kl_level')}" for c in kl_cols], "seeds", "seq_len"], body
            ),
        )
        files.append(stem.with_suffix(".md"))
    return files


# ---------------------------------------------------------------- top_prior (Fig 7)


def top_prior_study(runs: list[Run], out: Path) -> list[Path]:
    files = []
    normal_by_key = {
        r.train_key: r
        for r in runs
        if r.finished
        and not list(r.get("eval.use_obs", []) or [])
        and (r.directory / "samples" / "samples.npz").exists()
    }
    blind = [r for r in runs if r.finished and False in list(r.get("eval.use_obs", []) or [])]
    table_rows = []
    for run in blind:
        samples = read_samples(run.directory)
        if samples is None:
            continue
        flags = list(run.get("eval.use_obs"))
        off = [str(i + 1) for i, f in enumerate(flags) if not f]
        what = f"level{'s' if len(off) > 1 else ''} {', '.join(off)} from the prior"
        rows = []
        normal = normal_by_key.get(run.train_key)
        gt, context = samples["gt"][0], samples["context"]
        if normal is not None:
            ref = read_samples(normal.directory)
            if (
                ref is not None
                and ref["context"] == context
                and ref["gt"].shape[1:] == samples["gt"].shape[1:]
                and np.array_equal(ref["gt"][0], gt)
            ):
                rows.append(("all levels see the context", ref["pred"][0, 0]))
                table_rows.append((run, normal))
        for i in range(samples["pred"].shape[1]):
            rows.append((f"{what}, sample {i + 1}", samples["pred"][0, i]))
        stem = out / "studies" / "top_prior" / f"{run.preset}_{run.dataset}_{run.model}_s{run.seed}"
        title = (
            f"{dataset_title(run.dataset, run.paper_dataset)}, {run.title} (preset {run.preset}, seed {run.seed}): "
            f"{what} during the context (Fig 7)"
        )
        files += write_strip(gt, rows, context, title, stem)
    if table_rows:
        lines = [
            "# Top level from the prior (Fig 7)",
            "",
            "Predictions where the marked levels follow their prior during the context (they never see "
            "the context frames), against the same trained model with every level observing. Means over "
            "predicted frames and over samples; strips in `top_prior/`.",
            "",
        ]
        body = []
        for run, normal in table_rows:
            a = over_seeds(run_rows([normal], "mean")).set_index("metric")  # mean over samples: fair to 1 vs n
            b = over_seeds(run_rows([run], "mean")).set_index("metric")
            for m in metric_order(a.index.intersection(b.index)):
                body.append(
                    [
                        f"{run.dataset}/{run.preset}/s{run.seed}",
                        metric_title(m),
                        markdown.number(a.loc[m, "value"], m),
                        markdown.number(b.loc[m, "value"], m),
                    ]
                )
        lines.append(
            markdown.table(
                [
                    "run",
                    "metric",
                    "all levels observe",
                    "use_obs " + str([str(f).lower() for f in table_rows[0][0].get("eval.use_obs")]).replace("'", ""),
                ],
                body,
            )
        )
        write_text(out / "studies" / "top_prior.md", "\n".join(lines))
        files.append(out / "studies" / "top_prior.md")
    return files


def write_studies(runs: list[Run], out: Path, colors: dict[str, int]) -> dict[str, list[Path]]:
    return {
        "levels": levels_study(runs, out),
        "factor": factor_study(runs, out, colors),
        "speed": speed_study(runs, out),
        "top_prior": top_prior_study(runs, out),
    }
