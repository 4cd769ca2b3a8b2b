"""The paper's published numbers (reports/paper/*.csv) and the names reports print.

The paper's rows are keyed by the paper's own names (models "CW-VAE", datasets "Moving
MNIST"); our runs carry the same names in their run.json (the model's `paper_label`, the
dataset's `paper_dataset`), written by the pipeline. So nothing here knows a registry name
of a model or a dataset, and nothing here imports the harness. Metrics are named as the
run directories name them (`ssim`); METRIC_LABELS only prints them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from rundir.stats import metric_info

PAPER_DIR = Path(__file__).parent / "paper"

# our metric names -> the paper's column names (Table 1); the official-mode twins print with a mark
METRIC_LABELS = {"ssim": "SSIM", "psnr": "PSNR", "lpips": "LPIPS", "fvd": "FVD"}
PAPER_METRICS = list(METRIC_LABELS)  # the paper's four, in its column order


def _inverse(labels: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in labels.items()}


@functools.lru_cache(maxsize=1)
def _table1_raw() -> pd.DataFrame:
    return pd.read_csv(PAPER_DIR / "table1.csv")


def paper_models() -> list[str]:
    """The paper's five models as Table D.2 lists them (its order: the colours of our plots)."""
    return pd.read_csv(PAPER_DIR / "table_d2_params.csv")["model"].tolist()


def paper_datasets() -> list[str]:
    """The paper's four datasets, in the order Table 1 (our CSV of it) first names them."""
    return list(dict.fromkeys(_table1_raw()["dataset"]))


def metric_title(name: str) -> str:
    """'ssim' -> 'SSIM'; an official-mode twin 'ssim_official' -> 'SSIM (official)'."""
    twin = metric_info(name).official_of
    if twin:
        return f"{METRIC_LABELS.get(twin, twin.upper())} (official)"
    return METRIC_LABELS.get(name, name.upper())


def metric_order(metrics) -> list[str]:
    """The paper's four first, each followed by its official-mode twin, then any other alphabetically."""
    metrics = set(metrics)
    twins = {metric_info(m).official_of: m for m in metrics if metric_info(m).official_of}
    out = []
    for m in PAPER_METRICS:
        out += [x for x in (m, twins.get(m)) if x in metrics]
    return out + sorted(metrics - set(out))


def dataset_order(datasets, paper_name: dict[str, str | None] | None = None) -> list[str]:
    """Datasets in the paper's order (by their paper name, `paper_name` {dataset: name}), then the others."""
    names = paper_name or {}
    order = paper_datasets()

    def key(d: str):
        name = names.get(d, d)
        return (order.index(name) if name in order else len(order), d)

    return sorted(set(datasets), key=key)


def dataset_title(name: str, paper_name: str | None = None) -> str:
    """A dataset's printed name: its name in the paper when it is one of the paper's."""
    return paper_name or name


def paper_table1() -> pd.DataFrame:
    """Table 1 as a long frame: dataset, metric, model (the paper's names; metrics as ours), value."""
    raw = _table1_raw()
    frame = pd.DataFrame(
        {
            "dataset": raw["dataset"],
            "metric": raw["metric"].map(_inverse(METRIC_LABELS)),
            "model": raw["model"],
            "value": raw["value"].astype(float),
        }
    )
    if frame.isna().any().any():
        raise ValueError(f"{PAPER_DIR / 'table1.csv'} holds a metric outside reports/reference.py's METRIC_LABELS")
    return frame


def paper_mean_rank() -> pd.DataFrame:
    """Figure 5: model (the paper's name), mean_rank as printed (two decimals)."""
    return pd.read_csv(PAPER_DIR / "fig5_mean_rank.csv")[["model", "mean_rank"]]


def paper_table2() -> pd.DataFrame:
    """Table 2: levels, factor, kl_level1..kl_level4 (NaN where a model has no such level)."""
    raw = pd.read_csv(PAPER_DIR / "table2_kl_per_level.csv")
    rows = []
    for _, r in raw.iterrows():
        levels = int(str(r["model"]).split("-")[0])
        row = {"levels": levels, "factor": 4 if levels == 4 else 6}  # the paper's text, Section 3.8
        row.update({f"kl_level{i}": float(r[f"level{i}"]) for i in range(1, 5)})
        rows.append(row)
    return pd.DataFrame(rows).sort_values("levels").reset_index(drop=True)


def paper_params() -> dict[tuple[str, str], str]:
    """Table D.2: (model, 'small' | 'large') -> the printed count ('12M'), where the paper gives one."""
    table = pd.read_csv(PAPER_DIR / "table_d2_params.csv", dtype=str).fillna("")
    return {(r["model"], v): r[v] for _, r in table.iterrows() for v in ("small", "large") if r[v]}


def paper_train_hours() -> dict[str, float]:
    """Table D.1: model -> hours for 100 epochs on one Titan Xp."""
    table = pd.read_csv(PAPER_DIR / "table_d1_train_hours.csv")
    return dict(zip(table["model"], table["hours_100_epochs_titan_xp"].astype(float)))


def higher_is_better(metric: str, recorded: dict[str, bool] | None = None) -> bool:
    """A metric's direction: as the run directories recorded it (`recorded`), else rundir.stats.METRICS
    (the paper's rows, runs written before run.json); a metric neither knows counts as higher-better."""
    if recorded and metric in recorded:
        return bool(recorded[metric])
    return metric_info(metric).higher_is_better


def directions(frame: pd.DataFrame) -> dict[str, bool]:
    """{metric: higher_is_better} from a frame's `metric` and `higher_is_better` columns."""
    if frame is None or not len(frame) or "higher_is_better" not in frame:
        return {}
    rows = frame[["metric", "higher_is_better"]].dropna().drop_duplicates("metric")
    return {m: bool(h) for m, h in zip(rows["metric"], rows["higher_is_better"])}
