"""The demo loader fills a real Phoenix with what every page needs, and only once.

The story tests plan the full demo offline (no Phoenix): a month of traffic in office hours,
v2 better than v1 at the same cost, v3 faster until its p95 regresses from a visible day, and
experiments where v3 beats v1.
"""

from __future__ import annotations

import io
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from devtools import demo_data
from devtools.demo_data import (
    _EXPERIMENTS,
    _MAX_LATENCY_MS,
    _ZONE,
    CORRECTNESS,
    DATASET_NAME,
    DEMO_LLM_SPANS,
    HELPFULNESS,
    PROJECT_NAMES,
    QA_REVIEW,
    SPAN_EVALUATORS,
    _plan_annotations,
    _plan_experiment,
    _plan_traces,
    _Progress,
    _regression_age_s,
    _to_ns,
    _Trace,
    load_demo,
    window_for,
)
from services.phoenix import PhoenixClient

NOW = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
# Rough list prices per million tokens (input, output): enough to weigh tokens by model.
PRICES = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "claude-3-5-sonnet": (3.0, 15.0),
    "llama-3.1-70b": (0.59, 0.79),
}


@pytest.fixture(scope="module")
def story() -> list[_Trace]:
    """The full demo's traces, planned for a fixed moment."""
    return _plan_traces(DEMO_LLM_SPANS, 7, _to_ns(NOW), window_for(DEMO_LLM_SPANS))


def latency_ms(t: _Trace) -> float:
    return (t.llm_end_ns - t.llm_start_ns) / 1e6


def age(t: _Trace) -> timedelta:
    return NOW - datetime.fromtimestamp(t.start_ns / 1e9, UTC)


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def cost(t: _Trace) -> float:
    per_input, per_output = PRICES[t.model.name]
    return (t.prompt_tokens * per_input + t.completion_tokens * per_output) / 1e6


# --------------------------------------------------------------------------- story (offline)


def test_full_demo_is_a_month_of_mostly_llm_spans_over_three_projects(story) -> None:
    assert DEMO_LLM_SPANS >= 12_000 and len(story) == DEMO_LLM_SPANS
    assert window_for(DEMO_LLM_SPANS) == timedelta(days=30)
    assert window_for(90) == timedelta(days=7)  # a test's slice keeps a dense week
    assert {t.project.name for t in story} == set(PROJECT_NAMES)
    ages = [age(t) for t in story]
    assert min(ages) >= timedelta(minutes=5) and max(ages) > timedelta(days=29)
    total = sum(3 if t.rag else 1 for t in story)
    assert total <= 1.3 * len(story)  # Phoenix ingests ~150 spans/s: few non-LLM spans
    assert sum(t.rag for t in story) > 500  # yet enough RAG traces for the trace views


def test_traffic_follows_office_hours_and_quiet_weekends(story) -> None:
    local = [datetime.fromtimestamp(t.start_ns / 1e9, _ZONE) for t in story]
    hours = Counter(moment.hour for moment in local)
    office = sum(hours[h] for h in range(9, 17)) / len(story)
    night = sum(hours[h] for h in range(0, 6)) / len(story)
    assert office > 0.55  # a third of the day carries more than half the calls
    assert 0 < night < 0.06
    per_date = Counter(moment.date() for moment in local)
    whole = sorted(per_date)[1:-1]  # the first and last dates are partial
    weekday = statistics.mean(per_date[d] for d in whole if d.weekday() < 5)
    weekend = statistics.mean(per_date[d] for d in whole if d.weekday() >= 5)
    assert 0 < weekend < 0.45 * weekday


def test_versions_roll_out_across_the_month(story) -> None:
    first_seen: dict[int, timedelta] = {}
    for t in story:
        if t.prompt.name == "support-answer":
            first_seen[t.version] = max(first_seen.get(t.version, timedelta(0)), age(t))
    assert first_seen[0] > timedelta(days=29)
    assert timedelta(days=19) < first_seen[1] <= timedelta(days=20)
    assert timedelta(days=9) < first_seen[2] <= timedelta(days=10)


def test_cost_does_not_depend_on_the_version(story) -> None:
    """Another moment moves traces and their versions, never their model or tokens."""
    later = _plan_traces(DEMO_LLM_SPANS, 7, _to_ns(NOW + timedelta(hours=31)), timedelta(days=30))
    assert [(t.model.name, t.prompt_tokens, t.completion_tokens) for t in story] == [
        (t.model.name, t.prompt_tokens, t.completion_tokens) for t in later
    ]
    assert sum(a.version != b.version for a, b in zip(story, later, strict=True)) > 1000
    for prompt in ("support-answer", "summarize-ticket", "search-answer", "email-draft"):
        v1 = [cost(t) for t in story if t.prompt.name == prompt and t.version == 0]
        v2 = [cost(t) for t in story if t.prompt.name == prompt and t.version == 1]
        assert statistics.mean(v2) == pytest.approx(statistics.mean(v1), rel=0.10), prompt


def test_v2_beats_v1_on_quality(story) -> None:
    for i, t in enumerate(story):
        t.llm_span_id = f"{i:016x}"
    annotations = _plan_annotations(random.Random("demo-annotations:7"), story)
    version = {t.llm_span_id: t.version for t in story}
    scores: dict[tuple[str, int], list[float]] = defaultdict(list)
    for a in annotations:
        scores[a["name"], version[a["span_id"]]].append(a["result"]["score"])
    assert statistics.mean(scores[CORRECTNESS, 1]) > statistics.mean(scores[CORRECTNESS, 0]) + 0.03
    assert statistics.mean(scores[HELPFULNESS, 1]) > statistics.mean(scores[HELPFULNESS, 0]) + 0.15
    assert statistics.mean(scores[QA_REVIEW, 1]) > statistics.mean(scores[QA_REVIEW, 0])
    assert {s for (name, _v), ss in scores.items() if name == HELPFULNESS for s in ss} == {
        1.0,
        2.0,
        3.0,
        4.0,
        5.0,
    }


def test_v3_is_faster_until_its_p95_regresses_from_a_visible_day(story) -> None:
    shipped = timedelta(seconds=_regression_age_s(_to_ns(NOW), timedelta(days=30)))
    start = (NOW - shipped).astimezone(_ZONE)
    assert timedelta(days=4, hours=12) < shipped < timedelta(days=6)
    assert (start.hour, start.minute) == (10, 0)  # a deploy on a visible morning

    calls = [t for t in story if t.prompt.name == "support-answer" and t.error is None]
    slow = [age(t) for t in calls if t.version == 2 and latency_ms(t) > _MAX_LATENCY_MS]
    assert slow and max(slow) <= shipped  # no v3 call is that slow before the deploy
    assert max(slow) > shipped - timedelta(hours=12)  # and they start on the day itself

    for period, before in (("before", True), ("after", False)):
        side = [t for t in calls if (age(t) > shipped) == before]
        v2 = [latency_ms(t) for t in side if t.version == 1]
        v3 = [latency_ms(t) for t in side if t.version == 2]
        assert len(v2) > 150 and len(v3) > 150, period
        assert quantile(v3, 0.5) < 0.9 * quantile(v2, 0.5), period  # v3 writes faster...
        if before:
            assert quantile(v3, 0.95) < quantile(v2, 0.95), period
        else:  # ...until the retry loop: its p95 more than doubles v2's
            assert quantile(v3, 0.95) > 2 * quantile(v2, 0.95), period


def test_the_demo_monitor_has_a_week_of_both_versions(story) -> None:
    """The monitor compares the last 7 days' p95 of v3 and v2, min_samples 150."""
    week = [t for t in story if t.prompt.name == "support-answer" and age(t) < timedelta(days=7)]
    v2 = [t for t in week if t.version == 1]
    v3 = [t for t in week if t.version == 2]
    assert len(v2) >= 250 and len(v3) >= 250
    # Past every timeout (8 s) in well over a tenth of v3's calls: the p95 intervals separate.
    assert sum(latency_ms(t) > _MAX_LATENCY_MS for t in v3) > 0.12 * len(v3)
    assert not any(latency_ms(t) > _MAX_LATENCY_MS for t in v2)


@pytest.mark.parametrize("seed", [7, 11, 12345])
def test_experiments_score_as_their_rates_say_so_v3_beats_v1(seed: int) -> None:
    """With a dozen examples, a coin per example could make v1 match more often than v3."""
    rng = random.Random(f"demo-experiments:{seed}")  # as load_demo draws them, in order
    plans = {
        spec.version: (spec, _plan_experiment(rng, spec, _to_ns(NOW))) for spec in _EXPERIMENTS
    }
    assert set(plans) == {"v1", "v3"}
    exact: dict[str, float] = {}
    relevance: dict[str, float] = {}
    for version, (spec, runs) in plans.items():
        n = len(runs)
        assert n == 12 and len({r.question for r in runs}) == n
        matched = sum(r.exact["score"] for r in runs)
        assert matched == round(spec.exact_rate * n), version
        assert all((r.exact["label"] == "match") == (r.exact["score"] == 1.0) for r in runs)
        deflected = sum(r.judged["label"] == "irrelevant" for r in runs)
        assert deflected == n - matched - round(spec.relevance * (n - matched)), version
        exact[version] = matched / n
        relevance[version] = statistics.mean(r.judged["score"] for r in runs)
        assert all(r.start_ns < r.end_ns for r in runs)
    assert exact == {"v1": 4 / 12, "v3": 7 / 12}  # the specs' 0.35 and 0.60, to a dozen
    assert relevance["v3"] > relevance["v1"] + 0.05


def test_progress_bar_reports_each_quarter_off_a_terminal() -> None:
    stream = io.StringIO()
    bar = _Progress(stream)
    bar.stage("spans", 100)
    for _ in range(10):
        bar.advance(10)
    lines = stream.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["spans"] * 5
    assert "100/100" in lines[-1] and "100%" in lines[-1]


# --------------------------------------------------------------------------- loaded slice


@pytest.fixture
def loaded(demo_loaded):
    """The session's demo slice."""
    return demo_loaded


@pytest.mark.integration
def test_loader_sends_projects_prompts_spans_and_evaluations(loaded, phoenix_server) -> None:
    client = PhoenixClient(phoenix_server.url)
    assert len(loaded.projects) >= 3
    assert set(loaded.projects) <= {p["name"] for p in client.projects()}

    spans = [
        span
        for project in PROJECT_NAMES
        for span in client.paginate(f"/v1/projects/{project}/spans", {"limit": 1000})
    ]
    assert len(spans) == loaded.total_spans
    kinds = Counter(span["span_kind"] for span in spans)
    assert kinds["LLM"] == loaded.llm_spans == 90
    assert kinds["CHAIN"] > 0 and kinds["RETRIEVER"] > 0
    llm = [s for s in spans if s["span_kind"] == "LLM"]
    assert all("llm.prompt_template.template" in s["attributes"] for s in llm)
    assert all("llm.prompt_template.version" in s["attributes"] for s in llm)
    assert len({s["attributes"]["llm.model_name"] for s in llm}) >= 3
    assert any(s["status_code"] == "ERROR" for s in llm)

    prompts = list(client.paginate("/v1/prompts", {"limit": 100}))
    assert len(prompts) >= 4
    for prompt in prompts:
        versions = list(client.paginate(f"/v1/prompts/{prompt['id']}/versions", {"limit": 100}))
        assert 2 <= len(versions) <= 3


@pytest.mark.integration
def test_two_llm_judges_and_a_human_label(loaded, phoenix_server) -> None:
    client = PhoenixClient(phoenix_server.url)
    kinds: dict[str, set[str]] = defaultdict(set)
    results: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for project in PROJECT_NAMES:
        ids = [
            s["context"]["span_id"]
            for s in client.paginate(f"/v1/projects/{project}/spans", {"span_kind": "LLM"})
        ]
        assert ids, project
        for start in range(0, len(ids), 100):
            for a in client.get_json(
                f"/v1/projects/{project}/span_annotations",
                {
                    "span_ids": ids[start : start + 100],
                    "include_annotation_names": list(SPAN_EVALUATORS),
                    "limit": 1000,
                },
            )["data"]:
                kinds[a["name"]].add(a["annotator_kind"])
                results[a["name"]].append((a["result"]["label"], a["result"]["score"]))
    assert dict(kinds) == {CORRECTNESS: {"LLM"}, HELPFULNESS: {"LLM"}, QA_REVIEW: {"HUMAN"}}
    assert {score for _label, score in results[CORRECTNESS]} <= {0.0, 1.0}
    assert {score for _label, score in results[HELPFULNESS]} <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert results[QA_REVIEW] and {label for label, _s in results[QA_REVIEW]} <= {
        "good",
        "needs work",
        "bad",
    }
    assert sum(len(r) for r in results.values()) >= loaded.annotations


@pytest.mark.integration
def test_loader_records_a_dataset_with_experiments(loaded, phoenix_server) -> None:
    client = PhoenixClient(phoenix_server.url)
    datasets = client.get_json("/v1/datasets", {"name": DATASET_NAME})["data"]
    assert [d["id"] for d in datasets] == [loaded.dataset_id]
    experiments = client.get_json(f"/v1/datasets/{loaded.dataset_id}/experiments")["data"]
    assert len(experiments) >= 2
    runs = client.get_json(f"/v1/experiments/{loaded.experiment_ids[0]}/json")
    assert runs and all(run["annotations"] for run in runs)


@pytest.mark.integration
def test_second_load_sends_nothing(loaded, phoenix_server, monkeypatch) -> None:
    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a second load must not send anything")

    for name in ("_send_traces", "_post_annotations", "_register_prompts", "_upload_dataset"):
        monkeypatch.setattr(demo_data, name, forbidden)
    again = load_demo(phoenix_server.url, llm_spans=90, seed=11)
    assert again.skipped
    assert again.dataset_id == loaded.dataset_id
    assert (again.llm_spans, again.total_spans) == (loaded.llm_spans, loaded.total_spans)
    assert again.annotations >= loaded.annotations
    assert sorted(again.experiment_ids) == sorted(loaded.experiment_ids)
