"""Measure annotation_lag_p95_s: annotations on spans and traces synced days ago until they show.

Half the posts annotate a span, half a trace (its own summaries and watch since session 5). The
worker ticks every TICK_S and the summary watch checks every CHECK_S; the lag is bounded by
CHECK_S + TICK_S + one check's time, so this run's smaller intervals measure the check's own
cost. As deployed (a check a minute, a tick every 5 s) the bound is the figure recorded as
annotation_lag_bound_s: CHECK_INTERVAL_S + the sync interval + this run's p95 less its own
intervals.
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
from services.annotation_watch import CHECK_INTERVAL_S
from services.phoenix import PhoenixClient
from services.sync import PromptSync
from store.facts import open_store

TICK_S = 1.0
CHECK_S = 5.0
POSTS = 20
DEPLOYED_TICK_S = 5.0  # SYNC_INTERVAL_S's default
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
            held = store.transport.query("SELECT span_id, trace_id FROM llm_spans").rows
            lags: list[float] = []
            for index in range(POSTS):
                name = f"lag-{uuid.uuid4().hex[:8]}"
                span_id, trace_id = random.choice(held)
                kind = "trace" if index % 2 else "span"
                target = {"trace_id": trace_id} if kind == "trace" else {"span_id": span_id}
                body = {
                    "data": [
                        {
                            **target,
                            "name": name,
                            "annotator_kind": "CODE",
                            "result": {"score": 0.5},
                        }
                    ]
                }
                time.sleep(random.uniform(0, CHECK_S))
                posted = time.monotonic()
                requests.post(
                    f"{phoenix.url}/v1/{kind}_annotations?sync=true", json=body, timeout=30
                ).raise_for_status()
                # The table name is one of two constants.
                count = f"SELECT count() FROM {kind}_annotations WHERE name = {{n:String}}"  # noqa: S608
                while not store.transport.query(count, {"n": name}).rows[0][0]:
                    sync.tick()
                    time.sleep(TICK_S)
                lags.append(time.monotonic() - posted)
            p95 = statistics.quantiles(lags, n=20)[-1]
        finally:
            phoenix.stop()
    bound = CHECK_INTERVAL_S + DEPLOYED_TICK_S + max(0.0, p95 - CHECK_S - TICK_S)
    results = json.loads(RESULTS_JSON.read_text())
    results["annotation_lag_p95_s"] = round(p95, 3)
    results["annotation_lag_bound_s"] = round(bound, 3)
    RESULTS_JSON.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"annotation_lag_p95_s = {p95:.3f} (tick {TICK_S}s, check {CHECK_S}s)")
    print(f"annotation_lag_bound_s = {bound:.3f} (as deployed)")


if __name__ == "__main__":
    main()
