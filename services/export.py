"""CSV export of whole filtered tables, streamed, with cells escaped against formula injection."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from flask import Blueprint, Response, jsonify, request, stream_with_context
from sqlalchemy.orm import Session

from services import analytics, experiments
from services.analytics import Filters
from services.container import get_services
from services.filters import parse_query
from services.phoenix import PhoenixClient, PhoenixError

# Spreadsheets run cells that start with these as formulas (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FLUSH_ROWS = 1000
Rows = tuple[list[str], Iterable[Sequence[Any]]]

bp = Blueprint("export", __name__)


def escape_cell(value: Any) -> Any:
    """Render times as ISO 8601 and defuse text that a spreadsheet would run as a formula."""
    if value is None:
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


def llm_call_rows(db: Session, filters: Filters) -> Rows:
    """Every filtered LLM call, read from the database in batches."""
    result = db.execute(analytics.span_query(filters).execution_options(yield_per=FLUSH_ROWS))
    return list(analytics.SPAN_COLUMNS), (tuple(row) for row in result)


def trace_rows(db: Session, filters: Filters) -> Rows:
    """Every filtered trace, one row each."""
    frame = analytics.traces(analytics.load_spans(db, filters))
    return list(frame.columns), frame.itertuples(index=False, name=None)


def evaluation_rows(db: Session, filters: Filters) -> Rows:
    """Every evaluation of the filtered LLM calls."""
    frame = analytics.load_annotations(db, filters)[analytics.EVALUATION_COLUMNS]
    return list(frame.columns), frame.itertuples(index=False, name=None)


def version_rows(db: Session, filters: Filters) -> Rows:
    """The per-version summary of the filtered calls."""
    frame = analytics.breakdown(
        analytics.load_spans(db, filters),
        analytics.load_annotations(db, filters),
        "prompt_version",
    )
    return list(frame.columns), frame.itertuples(index=False, name=None)


def top_prompt_rows(db: Session, filters: Filters) -> Rows:
    """Every prompt with traffic in the window, busiest first."""
    frame = analytics.top_prompts(
        analytics.load_spans(db, filters), analytics.load_annotations(db, filters), limit=None
    )
    return list(frame.columns), frame.itertuples(index=False, name=None)


def comparison_rows(db: Session, filters: Filters) -> Rows:
    """Version B minus version A per metric, for the versions named by `a` and `b`."""
    version_a, version_b = request.args.get("a", ""), request.args.get("b", "")
    if not version_a or not version_b:
        raise ExportError("A comparison export needs the versions a=… and b=….")
    deltas = analytics.compare_versions(
        analytics.load_spans(db, filters),
        analytics.load_annotations(db, filters),
        version_a,
        version_b,
        seed=0,
    )
    columns = ["metric", "a", "b", "delta", "ci_low", "ci_high", "significant"]
    rows = [(d.metric, d.a, d.b, d.delta, d.ci_low, d.ci_high, d.significant) for d in deltas]
    return columns, rows


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


def experiment_rows(_db: Session, _filters: Filters) -> Rows:
    """Every experiment of every dataset."""
    frame = experiments.experiments_table(_phoenix())[experiments.EXPERIMENT_COLUMNS]
    return list(frame.columns), frame.itertuples(index=False, name=None)


def experiment_delta_rows(_db: Session, _filters: Filters) -> Rows:
    """Mean score per evaluator, B minus A, for two listed experiments."""
    frame = experiments.compare(_phoenix(), *_pair()).deltas
    return list(frame.columns), frame.itertuples(index=False, name=None)


def experiment_example_rows(_db: Session, _filters: Filters) -> Rows:
    """Each example's inputs, outputs and scores in two listed experiments."""
    frame = experiments.compare(_phoenix(), *_pair()).examples
    return list(frame.columns), frame.itertuples(index=False, name=None)


class ExportError(ValueError):
    """The export request is incomplete; the message says what is missing."""


EXPORTS: dict[str, Callable[[Session, Filters], Rows]] = {
    "llm-calls": llm_call_rows,
    "traces": trace_rows,
    "evaluations": evaluation_rows,
    "versions": version_rows,
    "top-prompts": top_prompt_rows,
    "comparison": comparison_rows,
    "experiments": experiment_rows,
    "experiment-deltas": experiment_delta_rows,
    "experiment-examples": experiment_example_rows,
}


def _error(status: int, message: str) -> Response:
    response = jsonify(error="bad_export_request", message=message)
    response.status_code = status
    return response


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
    filters = state.to_filters()
    sessions = get_services().sessions
    db = sessions()
    try:
        columns, rows = EXPORTS[kind](db, filters)
    except ExportError as exc:
        db.close()
        return _error(400, str(exc))
    except experiments.UnknownExperiment as exc:
        # Refused before Phoenix is asked for it: an id it did not list may climb its paths.
        db.close()
        return _error(404, str(exc))
    except PhoenixError as exc:
        db.close()
        return _error(502, f"Phoenix: {exc}")

    def generate() -> Iterator[bytes]:
        try:
            for chunk in csv_chunks(columns, rows):
                yield chunk.encode("utf-8")
        finally:
            db.close()

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
