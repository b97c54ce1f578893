"""Measure annotation_lag_p95_s: posting annotations on spans synced days ago until they show.

The worker ticks every TICK_S and the summary watch checks every CHECK_S; the lag is bounded by
CHECK_S + TICK_S + one check's time, so this run's smaller intervals measure the check's own cost.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests

from bench.sync_throughput import age_spans
from db.migrate import upgrade
from db.session import make_engine, make_session_factory
from devtools.demo_data import send_traces
from devtools.phoenix import start_phoenix
from services.phoenix import PhoenixClient
from services.sync import PromptSync
from store.facts import open_store

TICK_S = 1.0
CHECK_S = 5.0
POSTS = 20
RESULTS_JSON = Path(__file__).parent / "results.json"


def main() -> None:
    """Post annotations on old spans while a sync ticks, and record the p95 lag to results."""
    with tempfile.TemporaryDirectory() as tmp:
        phoenix = start_phoenix(Path(tmp) / "phoenix")
        try:
            send_traces(phoenix.url, count=60, seed=7)
            url = f"sqlite:///{tmp}/db.sqlite"
            upgrade(url)
            store = open_store(f"chdb://{tmp}/store")
            sync = PromptSync(
                PhoenixClient(phoenix.url), make_session_factory(make_engine(url)), store
            )
            sync.tick()
            age_spans(store, timedelta(days=3))
            sync.watch.interval_s = CHECK_S
            spans = [r[0] for r in store.transport.query("SELECT span_id FROM llm_spans").rows]
            lags: list[float] = []
            for _ in range(POSTS):
                name = f"lag-{uuid.uuid4().hex[:8]}"
                body = {
                    "data": [
                        {
                            "span_id": random.choice(spans),
                            "name": name,
                            "annotator_kind": "CODE",
                            "result": {"score": 0.5},
                        }
                    ]
                }
                time.sleep(random.uniform(0, CHECK_S))
                posted = time.monotonic()
                requests.post(
                    f"{phoenix.url}/v1/span_annotations?sync=true", json=body, timeout=30
                ).raise_for_status()
                while not store.transport.query(
                    "SELECT count() FROM span_annotations WHERE name = {n:String}", {"n": name}
                ).rows[0][0]:
                    sync.tick()
                    time.sleep(TICK_S)
                lags.append(time.monotonic() - posted)
            p95 = statistics.quantiles(lags, n=20)[-1]
        finally:
            phoenix.stop()
    results = json.loads(RESULTS_JSON.read_text())
    results["annotation_lag_p95_s"] = round(p95, 3)
    RESULTS_JSON.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"annotation_lag_p95_s = {p95:.3f} (tick {TICK_S}s, check {CHECK_S}s)")


if __name__ == "__main__":
    main()
