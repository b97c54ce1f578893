"""CSV export of whole filtered tables, streamed, with cells escaped against formula injection.

Fact tables come from the registry (services/tables.py), so a CSV has the columns its page's
grid has, and stream from the facts store batch by batch: the web process never holds more
than a batch of rows however large the export.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from flask import Blueprint, Response, jsonify, request, stream_with_context

from services import experiments, prompt_filters, tables
from services.analytics import fact_store
from services.container import get_services
from services.filters import FilterState, parse_query
from services.phoenix import PhoenixClient, PhoenixError
from store.transport import StoreError

# Spreadsheets run cells that start with these as formulas (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FLUSH_ROWS = 1000
Rows = tuple[list[str], Iterable[Sequence[Any]]]

bp = Blueprint("export", __name__)


def escape_cell(value: Any) -> Any:
    """Render times as ISO 8601 and defuse text that a spreadsheet would run as a formula."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_chunks(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Yield the CSV text in chunks of FLUSH_ROWS rows, so memory stays flat."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    # Column names may come from Phoenix (evaluator names): escaped like every other cell.
    writer.writerow([escape_cell(name) for name in columns])
    for index, row in enumerate(rows, start=1):
        writer.writerow([escape_cell(value) for value in row])
        if index % FLUSH_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def table_rows(entry: tables.Table, context: tables.Context) -> Rows:
    """Stream a registry table as its columns' ids and each row's CSV values."""
    columns, rows = entry.export(context)
    return [c.id for c in columns], (
        [tables.csv_value(v, c) for v, c in zip(row, columns, strict=True)] for row in rows
    )


def _phoenix() -> PhoenixClient:
    phoenix = get_services().phoenix
    if phoenix is None:
        raise ExportError("The Phoenix integration is turned off.")
    return phoenix


def _pair() -> tuple[str, str]:
    experiment_a, experiment_b = request.args.get("a", ""), request.args.get("b", "")
    if not experiment_a or not experiment_b:
        raise ExportError("An experiment comparison export needs a=… and b=….")
    return experiment_a, experiment_b


def experiment_rows() -> Rows:
    """Every experiment of every dataset."""
    frame = experiments.experiments_table(_phoenix())[experiments.EXPERIMENT_COLUMNS]
    return list(frame.columns), frame.itertuples(index=False, name=None)


def experiment_delta_rows() -> Rows:
    """Mean score per evaluator, B minus A, for two listed experiments."""
    frame = experiments.compare(_phoenix(), *_pair()).deltas
    return list(frame.columns), frame.itertuples(index=False, name=None)


def experiment_example_rows() -> Rows:
    """Each example's inputs, outputs and scores in two listed experiments."""
    frame = experiments.compare(_phoenix(), *_pair()).examples
    return list(frame.columns), frame.itertuples(index=False, name=None)


class ExportError(ValueError):
    """The export request is incomplete; the message says what is missing."""


# Experiments come from Phoenix, not the facts store: small tables shaped by experiments.py.
PHOENIX_EXPORTS: dict[str, Callable[[], Rows]] = {
    "experiments": experiment_rows,
    "experiment-deltas": experiment_delta_rows,
    "experiment-examples": experiment_example_rows,
}
EXPORTS: tuple[str, ...] = (*tables.TABLES, *PHOENIX_EXPORTS)


def _error(status: int, message: str) -> Response:
    response = jsonify(error="bad_export_request", message=message)
    response.status_code = status
    return response


def _rows(kind: str, state: FilterState) -> Rows:
    """Start the export of one table: its header now, its rows as they stream."""
    if kind in PHOENIX_EXPORTS:
        return PHOENIX_EXPORTS[kind]()
    entry = tables.table(kind)
    with get_services().sessions() as db:
        filters = prompt_filters.resolve(db, state)
        names = prompt_filters.prompt_names(db)
    args = {k: request.args.get(k, "") for k in ("a", "b")}
    context = tables.Context(fact_store(), filters, names, args)
    columns, rows = table_rows(entry, context)
    # Ask for the first row now, so a bad request is an error response, not a broken download.
    iterator = iter(rows)
    first = list(itertools.islice(iterator, 1))
    return columns, itertools.chain(first, iterator)


@bp.get("/api/export/<page>/<kind>.csv")
def export_csv(page: str, kind: str) -> Response:
    """Stream the whole filtered table as CSV; the query carries the page's filters."""
    if not re.fullmatch(r"[a-z][a-z-]{0,30}", page):
        return _error(400, "The page name is not valid.")
    if kind not in EXPORTS:
        return _error(404, f"No table {kind!r}; use one of: {', '.join(EXPORTS)}.")
    state, problems = parse_query(request.args.to_dict(flat=True))
    if problems:
        return _error(400, " ".join(problems))
    try:
        columns, rows = _rows(kind, state)
    except (ExportError, tables.TableError, StoreError) as exc:
        return _error(400, str(exc))
    except experiments.UnknownExperiment as exc:
        # Refused before Phoenix is asked for it: an id it did not list may climb its paths.
        return _error(404, str(exc))
    except PhoenixError as exc:
        return _error(502, f"Phoenix: {exc}")

    def generate() -> Iterator[bytes]:
        # Closing the generator (a client that went away) closes the engine's stream too.
        for chunk in csv_chunks(columns, rows):
            yield chunk.encode("utf-8")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
    name = "_".join(part for part in (page, kind, state.label(), stamp) if part)
    safe = re.sub(r"[^A-Za-z0-9._+-]", "-", name)
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{safe}.csv"',
            "Cache-Control": "no-store",
        },
    )
