"""Datasets and experiments from Phoenix, summarised and compared; results are cached briefly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from services.cache import cache
from services.phoenix import PhoenixClient

CACHE_S = 30
EXPERIMENT_COLUMNS = [
    "id",
    "dataset",
    "name",
    "runs",
    "failed",
    "mean_latency_ms",
    "evaluations",
    "created_at",
]


@dataclass(frozen=True)
class Comparison:
    """Two experiments side by side: score deltas per evaluator and a per-example diff."""

    deltas: pd.DataFrame
    examples: pd.DataFrame


def _cached(key: str, compute: Any) -> Any:
    hit = cache.get(key)
    if hit is not None:
        return hit
    value = compute()
    cache.set(key, value, timeout=CACHE_S)
    return value


def _runs(phoenix: PhoenixClient, experiment_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _cached(
        f"experiment-runs:{experiment_id}",
        lambda: phoenix.experiment_runs_with_evaluations(experiment_id),
    )
    return runs


def _scores(runs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "example_id": run["example_id"],
            "name": a["name"],
            "score": a.get("score"),
            "label": a.get("label"),
        }
        for run in runs
        for a in run.get("annotations") or []
    ]
    return pd.DataFrame(rows, columns=["example_id", "name", "score", "label"])


def experiments_table(phoenix: PhoenixClient) -> pd.DataFrame:
    """List every dataset's experiments with run counts, mean latency and evaluation means."""

    def compute() -> pd.DataFrame:
        rows = []
        for dataset in phoenix.datasets():
            for experiment in phoenix.experiments(dataset["id"]):
                runs = _runs(phoenix, experiment["id"])
                latencies = [r["latency_ms"] for r in runs if r.get("latency_ms") is not None]
                means = _scores(runs).dropna(subset=["score"]).groupby("name")["score"].mean()
                rows.append(
                    {
                        "id": experiment["id"],
                        "dataset_id": dataset["id"],
                        "dataset": dataset["name"],
                        "name": experiment["name"],
                        "runs": experiment.get("successful_run_count", len(runs)),
                        "failed": experiment.get("failed_run_count", 0),
                        "mean_latency_ms": round(sum(latencies) / len(latencies), 1)
                        if latencies
                        else None,
                        "evaluations": ", ".join(f"{k} {v:.2f}" for k, v in means.items()),
                        "created_at": experiment.get("created_at"),
                    }
                )
        return pd.DataFrame(rows, columns=[*EXPERIMENT_COLUMNS, "dataset_id"])

    frame: pd.DataFrame = _cached("experiments-table", compute)
    return frame


def compare(phoenix: PhoenixClient, experiment_a: str, experiment_b: str) -> Comparison:
    """Compare B with A: mean score per evaluator, and each example's outputs and scores."""
    runs_a, runs_b = _runs(phoenix, experiment_a), _runs(phoenix, experiment_b)
    scores_a, scores_b = _scores(runs_a), _scores(runs_b)
    means = pd.DataFrame(
        {
            "a": scores_a.dropna(subset=["score"]).groupby("name")["score"].mean(),
            "b": scores_b.dropna(subset=["score"]).groupby("name")["score"].mean(),
        }
    )
    means["delta"] = means["b"] - means["a"]
    deltas = means.rename_axis("evaluator").reset_index()

    def by_example(runs: list[dict[str, Any]], scores: pd.DataFrame) -> pd.DataFrame:
        outputs = pd.DataFrame(
            [
                {
                    "example_id": r["example_id"],
                    "input": json.dumps(r.get("input")),
                    "output": json.dumps(r.get("output")),
                    "error": r.get("error"),
                }
                for r in runs
            ],
            columns=["example_id", "input", "output", "error"],
        ).drop_duplicates("example_id")
        wide = scores.pivot_table(
            index="example_id", columns="name", values="score", aggfunc="mean"
        )
        return outputs.merge(wide.reset_index(), on="example_id", how="left")

    examples = by_example(runs_a, scores_a).merge(
        by_example(runs_b, scores_b), on="example_id", how="outer", suffixes=(" A", " B")
    )
    examples = examples.rename(columns={"input A": "input"}).drop(columns=["input B"])
    return Comparison(deltas=deltas, examples=examples)
