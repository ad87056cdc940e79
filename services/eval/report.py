"""An evaluation's report: `report.json` (metrics, deltas, judge verdicts and the worst samples
per metric) and PNG charts (`metrics.png`: each metric side by side per model version;
`distributions.png`: the per-sample score distribution of each metric per model version)."""

from __future__ import annotations

import math
from typing import Any

from services.eval.metrics import LOWER_IS_BETTER
from services.kit.charts import png, pyplot

WORST_SAMPLES = 5


def build(name: str, spec: dict[str, Any], results: list[dict[str, Any]], predictions: list[dict]) -> dict:
    worst: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for result in results:
        mine = [p for p in predictions if p["model_version"] == result["model_version"]]
        for metric in result["metrics"]:
            scored = [p for p in mine if metric in p["scores"]]
            scored.sort(key=lambda p: p["scores"][metric], reverse=metric in LOWER_IS_BETTER)
            worst.setdefault(result["model_version"], {})[metric] = [
                {
                    "sample_id": p["sample_id"],
                    "score": p["scores"][metric],
                    "prompt": p["prompt"],
                    "reference": p["reference"],
                    "prediction": p["prediction"],
                }
                for p in scored[:WORST_SAMPLES]
            ]
    return _finite(
        {
            "evaluation": name,
            "dataset_version": spec["dataset_version"],
            "baseline": results[0]["model_version"] if results else "",
            "metrics": list(spec["metrics"]),
            "lower_is_better": sorted(LOWER_IS_BETTER & set(spec["metrics"])),
            "results": results,
            "worst_samples": worst,
        }
    )


def _finite(value: Any) -> Any:
    """The report with every NaN or infinity as null: JSON (and PostgreSQL) have no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def charts(report: dict[str, Any], predictions: list[dict]) -> dict[str, bytes]:
    plt = pyplot()
    import numpy as np

    names = report["metrics"]
    models = [
        r["model_version"].rsplit("/models/", 1)[-1].replace("/versions/", "/") for r in report["results"]
    ]
    out: dict[str, bytes] = {}
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], names, strict=True):
        values = [r["metrics"].get(metric, math.nan) for r in report["results"]]
        bars = ax.bar(range(len(models)), values, color=[colors[i % len(colors)] for i in range(len(models))])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_xticks(range(len(models)), models, rotation=20, ha="right", fontsize=8)
        ax.set_title(metric + (" (lower is better)" if metric in LOWER_IS_BETTER else ""), fontsize=9)
    fig.tight_layout()
    out["metrics.png"] = png(fig)

    per_sample = [m for m in names if any(m in p["scores"] for p in predictions)]
    if per_sample:
        fig, axes = plt.subplots(1, len(per_sample), figsize=(3.2 * len(per_sample), 3.4), squeeze=False)
        for ax, metric in zip(axes[0], per_sample, strict=True):
            data = [
                np.array(
                    [
                        p["scores"][metric]
                        for p in predictions
                        if p["model_version"] == r["model_version"] and metric in p["scores"]
                    ]
                )
                for r in report["results"]
            ]
            ax.boxplot([d if d.size else np.zeros(1) for d in data], showmeans=True)
            ax.set_xticks(range(1, len(models) + 1), models, rotation=20, ha="right", fontsize=8)
            ax.set_title(f"{metric} per sample", fontsize=9)
        fig.tight_layout()
        out["distributions.png"] = png(fig)
    return out
