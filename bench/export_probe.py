"""Export 100k LLM-call rows through the endpoint vs DataFrame.to_csv; run in a fresh process.

Prints key=value lines. A fresh process makes the peak-memory reading (VmHWM) the export's own.
"""

from __future__ import annotations

import io
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from app import create_app
from bench.common import SECRET
from db.migrate import upgrade
from db.models import Prompt
from devtools.signin import csrf_token
from services.container import get_services
from settings import PROJECT_DIR, Settings
from store.analytics import EXPORT_COLUMNS
from store.facts import SpanRow, open_store

ROWS = 100_000
DB = PROJECT_DIR / "bench" / "data" / "export-100k.db"
# The facts: chdb in this process (one process, so no server needed), a database of its own.
STORE_URL = f"chdb://{PROJECT_DIR / 'bench' / 'data' / 'clickhouse'}?database=export_100k"
QUERY = "?range=custom&start=2026-01-01T00:00&end=2027-01-01T00:00"
PASSWORD = "bench-export-password"  # noqa: S105  # a throwaway user in a throwaway database


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def _seed(url: str) -> None:
    """Fill the store with ROWS synthetic LLM-call facts (and their prompt row), once."""
    with open_store(STORE_URL) as store:
        held = store.transport.query("SELECT count() FROM llm_spans FINAL").rows[0][0]
        if held >= ROWS:
            return
        prompt_id = uuid.uuid4()
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(Prompt),
                [
                    {
                        "id": prompt_id,
                        "name": "bench-prompt",
                        "version": "v1",
                        "template": "Hi {x}",
                        "template_hash": "0" * 64,
                    }
                ],
            )
        engine.dispose()
        rng = random.Random(5)
        start = datetime(2026, 6, 1, tzinfo=UTC)
        store.write_spans(
            SpanRow(
                span_id=f"{i:016x}",
                trace_id=f"{i:032x}",
                project=rng.choice(["support-bot", "sales-email", "search-assistant"]),
                prompt_id=str(prompt_id),
                template_hash="0" * 64,
                prompt_version=rng.choice(["v1", "v2", "v3"]),
                model=rng.choice(["gpt-4o-mini", "claude-3-5-haiku", "=HYPERLINK(1)"]),
                start_time=start + timedelta(seconds=i * 30),
                latency_ms=rng.lognormvariate(7, 0.5),
                prompt_tokens=rng.randrange(50, 900),
                completion_tokens=rng.randrange(10, 400),
                total_tokens=rng.randrange(60, 1300),
                status="ERROR" if rng.random() < 0.05 else "OK",
                cost=rng.random() / 1000,
            )
            for i in range(ROWS)
        )


def main() -> None:
    """Seed, measure peak memory of one export, then time export and pandas side by side."""
    DB.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{DB}"
    upgrade(url)
    _seed(url)
    app = create_app(
        Settings.from_env(
            {
                "SECRET_KEY": SECRET,
                "DATABASE_URL": url,
                "STORE_URL": STORE_URL,
                "PHOENIX_ENABLED": "false",
                "LOG_LEVEL": "WARNING",
            }
        )
    )
    server = app.server
    from services import users

    with get_services(server).sessions.begin() as db:
        if users.get_by_email(db, "bench@example.com") is None:
            users.create_user(db, "bench@example.com", PASSWORD, role="viewer")
    client = server.test_client()
    form = client.get("/login").get_data(as_text=True)
    client.post(
        "/login",
        data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": csrf_token(form)},
    )

    def export() -> int:
        response = client.get(f"/api/export/analytics/llm-calls.csv{QUERY}", buffered=False)
        assert response.status_code == 200
        lines = 0
        for chunk in response.response:
            lines += chunk.count(b"\n")
        response.close()
        return lines - 1

    def pandas_csv() -> int:
        store = get_services(server).store
        result = store.transport.query(
            f"SELECT {', '.join(EXPORT_COLUMNS)} FROM llm_spans FINAL"  # noqa: S608 - fixed text
        )
        frame = pd.DataFrame(result.rows, columns=list(result.columns))
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        return len(frame)

    # Peak memory first, before pandas has grown the heap. Writing 5 to clear_refs resets the
    # peak (VmHWM), so seeding the database earlier in this process does not count.
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _status_kb("VmRSS")
    assert export() == ROWS
    peak_mb = (_status_kb("VmHWM") - baseline) / 1024

    export_times, ratios = [], []
    for index in range(6):
        pair = []
        for action in (export, pandas_csv) if index % 2 == 0 else (pandas_csv, export):
            start = time.perf_counter()
            assert action() == ROWS
            pair.append((action.__name__, time.perf_counter() - start))
        times = dict(pair)
        export_times.append(times["export"])
        ratios.append(times["export"] / times["pandas_csv"])
    quartiles = statistics.quantiles(ratios, n=4, method="inclusive")
    print(f"csv_export_rows_per_s={ROWS / statistics.median(export_times):.0f}")
    print(f"csv_export_vs_pandas_ratio={statistics.median(ratios):.3f}")
    print(f"csv_export_vs_pandas_ratio_p25={quartiles[0]:.3f}")
    print(f"csv_export_vs_pandas_ratio_p75={quartiles[2]:.3f}")
    print(f"csv_export_peak_mb={peak_mb:.1f}")


if __name__ == "__main__":
    main()
