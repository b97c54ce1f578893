"""Datasets and experiments from Phoenix, summarised and compared; results are cached briefly."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from services.cache import cache
from services.phoenix import PhoenixClient
from services.tables import Column, phoenix_columns

CACHE_S = 30
# The experiments table, defined once for the page and the CSV: every column as Phoenix gives
# it, but its creation time, which the grid shows in the display zone (the CSV as ISO 8601).
EXPERIMENT_TABLE: tuple[Column, ...] = (
    *phoenix_columns(["id", "dataset", "name", "runs", "failed", "mean_latency_ms", "evaluations"]),
    Column("created_at", "created at", "time"),
)
EXPERIMENT_COLUMNS = [column.id for column in EXPERIMENT_TABLE]


# An id shown in a message is cut to this many characters.
SHOWN_ID_CHARS = 80


class UnknownExperiment(LookupError):
    """An experiment id that is not among the experiments Phoenix lists."""

    def __init__(self, experiment_id: str) -> None:
        shown = (
            experiment_id
            if len(experiment_id) <= SHOWN_ID_CHARS
            else experiment_id[: SHOWN_ID_CHARS - 1] + "…"
        )
        super().__init__(f"Experiment {shown!r} is not among Phoenix's experiments.")
        self.experiment_id = experiment_id


@dataclass(frozen=True)
class Comparison:
    """Two experiments side by side: score deltas per evaluator and a per-example diff."""

    deltas: pd.DataFrame
    examples: pd.DataFrame
    # The dataset of experiment A, for Phoenix's own compare view.
    dataset_id: str


def _cached(key: str, compute: Any) -> Any:
    hit = cache.get(key)
    if hit is not None:
        return hit
    value = compute()
    cache.set(key, value, timeout=CACHE_S)
    return value


def iso_time(value: Any) -> str | None:
    """Return Phoenix's time as ISO 8601 with its offset (naive: UTC); unreadable text as is."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


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
                        "created_at": iso_time(experiment.get("created_at")),
                    }
                )
        return pd.DataFrame(rows, columns=[*EXPERIMENT_COLUMNS, "dataset_id"])

    frame: pd.DataFrame = _cached("experiments-table", compute)
    return frame


def listed(phoenix: PhoenixClient, *experiment_ids: str) -> pd.DataFrame:
    """Return the experiments table, refusing any id that is not among its experiments."""
    table = experiments_table(phoenix)
    known = set(table["id"])
    for experiment_id in experiment_ids:
        # Only ids Phoenix listed reach its paths: a typed one may climb to another route. A
        # callback's value is any JSON the browser sent, so it may not even be a string.
        if not isinstance(experiment_id, str) or experiment_id not in known:
            raise UnknownExperiment(str(experiment_id))
    return table


def _unique(labels: Iterable[str]) -> list[str]:
    """Number repeated column labels: an evaluator's name may equal one of ours."""
    taken: set[str] = set()
    unique = []
    for label in labels:
        candidate, repeat = label, 1
        while candidate in taken:
            repeat += 1
            candidate = f"{label} ({repeat})"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def _by_example(runs: list[dict[str, Any]], scores: pd.DataFrame, side: str) -> pd.DataFrame:
    """Index one experiment's input, output, error and scores by example; suffix with its side."""
    outputs = (
        pd.DataFrame(
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
        )
        .drop_duplicates("example_id")
        .set_index("example_id")
    )
    wide = scores.pivot_table(index="example_id", columns="name", values="score", aggfunc="mean")
    # Joined on the index, never by column name: evaluators may be named "input" or "example_id".
    side_frame = pd.concat([outputs[["output", "error"]], wide], axis=1)
    side_frame.columns = [f"{label} {side}" for label in side_frame.columns]
    return pd.concat([outputs[["input"]], side_frame], axis=1)


def compare(phoenix: PhoenixClient, experiment_a: str, experiment_b: str) -> Comparison:
    """Compare B with A: mean score per evaluator, and each example's outputs and scores."""
    table = listed(phoenix, experiment_a, experiment_b)
    dataset_id = str(table.loc[table["id"] == experiment_a, "dataset_id"].iloc[0])
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

    side_a, side_b = _by_example(runs_a, scores_a, "A"), _by_example(runs_b, scores_b, "B")
    # An example's input is the same in both; take A's, or B's where A has no run of it.
    inputs = side_a["input"].combine_first(side_b["input"])
    examples = pd.concat(
        [inputs, side_a.drop(columns="input"), side_b.drop(columns="input")], axis=1
    )
    examples.columns = _unique(["input", *examples.columns[1:]])
    examples = examples.rename_axis("example_id").reset_index()
    return Comparison(deltas=deltas, examples=examples, dataset_id=dataset_id)
