"""Seed synthetic facts straight into the store with INSERT ... SELECT from numbers().

Every value is a deterministic function of the row number (cityHash64 of the number and a salt),
so a size always holds the same data and the engine writes millions of rows a second, with no
Python loop. The shape: one project holding every span, 30 days, 5 prompts x 3 versions = 15
prompt versions, 4 models, ~3 LLM calls per trace, log-normal latencies whose median and spread
depend on the model and version (errors fail fast, a few time out), 5 % of token counts and 10 %
of costs unknown (NULL), and two evaluators (an LLM "correctness" judge with a label and a 0-1
score, a human "helpfulness" 1-5 score) on 70 % of the spans.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.facts import FactStore

PROJECT = "bench"
END = datetime(2026, 1, 31, tzinfo=UTC)
DAYS = 30
START = END - timedelta(days=DAYS)
SEEDER_VERSION = 4
PROMPTS = 5
VERSIONS_PER_PROMPT = 3
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3-70b")
ANNOTATED_PERCENT = 70
VERSION = f"(cityHash64(number, 12) % {VERSIONS_PER_PROMPT})"


def _u(salt: int) -> str:
    """Return SQL for a uniform number in [0, 1) drawn from the row number and a salt."""
    return f"(cityHash64(number, {salt}) / 18446744073709551616.0)"


def _normal(salt: int) -> str:
    """Return SQL for a standard normal number (Box-Muller on two uniforms)."""
    return f"(sqrt(-2 * log(1 - {_u(salt)})) * cos(2 * pi() * {_u(salt + 1)}))"


def span_expressions(rows: int) -> dict[str, str]:
    """Return the SQL of every span column as a function of `number`, in table order."""
    seconds = DAYS * 86400
    prompt = f"(cityHash64(intDiv(number, 3), 11) % {PROMPTS})"  # a trace's calls share a prompt
    version = VERSION
    model = f"(cityHash64(number, 13) % {len(MODELS)})"
    models = "[" + ", ".join(f"'{m}'" for m in MODELS) + "]"
    # Later versions are a bit faster, larger models slower; sigma 0.6 gives a long right tail.
    median_ms = f"(600 * (1 + 0.5 * {model}) * (1 - 0.08 * {version}))"
    error = f"({_u(14)} < 0.02 + 0.01 * {version} + 0.005 * {model})"
    prompt_tokens = "toUInt32(200 + cityHash64(number, 16) % 1800)"
    completion_tokens = "toUInt32(50 + cityHash64(number, 17) % 750)"
    tokens_known = f"({_u(18)} >= 0.05)"
    price = f"([2.5, 0.15, 3.0, 0.6][{model} + 1] / 1e6)"
    return {
        "span_id": "lower(hex(cityHash64(number, 1)))",
        "trace_id": "lower(hex(cityHash64(intDiv(number, 3), 2)))",
        "project": f"'{PROJECT}'",
        "prompt_id": f"concat('prompt-', toString({prompt}), '-v', toString({version} + 1))",
        "template_hash": f"lower(hex(cityHash64({prompt}, {version}, 3)))",
        "prompt_version": f"concat('v', toString({version} + 1))",
        "model": f"{models}[{model} + 1]",
        "start_time": (
            f"toDateTime64('{START:%Y-%m-%d %H:%M:%S}', 6, 'UTC')"
            f" + toIntervalMicrosecond(intDiv(number * {seconds * 1000}, {rows}) * 1000"
            f" + cityHash64(number, 4) % 1000000)"
        ),
        "latency_ms": (
            f"if({error}, if({_u(15)} < 0.1, 30000 + 1000 * {_u(19)}, 50 + 200 * {_u(19)}),"
            f" {median_ms} * exp(0.6 * {_normal(20)}))"
        ),
        "prompt_tokens": f"if({tokens_known}, {prompt_tokens}, NULL)",
        "completion_tokens": f"if({tokens_known}, {completion_tokens}, NULL)",
        "total_tokens": (
            f"if({tokens_known}, toUInt64({prompt_tokens} + {completion_tokens}), NULL)"
        ),
        "status": f"if({error}, 'ERROR', 'OK')",
        "cost": (
            f"if({_u(22)} >= 0.10 AND {tokens_known},"
            f" ({prompt_tokens} + 4 * {completion_tokens}) * {price}, NULL)"
        ),
        "synced_at": f"toDateTime64('{END:%Y-%m-%d %H:%M:%S}', 6, 'UTC')",
    }


def seed(store: FactStore, rows: int) -> None:
    """Write `rows` spans and their annotations (about 1.4 x rows) into an empty store."""
    spans = span_expressions(rows)
    select = ",\n".join(f"{sql} AS {name}" for name, sql in spans.items())
    store.transport.command(
        f"INSERT INTO llm_spans ({', '.join(spans)}) SELECT {select} FROM numbers({rows})"  # noqa: S608
    )
    # The evaluators grade the same spans (ARRAY JOIN), and see the same span facts.
    scored = f"(cityHash64(number, 30) % 100 < {ANNOTATED_PERCENT})"
    # Later versions are judged correct more often: a real difference for comparisons to find.
    correct = f"({_u(31)} < 0.75 + 0.05 * {VERSION})"
    store.transport.command(
        f"""
        INSERT INTO span_annotations (
            annotation_id, span_id, trace_id, project, name, annotator_kind, label, score,
            updated_at, is_deleted, span_start_time, prompt_id, template_hash, prompt_version,
            model, span_status, synced_at)
        SELECT
            concat(span_id, '-', evaluator) AS annotation_id,
            span_id, trace_id, project,
            evaluator AS name,
            if(evaluator = 'correctness', 'LLM', 'HUMAN') AS annotator_kind,
            if(evaluator = 'correctness', if(is_correct, 'correct', 'incorrect'), NULL) AS label,
            if(evaluator = 'correctness',
               if(is_correct, 0.7 + 0.3 * {_u(32)}, 0.3 * {_u(32)}),
               toFloat64(1 + cityHash64(number, 33) % 5)) AS score,
            start_time + toIntervalSecond(60) AS updated_at,
            0 AS is_deleted,
            start_time AS span_start_time,
            prompt_id, template_hash, prompt_version, model,
            status AS span_status,
            synced_at
        FROM (
            SELECT number, {select}, {correct} AS is_correct
            FROM numbers({rows})
            WHERE {scored}
        )
        ARRAY JOIN ['correctness', 'helpfulness'] AS evaluator
        """  # noqa: S608
    )
