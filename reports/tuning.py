"""Which runs were tuned and how: the `tuned:` record of their config.yaml (written by a suite
run with `--tuned`, from the study's best.yaml; benchmarks/tuning)."""

from __future__ import annotations

TUNED_LEGEND = (
    "Rows marked [tuned] were trained with the settings `python bench.py tune` chose for them on a validation "
    "split of the training videos (the test videos are never used to tune); the report's Tuning section says "
    "which keys and from which study. The other rows use their model YAML's settings."
)


def tuning_lines(runs) -> list[str]:
    """One line per (model, dataset, preset, study) that was tuned, then the trained models that were not."""
    tuned: dict[tuple, dict] = {}
    untuned: set[tuple] = set()
    for r in runs:
        if r.tuned:
            tuned.setdefault((r.model, r.dataset, r.preset, r.tuned.get("study", "")), r.tuned)
        elif not r.is_reference:
            untuned.add((r.model, r.dataset, r.preset))
    lines = []
    for (model, dataset, preset, study), t in sorted(tuned.items()):
        keys = ", ".join(f"`{k}={v:.4g}`" for k, v in (t.get("keys") or {}).items())
        value = t.get("value")
        score = f", validation {t.get('objective')} {value:.4g}" if isinstance(value, (int, float)) else ""
        lines.append(
            f"- `{model}` on `{dataset}` (`{preset}`): {keys} from `{study}` (trial {t.get('trial')}{score}); "
            f"{t.get('how', '')}"
        )
    for model, dataset, preset in sorted(untuned):
        lines.append(f"- `{model}` on `{dataset}` (`{preset}`): not tuned (its model YAML's settings)")
    return lines
