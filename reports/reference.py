"""The paper's published numbers (reports/paper/*.csv) and the names that link them to ours.

Everything here is in the harness's registry names (`cwvae`, `mmnist`, `ssim`); the
paper's display names are kept only for labels.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rundir.stats import metric_info

PAPER_DIR = Path(__file__).parent / "paper"

# registry name -> the paper's name
MODEL_LABELS = {"cwvae": "CW-VAE", "notmpabs": "NoTmpAbs", "rssm": "RSSM", "vta": "VTA", "svg": "SVG"}
DATASET_LABELS = {"mmnist": "Moving MNIST", "kth": "KTH Action", "minerl": "MineRL Navigate", "mazes": "GQN Mazes"}
METRIC_LABELS = {"ssim": "SSIM", "psnr": "PSNR", "lpips": "LPIPS", "fvd": "FVD"}

PAPER_MODELS = list(MODEL_LABELS)  # the five models of Table 1
PAPER_DATASETS = ["mmnist", "kth", "minerl", "mazes"]
PAPER_METRICS = ["ssim", "psnr", "lpips", "fvd"]


def _inverse(labels: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in labels.items()}


# the naive references of baselines/naive.py
REFERENCE_LABELS = {"copy_last": "Copy last", "random_frame": "Random frame"}


def model_title(name: str) -> str:
    """'cwvae' -> 'CW-VAE'; an entry 'cwvae [model.levels=2]' keeps its variant: 'CW-VAE [model.levels=2]'."""
    base, sep, rest = name.partition(" [")
    return {**REFERENCE_LABELS, **MODEL_LABELS}.get(base, base) + (sep + rest if sep else "")


def dataset_title(name: str) -> str:
    return DATASET_LABELS.get(name, name)


def metric_title(name: str) -> str:
    return METRIC_LABELS.get(name, name.upper())


def metric_order(metrics) -> list[str]:
    """The paper's four first, then any other metric alphabetically."""
    metrics = set(metrics)
    return [m for m in PAPER_METRICS if m in metrics] + sorted(metrics - set(PAPER_METRICS))


def dataset_order(datasets) -> list[str]:
    datasets = set(datasets)
    return [d for d in PAPER_DATASETS if d in datasets] + sorted(datasets - set(PAPER_DATASETS))


def paper_table1() -> pd.DataFrame:
    """Table 1 as a long frame: dataset, metric, model (registry names), value."""
    raw = pd.read_csv(PAPER_DIR / "table1.csv")
    frame = pd.DataFrame(
        {
            "dataset": raw["dataset"].map(_inverse(DATASET_LABELS)),
            "metric": raw["metric"].map(_inverse(METRIC_LABELS)),
            "model": raw["model"].map(_inverse(MODEL_LABELS)),
            "value": raw["value"].astype(float),
        }
    )
    if frame.isna().any().any():
        raise ValueError(f"{PAPER_DIR / 'table1.csv'} holds a name outside reports/reference.py's label maps")
    return frame


def paper_mean_rank() -> pd.DataFrame:
    """Figure 5: model (registry name), mean_rank as printed (two decimals)."""
    raw = pd.read_csv(PAPER_DIR / "fig5_mean_rank.csv")
    return pd.DataFrame({"model": raw["model"].map(_inverse(MODEL_LABELS)), "mean_rank": raw["mean_rank"]})


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


def higher_is_better(metric: str) -> bool:
    """Direction of a metric (rundir.stats.METRICS; a metric it does not know: higher)."""
    return metric_info(metric).higher_is_better
