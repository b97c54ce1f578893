"""Load deterministic demo data into a Phoenix server.

Sends OpenInference traces over OTLP/HTTP into three projects, registers prompt versions,
annotates LLM spans, uploads a dataset and records two experiments on it. Everything is
derived from ``seed`` and ``now``, so the same arguments produce the same span ids and data.

The full demo tells a month's story: traffic follows Berlin office hours and quiets down at
weekends; v2 of each prompt beats v1 on quality at the same cost, and v3 answers faster until
a retry loop shipped five days ago blows up its p95 latency. Two LLM judges score the calls
and the QA team labels a sample by hand. Small loads (tests) compress the story into a week.

    python -m devtools.demo_data --url http://127.0.0.1:6006 [--api-key K] [--llm-spans N]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import string
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import requests
from openinference.semconv.resource import ResourceAttributes
from openinference.semconv.trace import (
    DocumentAttributes,
    OpenInferenceLLMProviderValues,
    OpenInferenceLLMSystemValues,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.trace import Status, StatusCode

__all__ = [
    "DATASET_NAME",
    "PROJECT_NAMES",
    "DemoSummary",
    "load_demo",
    "main",
    "send_traces",
    "window_for",
]

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

DATASET_NAME = "demo-support-questions"
PRODUCTION_TAG = "production"
CORRECTNESS = "correctness"
HELPFULNESS = "helpfulness"
QA_REVIEW = "qa_review"
EXACT_MATCH = "exact_match"
RELEVANCE = "relevance"
# The two LLM judges and the human review, in the order the dashboard lists them.
SPAN_EVALUATORS = (CORRECTNESS, HELPFULNESS, QA_REVIEW)

# The full demo covers a month; a small load (a test's slice) covers at least a week, with
# about _DAILY_LLM_SPANS calls a day in between, so every load has the same story and density.
_WINDOW = timedelta(days=30)
_SHORT_WINDOW = timedelta(days=7)
_DAILY_LLM_SPANS = 400
# Keep the newest trace a little in the past so "last hour" charts are not half-filled.
_MIN_AGE = timedelta(minutes=5)
_ERROR_RATE = 0.08
# Each project calls its retrieval prompt in _RAG_PROMPT_SHARE of its traces; only _RAG_RATE of
# those carry the CHAIN and RETRIEVER spans around the LLM call (the rest hit a context cache),
# so nearly every span is an LLM span: Phoenix ingests about 150 spans/s on a laptop.
_RAG_PROMPT_SHARE = 0.60
_RAG_RATE = 0.20
_CORRECTNESS_RATE = 0.55
_HELPFULNESS_RATE = 0.30
# The QA team reviews every _REVIEW_EVERY-th successful call by hand (so small loads have some).
_REVIEW_EVERY = 25
_MIN_LATENCY_MS = 300.0
_MAX_LATENCY_MS = 8000.0
# Thirty days at _DAILY_LLM_SPANS: enough calls for a week's p95 of each support-answer version
# to be bounded by the monitors' intervals; about 14,700 spans, loaded in about 2.5 minutes.
DEMO_LLM_SPANS = 12_000
_ANNOTATION_CHUNK = 500
# Span ids travel in the query string; 100 ids keep the request line far below server limits.
_SPAN_ID_CHUNK = 100
_PAGE_LIMIT = 1000
_HTTP_TIMEOUT = (5.0, 120.0)
_POLL_INTERVAL_S = 1.0
# Traces per OTLP batch in a large load; Phoenix then ingests each before the next is sent.
_BATCH_TRACES = 400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DemoSummary:
    """What was loaded into (or found in) Phoenix."""

    projects: list[str]
    llm_spans: int
    total_spans: int
    prompts: list[str]
    annotations: int
    dataset_id: str
    experiment_ids: list[str]
    skipped: bool


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class _Model:
    """A model the demo traffic calls, with its latency and quality profile."""

    name: str
    provider: str
    system: str | None
    span_name: str
    median_ms: float
    quality: float


_MODELS: dict[str, _Model] = {
    m.name: m
    for m in (
        _Model(
            "gpt-4o",
            OpenInferenceLLMProviderValues.OPENAI.value,
            OpenInferenceLLMSystemValues.OPENAI.value,
            "ChatCompletion",
            1900.0,
            0.84,
        ),
        _Model(
            "gpt-4o-mini",
            OpenInferenceLLMProviderValues.OPENAI.value,
            OpenInferenceLLMSystemValues.OPENAI.value,
            "ChatCompletion",
            950.0,
            0.74,
        ),
        _Model(
            "claude-3-5-sonnet",
            OpenInferenceLLMProviderValues.ANTHROPIC.value,
            OpenInferenceLLMSystemValues.ANTHROPIC.value,
            "Messages",
            2300.0,
            0.86,
        ),
        _Model(
            "llama-3.1-70b",
            OpenInferenceLLMProviderValues.GROQ.value,
            None,
            "ChatCompletion",
            1300.0,
            0.70,
        ),
    )
}


@dataclass(frozen=True)
class _Prompt:
    """A registry prompt and the template text of each of its versions."""

    name: str
    description: str
    model_provider: str
    model_name: str
    invocation_parameters: Mapping[str, Any]
    templates: tuple[str, ...]

    def invocation_settings(self) -> Mapping[str, Any]:
        """Return the provider-specific invocation parameters without the type wrapper."""
        settings: Mapping[str, Any] = self.invocation_parameters[self.invocation_parameters["type"]]
        return settings

    def label(self, index: int) -> str:
        """Return the version label used in spans, e.g. ``v2``."""
        return f"v{index + 1}"


_OPENAI_PARAMS = {"type": "openai", "openai": {"temperature": 0.2}}

_PROMPTS: dict[str, _Prompt] = {
    p.name: p
    for p in (
        _Prompt(
            "support-answer",
            "Answers customer questions from knowledge-base articles.",
            "OPENAI",
            "gpt-4o",
            _OPENAI_PARAMS,
            (
                "You are a support agent. Answer {question} using {context}.",
                "You are a friendly support agent for Acme Cloud. Using only the context "
                "below, answer the customer's question in at most three sentences.\n"
                "Context: {context}\nQuestion: {question}",
                "You are Acme Cloud's senior support agent. Quote the passage of {context} "
                "that answers {question}, then answer it. If the context does not cover the "
                "question, say so and offer to open a ticket.",
            ),
        ),
        _Prompt(
            "summarize-ticket",
            "Summarizes an inbound support ticket for the triage queue.",
            "OPENAI",
            "gpt-4o-mini",
            _OPENAI_PARAMS,
            (
                "Summarize the support ticket: {ticket}",
                "Summarize the support ticket below in three bullet points: problem, impact, "
                "next step.\nTicket: {ticket}",
            ),
        ),
        _Prompt(
            "search-answer",
            "Answers a search query from the top web results.",
            "GROQ",
            "llama-3.1-70b",
            {"type": "groq", "groq": {"temperature": 0.1}},
            (
                "Answer the search query {query} using these results: {results}.",
                "You are a search assistant. Summarize the results below into a direct answer "
                "to the query and cite result numbers.\nQuery: {query}\nResults: {results}",
            ),
        ),
        _Prompt(
            "search-rewrite",
            "Rewrites a user request into a keyword search query.",
            "OPENAI",
            "gpt-4o-mini",
            {"type": "openai", "openai": {"temperature": 0.0}},
            (
                "Rewrite {query} as a keyword search query.",
                "Rewrite the user's request into a precise search query. Keep product names, "
                "drop filler words and add synonyms in parentheses.\nRequest: {query}",
            ),
        ),
        _Prompt(
            "email-draft",
            "Drafts outbound sales emails.",
            "ANTHROPIC",
            "claude-3-5-sonnet",
            {"type": "anthropic", "anthropic": {"max_tokens": 1024, "temperature": 0.7}},
            (
                "Write a sales email to {recipient} about {product}.",
                "Write a short, friendly sales email to {recipient} at {company} about "
                "{product}. Mention one benefit and end with a question.",
                "Draft a personalised sales email to {recipient} at {company}. Use the CRM "
                "notes {notes} to reference their situation, pitch {product} in two sentences "
                "and close with a concrete meeting proposal.",
            ),
        ),
    )
}


@dataclass(frozen=True)
class _Project:
    """A Phoenix project, its traffic share, prompts and model mix."""

    name: str
    weight: float
    rag_prompt: str
    single_prompt: str
    chain_name: str
    retriever_name: str
    models: tuple[tuple[str, float], ...]


_PROJECTS: tuple[_Project, ...] = (
    _Project(
        "support-bot",
        0.50,
        "support-answer",
        "summarize-ticket",
        "answer_question",
        "retrieve_kb_articles",
        (("gpt-4o", 0.45), ("claude-3-5-sonnet", 0.35), ("gpt-4o-mini", 0.20)),
    ),
    _Project(
        "search-assistant",
        0.30,
        "search-answer",
        "search-rewrite",
        "search",
        "web_search",
        (("gpt-4o-mini", 0.50), ("llama-3.1-70b", 0.35), ("gpt-4o", 0.15)),
    ),
    _Project(
        "sales-email",
        0.20,
        "email-draft",
        "email-draft",
        "draft_email",
        "fetch_crm_notes",
        (("claude-3-5-sonnet", 0.45), ("gpt-4o-mini", 0.35), ("llama-3.1-70b", 0.20)),
    ),
)
PROJECT_NAMES: tuple[str, ...] = tuple(p.name for p in _PROJECTS)

# Traffic follows office hours in one zone: weight of each local hour (interpolated between
# hours) and of each weekday (Monday first). Nights and weekends are quiet, never empty.
_ZONE = ZoneInfo("Europe/Berlin")
_HOUR_WEIGHTS = (
    0.05, 0.04, 0.03, 0.03, 0.04, 0.07, 0.15, 0.35, 0.70, 0.95, 1.00, 1.00,
    0.82, 0.88, 1.00, 0.97, 0.90, 0.72, 0.50, 0.38, 0.30, 0.22, 0.14, 0.08,
)  # fmt: skip
_WEEKDAY_WEIGHTS = (1.0, 1.0, 1.0, 0.97, 0.85, 0.30, 0.25)

# Versions roll out across the window (v2 after a third, v3 after two thirds: days 10 and 20 of
# the month). A new version takes _NEWEST_SHARE of the calls, the one before keeps most of the
# rest (a staged rollout), older ones a little. v2 beats v1 on quality at the same speed and
# the same tokens, so the same cost; v3 writes faster (lower latency) at v2's quality...
_VERSION_RELEASE = (0.0, 1 / 3, 2 / 3)
_NEWEST_SHARE = 0.55
_PREVIOUS_SHARE = 0.38
_VERSION_SPEED = (1.0, 1.0, 0.55)
_VERSION_QUALITY = (0.0, 0.08, 0.07)
# ...until a retry loop ships with it: from _REGRESSION_HOUR local time on the day a sixth of
# the window ago (five days in the month), a third of its calls take 10 times as long, so its
# p95 latency jumps far past the 8 s timeouts while its median stays below v2's. The demo's
# monitor (v3 against v2 over the last 7 days, where v2 keeps ~300 calls) fires on it.
_REGRESSION_VERSION = 2
_REGRESSION_FRACTION = 1 / 6
_REGRESSION_HOUR = 10
_REGRESSION_SHARE = 0.32
_REGRESSION_FACTOR = 10.0
# A retry loop is not bound by one call's timeout.
_REGRESSION_MAX_MS = 30_000.0

_SUPPORT_QA: tuple[tuple[str, str, str], ...] = (
    (
        "How do I reset my password?",
        "Click 'Forgot password' on the sign-in page and follow the emailed link.",
        "account",
    ),
    (
        "What is your refund policy?",
        "You can request a full refund within 30 days of purchase under Billing > Refunds.",
        "billing",
    ),
    (
        "How do I upgrade my plan?",
        "Go to Settings > Billing, pick the new plan and confirm; it applies immediately.",
        "billing",
    ),
    (
        "Where can I download my invoices?",
        "Invoices are listed under Billing > Invoices and can be downloaded as PDF.",
        "billing",
    ),
    (
        "How do I export my data?",
        "Use Settings > Data > Export to download a ZIP archive of all your projects.",
        "data",
    ),
    (
        "Can I add more users to my workspace?",
        "Admins invite users from Settings > Members; each seat is billed monthly.",
        "account",
    ),
    (
        "Why is the API returning 429 errors?",
        "You have hit your rate limit; wait a minute or upgrade for a higher limit.",
        "api",
    ),
    (
        "How do I rotate my API key?",
        "Create a new key under Settings > API keys, update your apps, then revoke the old one.",
        "api",
    ),
    (
        "Is my data encrypted at rest?",
        "Yes, all customer data is encrypted at rest with AES-256.",
        "security",
    ),
    (
        "How do I enable single sign-on?",
        "SSO is available on the Enterprise plan under Settings > Security > SSO.",
        "security",
    ),
    (
        "Can I change the region where my data is stored?",
        "Region changes need a migration; contact support to schedule one.",
        "data",
    ),
    (
        "How do I delete my account?",
        "Go to Settings > Account > Delete account; all data is removed after 14 days.",
        "account",
    ),
)

_TICKETS: tuple[tuple[str, str], ...] = (
    (
        "Since this morning our dashboards load forever and then show a 504. We have a board "
        "meeting at 3pm and need the numbers.",
        "Dashboards time out with 504 since this morning; blocks a board meeting at 3pm; "
        "escalate to on-call.",
    ),
    (
        "I was charged twice for the March invoice. Please refund one of the payments.",
        "Duplicate charge on the March invoice; customer out of pocket; refund one payment.",
    ),
    (
        "The CSV export drops every row after 10,000. We need the full history for an audit.",
        "CSV export truncates at 10,000 rows; blocks an audit; check the export limit.",
    ),
    (
        "New teammates never receive the invitation email, even after resending.",
        "Invitation emails are not delivered; new users cannot join; check email bounces.",
    ),
    (
        "Our SSO login redirects in a loop after the IdP certificate was renewed.",
        "SSO redirect loop after IdP certificate renewal; nobody can log in; update the cert.",
    ),
    (
        "The mobile app crashes when I open a project with more than 50 files.",
        "Mobile app crashes on projects over 50 files; field team blocked; send to mobile team.",
    ),
    (
        "API calls from our EU servers are about three times slower than last week.",
        "EU API latency tripled since last week; slows the integration; check EU routing.",
    ),
    (
        "Can you extend our trial by two weeks? Legal review is taking longer than expected.",
        "Customer asks for a two-week trial extension for legal review; approve via sales.",
    ),
)

_SEARCH_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "best laptop for video editing under 1500",
        "laptop video editing (4K OR premiere) price<1500",
    ),
    ("how do i cancel my gym subscription online", "cancel gym membership online (guide)"),
    (
        "postgres vs mysql for analytics workloads",
        "postgresql mysql analytics performance comparison (OLAP)",
    ),
    ("why does my kubernetes pod keep restarting", "kubernetes pod CrashLoopBackOff fix"),
    ("cheap flights to lisbon in may", "flights Lisbon May (cheap OR budget)"),
    ("vegan protein sources for athletes", "vegan protein athletes (plant-based OR legumes)"),
    (
        "how to write a cover letter for a career change",
        "cover letter career change template (example)",
    ),
    (
        "noise cancelling headphones under 200 dollars",
        "noise cancelling headphones (ANC) price<200 review",
    ),
    (
        "tax deadline for freelancers this year",
        "freelancer tax filing deadline (self-employed OR 1099)",
    ),
    ("python dataclass default list", "python dataclass field default_factory list"),
)
_SOURCES = ("Wikipedia", "Stack Overflow", "Reddit", "the vendor docs", "a buyer's guide")

_RECIPIENTS = (
    "Dana Whitfield",
    "Marco Rossi",
    "Priya Natarajan",
    "Tom Becker",
    "Aiko Tanaka",
    "Lena Fischer",
)
_COMPANIES = (
    "Northwind Traders",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Logistics",
    "Wayne Retail",
)
_PRODUCTS = ("Acme Cloud Analytics", "Acme Cloud Backup", "Acme Support Desk")
_CRM_NOTES = (
    "Evaluating three vendors, decision expected next quarter.",
    "Current backup job takes 9 hours and misses the nightly window.",
    "Champion is the VP of Operations; budget already approved.",
    "Complained about support response times with their current provider.",
    "Expanding to two new regions this year.",
    "Asked for SOC 2 report during the last call.",
)

_ERRORS: tuple[tuple[str, str, float], ...] = (
    ("RateLimitError", "Rate limit reached for {model}. Please retry after 20s.", 250.0),
    ("APITimeoutError", "Request timed out after 8.0 seconds.", 8000.0),
    ("InternalServerError", "Error code: 529 - the {model} endpoint is overloaded.", 1200.0),
)
_SDK_MODULE = {
    OpenInferenceLLMProviderValues.OPENAI.value: "openai",
    OpenInferenceLLMProviderValues.ANTHROPIC.value: "anthropic",
    OpenInferenceLLMProviderValues.GROQ.value: "groq",
}

_CORRECT_EXPLANATIONS = (
    "The answer matches the reference information and addresses the request.",
    "The response is factually consistent with the provided context.",
    "All claims in the answer are supported by the retrieved documents.",
)
_INCORRECT_EXPLANATIONS = (
    "The answer contradicts the context on a key detail.",
    "The response invents a setting that does not exist in the product.",
    "The answer ignores the question and gives generic advice.",
)
_ERROR_EXPLANATION = "No answer was produced because the model call failed."


@dataclass(frozen=True)
class _Experiment:
    """An experiment over the demo dataset and how well its runs score."""

    name: str
    description: str
    prompt: str
    version: str
    model: str
    # The share of examples answered with the reference word for word (exact_match), and of
    # the others the share answered in other words rather than deflected (relevance).
    exact_rate: float
    relevance: float
    offset: timedelta


_EXPERIMENTS = (
    _Experiment(
        "support-answer-v1-gpt-4o-mini",
        "Baseline: first support-answer prompt on the small model.",
        "support-answer",
        "v1",
        "gpt-4o-mini",
        0.35,
        0.62,
        timedelta(days=2),
    ),
    _Experiment(
        "support-answer-v3-gpt-4o",
        "Candidate: newest support-answer prompt on gpt-4o.",
        "support-answer",
        "v3",
        "gpt-4o",
        0.60,
        0.84,
        timedelta(days=1),
    ),
)


# --------------------------------------------------------------------------- planning


@dataclass
class _Doc:
    """A retrieved document."""

    doc_id: str
    content: str
    score: float


@dataclass
class _Trace:
    """One planned trace; span ids are filled in when it is emitted."""

    project: _Project
    prompt: _Prompt
    version: int
    model: _Model
    variables: dict[str, str]
    input_text: str
    output_text: str
    user_input: str
    docs: list[_Doc]
    prompt_tokens: int
    completion_tokens: int
    start_ns: int
    llm_start_ns: int
    llm_end_ns: int
    end_ns: int
    error: tuple[str, str] | None
    customer_tier: str
    llm_span_id: str = ""
    span_ids: list[str] = field(default_factory=list)

    @property
    def rag(self) -> bool:
        """Tell whether the trace has a CHAIN and RETRIEVER around the LLM call."""
        return bool(self.docs)


def _to_ns(moment: datetime) -> int:
    """Convert an aware datetime to integer nanoseconds since the epoch."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _iso(ns: int) -> str:
    """Format nanoseconds since the epoch as an ISO 8601 UTC timestamp."""
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()


def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    """Pick one name from (name, weight) pairs."""
    names = [name for name, _ in options]
    weights = [weight for _, weight in options]
    return rng.choices(names, weights=weights, k=1)[0]


def _template_fields(template: str) -> list[str]:
    """List the f-string placeholders of a template in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def window_for(llm_spans: int) -> timedelta:
    """Return the time window a load of this many LLM spans covers: a week up to a month."""
    days = min(_WINDOW.days, max(_SHORT_WINDOW.days, llm_spans / _DAILY_LLM_SPANS))
    return timedelta(days=days)


def _traffic_weight(moment_s: float) -> float:
    """Return the relative traffic (0..1) at a moment: office hours on weekdays in _ZONE."""
    local = datetime.fromtimestamp(moment_s, _ZONE)
    hour = local.hour + local.minute / 60.0
    low = int(hour)
    this, after = _HOUR_WEIGHTS[low], _HOUR_WEIGHTS[(low + 1) % 24]
    return (this + (after - this) * (hour - low)) * _WEEKDAY_WEIGHTS[local.weekday()]


def _sample_age_s(rng: random.Random, now_ns: int, window: timedelta = _WINDOW) -> float:
    """Pick how long ago a trace started, following the daily and weekly traffic rhythm."""
    low, high = _MIN_AGE.total_seconds(), window.total_seconds()
    now_s = now_ns / 1e9
    while True:
        age = rng.uniform(low, high)
        if rng.random() < _traffic_weight(now_s - age):
            return age


def _regression_age_s(now_ns: int, window: timedelta) -> float:
    """Return how long ago the regression shipped: _REGRESSION_HOUR local, a sixth back."""
    day = datetime.fromtimestamp(now_ns / 1e9, _ZONE) - window * _REGRESSION_FRACTION
    shipped = day.replace(hour=_REGRESSION_HOUR, minute=0, second=0, microsecond=0)
    return max(0.0, now_ns / 1e9 - shipped.timestamp())


def _pick_version(rng: random.Random, prompt: _Prompt, window_fraction: float) -> int:
    """Pick a prompt version: mostly the newest released one, else the one before or older."""
    released = [i for i in range(len(prompt.templates)) if _VERSION_RELEASE[i] <= window_fraction]
    newest = released[-1]
    roll = rng.random()
    if newest == 0 or roll < _NEWEST_SHARE:
        return newest
    if newest == 1 or roll < _NEWEST_SHARE + _PREVIOUS_SHARE:
        return newest - 1
    return rng.randrange(newest - 1)


def _latency_ms(rng: random.Random, median_ms: float) -> float:
    """Draw a lognormal latency clamped to a realistic range."""
    value = median_ms * math.exp(rng.gauss(0.0, 0.45))
    return min(_MAX_LATENCY_MS, max(_MIN_LATENCY_MS, value))


@dataclass
class _Values:
    """Template variables, model output and retrieved documents of one call."""

    variables: dict[str, str]
    output: str
    docs: list[_Doc]
    user_input: str


def _support_values(rng: random.Random, rag: bool) -> _Values:
    """Build variables, output and retrieved documents for a support answer."""
    index = rng.randrange(len(_SUPPORT_QA))
    question, answer, _ = _SUPPORT_QA[index]
    others = rng.sample([i for i in range(len(_SUPPORT_QA)) if i != index], 2)
    docs = [_Doc(f"kb-{101 + index}", f"{question} {answer}", round(rng.uniform(0.82, 0.95), 3))]
    docs += [
        _Doc(f"kb-{101 + i}", " ".join(_SUPPORT_QA[i][:2]), round(rng.uniform(0.4, 0.75), 3))
        for i in others
    ]
    context = " | ".join(d.content for d in docs) if rag else answer
    return _Values({"question": question, "context": context}, answer, docs, question)


def _search_answer_values(rng: random.Random, rag: bool) -> _Values:
    """Build variables, output and web results for a search answer."""
    query, _ = rng.choice(_SEARCH_QUERIES)
    sources = rng.sample(_SOURCES, 3)
    docs = [
        _Doc(
            f"web-{rng.randrange(10_000, 99_999)}",
            f"{query.capitalize()} - {source}",
            round(0.9 - 0.15 * n + rng.uniform(-0.05, 0.05), 3),
        )
        for n, source in enumerate(sources)
    ]
    results = " | ".join(f"[{n + 1}] {d.content}" for n, d in enumerate(docs))
    output = f"According to {sources[0]} [1] and {sources[1]} [2], here is the short answer."
    return _Values({"query": query, "results": results}, output, docs, query)


def _search_rewrite_values(rng: random.Random, rag: bool) -> _Values:
    """Build variables and output for a query rewrite."""
    query, rewritten = rng.choice(_SEARCH_QUERIES)
    return _Values({"query": query}, rewritten, [], query)


def _email_values(rng: random.Random, rag: bool) -> _Values:
    """Build variables, output and CRM notes for a sales email."""
    recipient, company = rng.choice(_RECIPIENTS), rng.choice(_COMPANIES)
    product = rng.choice(_PRODUCTS)
    picked = rng.sample(_CRM_NOTES, 2)
    docs = [
        _Doc(f"crm-{rng.randrange(1000, 9999)}", note, round(rng.uniform(0.6, 0.95), 3))
        for note in picked
    ]
    notes = " ".join(picked)
    first = recipient.split()[0]
    output = (
        f"Hi {first},\n\nTeams like {company} use {product} to cut busywork. "
        f"{picked[0]} - that is exactly where it helps.\n\n"
        "Would a 20-minute call next Tuesday or Wednesday work?\n\nBest,\nAlex"
    )
    variables = {"recipient": recipient, "company": company, "product": product, "notes": notes}
    return _Values(variables, output, docs, f"Email {recipient} at {company} about {product}")


def _ticket_values(rng: random.Random, rag: bool) -> _Values:
    """Build variables and output for a ticket summary."""
    ticket, summary = rng.choice(_TICKETS)
    return _Values({"ticket": ticket}, summary, [], ticket)


_VALUE_BUILDERS: dict[str, Callable[[random.Random, bool], _Values]] = {
    "support-answer": _support_values,
    "search-answer": _search_answer_values,
    "search-rewrite": _search_rewrite_values,
    "email-draft": _email_values,
    "summarize-ticket": _ticket_values,
}


def _plan_trace(
    rng: random.Random,
    clock_rng: random.Random,
    now_ns: int,
    window: timedelta = _WINDOW,
    regression_age_s: float | None = None,
) -> _Trace:
    """Plan one trace: project, shape, prompt version, model, texts and timings."""
    # Shape and content come from ``rng`` and timing from ``clock_rng``, so a different
    # ``now`` moves traces in time without changing projects, shapes or span ids.
    project = _PROJECTS[
        rng.choices(range(len(_PROJECTS)), weights=[p.weight for p in _PROJECTS], k=1)[0]
    ]
    rag_prompt = rng.random() < _RAG_PROMPT_SHARE
    rag = rag_prompt and rng.random() < _RAG_RATE
    prompt = _PROMPTS[project.rag_prompt if rag_prompt else project.single_prompt]
    model = _MODELS[_weighted(rng, project.models)]
    values = _VALUE_BUILDERS[prompt.name](rng, rag)
    # Tokens come from the call's data, not from the template, so every version of a prompt
    # costs the same per call: the versions differ in quality and speed only.
    overhead = rng.randint(250, 1100) if rag_prompt else rng.randint(20, 120)
    data_tokens = sum(len(value) for value in values.variables.values()) // 4
    prompt_tokens = 60 + data_tokens + overhead
    completion_tokens = max(8, len(values.output) // 4 + rng.randint(0, 80))
    error: tuple[str, str] | None = None
    error_ms = 0.0
    if rng.random() < _ERROR_RATE:
        kind, message, error_ms = rng.choice(_ERRORS)
        module = _SDK_MODULE.get(model.provider, "httpx")
        error = (f"{module}.{kind}", message.format(model=model.name))
        completion_tokens = 0

    age_s = _sample_age_s(clock_rng, now_ns, window)
    version = _pick_version(clock_rng, prompt, 1.0 - age_s / window.total_seconds())
    template = prompt.templates[version]
    variables = {name: values.variables[name] for name in _template_fields(template)}
    input_text = template.format(**variables)
    output = values.output
    latency = _latency_ms(clock_rng, model.median_ms * _VERSION_SPEED[version])
    if regression_age_s is None:
        regression_age_s = _regression_age_s(now_ns, window)
    # Drawn from the trace's own time, not from clock_rng: every other trace keeps its timing.
    if (
        version == _REGRESSION_VERSION
        and age_s < regression_age_s
        and random.Random(f"regression:{age_s!r}").random() < _REGRESSION_SHARE
    ):
        latency = min(_REGRESSION_MAX_MS, latency * _REGRESSION_FACTOR)
    if error is not None:
        latency = min(_MAX_LATENCY_MS, error_ms * clock_rng.uniform(0.9, 1.1))
    start_ns = now_ns - int(age_s * 1e9)
    llm_start_ns = start_ns
    if rag:
        llm_start_ns = start_ns + int(clock_rng.uniform(60.0, 450.0) * 1e6)
    llm_end_ns = llm_start_ns + int(latency * 1e6)
    end_ns = llm_end_ns + (int(clock_rng.uniform(2.0, 15.0) * 1e6) if rag else 0)
    return _Trace(
        project=project,
        prompt=prompt,
        version=version,
        model=model,
        variables=variables,
        input_text=input_text,
        output_text=output,
        user_input=values.user_input,
        docs=values.docs if rag else [],
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        start_ns=start_ns,
        llm_start_ns=llm_start_ns,
        llm_end_ns=llm_end_ns,
        end_ns=end_ns,
        error=error,
        customer_tier=rng.choices(("free", "pro", "enterprise"), weights=(5, 3, 2), k=1)[0],
    )


def _plan_traces(count: int, seed: int, now_ns: int, window: timedelta) -> list[_Trace]:
    """Plan the demo load's traces (the same ones for the same arguments)."""
    trace_rng = random.Random(f"demo-traces:{seed}")
    clock_rng = random.Random(f"demo-clock:{seed}")
    regression_age_s = _regression_age_s(now_ns, window)
    return [
        _plan_trace(trace_rng, clock_rng, now_ns, window, regression_age_s) for _ in range(count)
    ]


# --------------------------------------------------------------------------- tracing


class _SeededIdGenerator(IdGenerator):
    """Generate trace and span ids from a seeded RNG so reruns reproduce them."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def generate_span_id(self) -> int:
        """Return a non-zero 64-bit span id."""
        while True:
            value = self._rng.getrandbits(64)
            if value != trace_api.INVALID_SPAN_ID:
                return value

    def generate_trace_id(self) -> int:
        """Return a non-zero 128-bit trace id."""
        while True:
            value = self._rng.getrandbits(128)
            if value != trace_api.INVALID_TRACE_ID:
                return value

    def is_trace_id_random(self) -> bool:
        """Report that trace ids are uniformly random."""
        return True


class CountingExporter(SpanExporter):
    """Wrap an exporter and count the spans it exported or failed to export."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self.exported = 0
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export spans through the wrapped exporter and count the outcome."""
        result = self._inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._inner.force_flush(timeout_millis)


@dataclass
class _Pipeline:
    """The tracer of one project and the exporter that counts its spans."""

    provider: TracerProvider
    tracer: trace_api.Tracer
    exporter: CountingExporter


def _make_pipeline(
    url: str, project: str, seed: int, headers: Mapping[str, str], queue_size: int
) -> _Pipeline:
    """Build a TracerProvider for one project with deterministic ids and OTLP export."""
    provider = TracerProvider(
        resource=Resource.create({ResourceAttributes.PROJECT_NAME: project}),
        id_generator=_SeededIdGenerator(random.Random(f"demo-ids:{seed}:{project}")),
    )
    exporter = CountingExporter(
        OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=dict(headers), timeout=60)
    )
    # A queue as large as the whole load means the processor never drops a span.
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=max(2048, queue_size),
            schedule_delay_millis=500,
            max_export_batch_size=512,
        )
    )
    return _Pipeline(provider, provider.get_tracer(__name__), exporter)


def _span_hex(span: trace_api.Span) -> str:
    """Return the OTel span id of a span as 16 hex digits."""
    return format(span.get_span_context().span_id, "016x")


def _fail(span: trace_api.Span, error: tuple[str, str], at_ns: int) -> None:
    """Mark a span as failed and attach the exception event."""
    exc_type, message = error
    span.set_status(Status(StatusCode.ERROR, message))
    stacktrace = (
        "Traceback (most recent call last):\n"
        '  File "app/llm_client.py", line 88, in complete\n'
        "    response = client.create(**params)\n"
        f"{exc_type}: {message}\n"
    )
    span.record_exception(
        RuntimeError(message),
        attributes={EXCEPTION_TYPE: exc_type, EXCEPTION_STACKTRACE: stacktrace},
        timestamp=at_ns,
    )


def _emit_trace(tracer: trace_api.Tracer, t: _Trace) -> None:
    """Create the spans of one planned trace with explicit timestamps."""
    kind = SpanAttributes.OPENINFERENCE_SPAN_KIND
    text = OpenInferenceMimeTypeValues.TEXT.value
    parent_ctx = None
    chain: trace_api.Span | None = None
    if t.rag:
        chain = tracer.start_span(
            t.project.chain_name,
            start_time=t.start_ns,
            attributes={
                kind: OpenInferenceSpanKindValues.CHAIN.value,
                SpanAttributes.INPUT_VALUE: t.user_input,
                SpanAttributes.INPUT_MIME_TYPE: text,
                SpanAttributes.METADATA: json.dumps({"customer_tier": t.customer_tier}),
            },
        )
        t.span_ids.append(_span_hex(chain))
        parent_ctx = trace_api.set_span_in_context(chain)
        retriever_start = t.start_ns + 1_000_000
        retriever_attrs: dict[str, str | float] = {
            kind: OpenInferenceSpanKindValues.RETRIEVER.value,
            SpanAttributes.INPUT_VALUE: t.user_input,
            SpanAttributes.INPUT_MIME_TYPE: text,
        }
        for n, doc in enumerate(t.docs):
            prefix = f"{SpanAttributes.RETRIEVAL_DOCUMENTS}.{n}."
            retriever_attrs[prefix + DocumentAttributes.DOCUMENT_ID] = doc.doc_id
            retriever_attrs[prefix + DocumentAttributes.DOCUMENT_CONTENT] = doc.content
            retriever_attrs[prefix + DocumentAttributes.DOCUMENT_SCORE] = doc.score
        retriever = tracer.start_span(
            t.project.retriever_name,
            context=parent_ctx,
            start_time=retriever_start,
            attributes=retriever_attrs,
        )
        t.span_ids.append(_span_hex(retriever))
        retriever.end(end_time=t.llm_start_ns - 1_000_000)

    llm_attrs: dict[str, str | int] = {
        kind: OpenInferenceSpanKindValues.LLM.value,
        SpanAttributes.LLM_MODEL_NAME: t.model.name,
        SpanAttributes.LLM_PROVIDER: t.model.provider,
        SpanAttributes.LLM_TOKEN_COUNT_PROMPT: t.prompt_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: t.completion_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_TOTAL: t.prompt_tokens + t.completion_tokens,
        SpanAttributes.LLM_INVOCATION_PARAMETERS: json.dumps(t.prompt.invocation_settings()),
        SpanAttributes.INPUT_VALUE: t.input_text,
        SpanAttributes.INPUT_MIME_TYPE: text,
        SpanAttributes.LLM_PROMPT_TEMPLATE: t.prompt.templates[t.version],
        SpanAttributes.LLM_PROMPT_TEMPLATE_VERSION: t.prompt.label(t.version),
        SpanAttributes.LLM_PROMPT_TEMPLATE_VARIABLES: json.dumps(t.variables),
    }
    if t.model.system is not None:
        llm_attrs[SpanAttributes.LLM_SYSTEM] = t.model.system
    if t.error is None:
        llm_attrs[SpanAttributes.OUTPUT_VALUE] = t.output_text
        llm_attrs[SpanAttributes.OUTPUT_MIME_TYPE] = text
    if chain is None:
        llm_attrs[SpanAttributes.METADATA] = json.dumps({"customer_tier": t.customer_tier})
    llm = tracer.start_span(
        t.model.span_name, context=parent_ctx, start_time=t.llm_start_ns, attributes=llm_attrs
    )
    t.llm_span_id = _span_hex(llm)
    t.span_ids.append(t.llm_span_id)
    if t.error is not None:
        _fail(llm, t.error, t.llm_end_ns)
    llm.end(end_time=t.llm_end_ns)

    if chain is not None:
        if t.error is None:
            chain.set_attribute(SpanAttributes.OUTPUT_VALUE, t.output_text)
            chain.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, text)
        else:
            _fail(chain, t.error, t.end_ns)
        chain.end(end_time=t.end_ns)


def _send_traces(
    url: str,
    seed: int,
    headers: Mapping[str, str],
    traces: Sequence[_Trace],
    after_batch: Callable[[Sequence[_Trace]], None] | None = None,
) -> None:
    """Emit all planned traces over OTLP and make sure every span was accepted.

    With `after_batch`, traces go out in batches and it runs after each one is flushed: Phoenix
    answers 503 when its ingestion queue is full, so large loads wait for it between batches.
    """
    total = sum(3 if t.rag else 1 for t in traces)
    pipelines = {p: _make_pipeline(url, p, seed, headers, total + 64) for p in PROJECT_NAMES}
    step = _BATCH_TRACES if after_batch else max(1, len(traces))
    try:
        for start in range(0, len(traces), step):
            batch = traces[start : start + step]
            for t in batch:
                _emit_trace(pipelines[t.project.name].tracer, t)
            for pipeline in pipelines.values():
                if not pipeline.provider.force_flush(timeout_millis=120_000):
                    raise RuntimeError("timed out flushing spans to Phoenix over OTLP")
            if after_batch:
                after_batch(batch)
    finally:
        for pipeline in pipelines.values():
            pipeline.provider.shutdown()
    failed = sum(p.exporter.failed for p in pipelines.values())
    exported = sum(p.exporter.exported for p in pipelines.values())
    if failed or exported != total:
        raise RuntimeError(
            f"OTLP export to {url}/v1/traces failed for {failed} of {total} spans "
            f"({exported} accepted); check the URL and API key and the exporter log above"
        )


# --------------------------------------------------------------------------- REST


class _Phoenix:
    """Minimal Phoenix REST client over one requests.Session."""

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        """Close the underlying HTTP session."""
        self.session.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        missing_ok: bool = False,
    ) -> Any:
        """Send one request and return its JSON body (None for 204, or 404 when allowed)."""
        try:
            response = self.session.request(
                method, self.url + path, params=params, json=body, timeout=_HTTP_TIMEOUT
            )
        except requests.RequestException as exc:
            raise RuntimeError(f"Phoenix {method} {path} failed: {exc}") from exc
        if missing_ok and response.status_code == 404:
            return None
        if not response.ok:
            raise RuntimeError(
                f"Phoenix {method} {path} answered {response.status_code}: {response.text[:1000]}"
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, missing_ok: bool = False
    ) -> Iterator[JSON]:
        """Yield every item of a ``{data, next_cursor}`` list, following cursors."""
        query = dict(params or {})
        while True:
            body = self.call("GET", path, params=query, missing_ok=missing_ok)
            if body is None:
                return
            yield from body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return
            query["cursor"] = cursor


def _project_has_spans(api: _Phoenix, project: str) -> bool:
    """Tell whether a project exists and holds at least one span."""
    body = api.call("GET", f"/v1/projects/{project}/spans", params={"limit": 1}, missing_ok=True)
    return bool(body and body["data"])


def _find_dataset(api: _Phoenix, name: str) -> str | None:
    """Return the id of the dataset with this exact name, if any."""
    for dataset in api.pages("/v1/datasets", {"name": name, "limit": 100}):
        if dataset["name"] == name:
            return str(dataset["id"])
    return None


def _wait_for_spans(
    api: _Phoenix,
    expected: Mapping[str, set[str]],
    timeout_s: float,
    seen: dict[str, set[str]] | None = None,
    resume: dict[str, str | None] | None = None,
) -> None:
    """Poll Phoenix until every sent span id is queryable; `seen`/`resume` carry over calls."""
    deadline = time.monotonic() + timeout_s
    seen = {project: set() for project in expected} if seen is None else seen
    resume = dict.fromkeys(expected) if resume is None else resume
    while True:
        for project, want in expected.items():
            if want <= seen[project]:
                continue
            params: dict[str, Any] = {"limit": _PAGE_LIMIT, "sort": "id", "order": "asc"}
            while True:
                if resume[project]:
                    params["cursor"] = resume[project]
                body = api.call(
                    "GET", f"/v1/projects/{project}/spans", params=params, missing_ok=True
                )
                if body is None or not body["data"]:
                    break
                seen[project].update(span["context"]["span_id"] for span in body["data"])
                # The cursor row is returned again on the next call, which the set absorbs.
                resume[project] = body.get("next_cursor") or body["data"][-1]["id"]
                if not body.get("next_cursor"):
                    break
        missing = {p: len(want - seen[p]) for p, want in expected.items() if want - seen[p]}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Phoenix did not ingest all spans within {timeout_s:.0f}s; "
                f"still missing per project: {missing}"
            )
        # Debug, not info: a line a second would break the progress bar of a demo load.
        logger.debug("waiting for Phoenix to ingest spans; missing %s", missing)
        time.sleep(_POLL_INTERVAL_S)


# --------------------------------------------------------------------------- prompts


def _register_prompts(api: _Phoenix) -> list[str]:
    """Create every missing prompt version and tag the newest one ``production``."""
    for prompt in _PROMPTS.values():
        existing: dict[str, str] = {}
        for version in api.pages(
            f"/v1/prompts/{prompt.name}/versions", {"limit": 100}, missing_ok=True
        ):
            label = (version.get("metadata") or {}).get("version")
            if isinstance(label, str):
                existing[label] = str(version["id"])
        for index, template in enumerate(prompt.templates):
            label = prompt.label(index)
            if label in existing:
                continue
            body = {
                "prompt": {"name": prompt.name, "description": prompt.description},
                "version": {
                    "description": f"{label} of {prompt.name}",
                    "metadata": {"version": label},
                    "model_provider": prompt.model_provider,
                    "model_name": prompt.model_name,
                    "template": {
                        "type": "chat",
                        "messages": [{"role": "user", "content": template}],
                    },
                    "template_type": "CHAT",
                    "template_format": "F_STRING",
                    "invocation_parameters": dict(prompt.invocation_parameters),
                },
            }
            created = api.call("POST", "/v1/prompts", body=body)
            existing[label] = str(created["data"]["id"])
        newest = existing[prompt.label(len(prompt.templates) - 1)]
        api.call(
            "POST",
            f"/v1/prompt_versions/{newest}/tags",
            body={"name": PRODUCTION_TAG, "description": "Serving in production"},
        )
    return list(_PROMPTS)


# --------------------------------------------------------------------------- annotations


_HELPFUL_LABELS = {5: "helpful", 4: "helpful", 3: "partly helpful", 2: "unhelpful", 1: "unhelpful"}
_REVIEW_LABELS = (
    ("good", 1.0, "Correct, complete and on brand."),
    ("needs work", 0.5, "Right direction, but misses a step or the tone is off."),
    ("bad", 0.0, "Wrong or unhelpful; would not send this to a customer."),
)


def _plan_annotations(rng: random.Random, traces: Sequence[_Trace]) -> list[JSON]:
    """Decide the two LLM judges' scores and the QA team's labels of the LLM spans."""
    annotations: list[JSON] = []
    successes = 0
    for t in traces:
        quality = t.model.quality + _VERSION_QUALITY[t.version]
        if rng.random() < _CORRECTNESS_RATE:
            if t.error is not None:
                result: JSON = {
                    "label": "incorrect",
                    "score": 0.0,
                    "explanation": _ERROR_EXPLANATION,
                }
            elif rng.random() < quality:
                result = {
                    "label": "correct",
                    "score": 1.0,
                    "explanation": rng.choice(_CORRECT_EXPLANATIONS),
                }
            else:
                result = {
                    "label": "incorrect",
                    "score": 0.0,
                    "explanation": rng.choice(_INCORRECT_EXPLANATIONS),
                }
            annotations.append(
                {
                    "span_id": t.llm_span_id,
                    "name": CORRECTNESS,
                    "annotator_kind": "LLM",
                    "result": result,
                    "metadata": {"judge_model": "gpt-4o"},
                    "identifier": "",
                }
            )
        if t.error is not None:
            continue
        if rng.random() < _HELPFULNESS_RATE:
            # A 1-5 rating centred on the call's quality: about 4 for a 0.85 call.
            stars = round(min(5.0, max(1.0, rng.gauss(1.0 + 4.0 * quality - 0.4, 0.8))))
            annotations.append(
                {
                    "span_id": t.llm_span_id,
                    "name": HELPFULNESS,
                    "annotator_kind": "LLM",
                    "result": {
                        "label": _HELPFUL_LABELS[stars],
                        "score": float(stars),
                        "explanation": f"Rated {stars} of 5 for how well it resolves the request.",
                    },
                    "metadata": {"judge_model": "claude-3-5-sonnet", "scale": "1-5"},
                    "identifier": "",
                }
            )
        successes += 1
        if successes % _REVIEW_EVERY == 1:
            roll = rng.random()
            worse = 0 if roll < quality - 0.08 else 1 if roll < (quality + 1.0) / 2.0 else 2
            label, score, note = _REVIEW_LABELS[worse]
            annotations.append(
                {
                    "span_id": t.llm_span_id,
                    "name": QA_REVIEW,
                    "annotator_kind": "HUMAN",
                    "result": {"label": label, "score": score, "explanation": note},
                    "metadata": {"reviewer": f"qa-{rng.randint(1, 4)}"},
                    "identifier": "",
                }
            )
    return annotations


def _post_annotations(
    api: _Phoenix, annotations: Sequence[JSON], progress: _Progress | None = None
) -> None:
    """Write span annotations in chunks."""
    for start in range(0, len(annotations), _ANNOTATION_CHUNK):
        chunk = list(annotations[start : start + _ANNOTATION_CHUNK])
        api.call("POST", "/v1/span_annotations", params={"sync": "true"}, body={"data": chunk})
        if progress is not None:
            progress.advance(len(chunk))


def _count_annotations(api: _Phoenix, project: str, span_ids: Sequence[str]) -> int:
    """Count the demo evaluators' annotations on the given spans of a project."""
    count = 0
    for start in range(0, len(span_ids), _SPAN_ID_CHUNK):
        params = {
            "span_ids": list(span_ids[start : start + _SPAN_ID_CHUNK]),
            "include_annotation_names": list(SPAN_EVALUATORS),
            "limit": 10_000,
        }
        count += sum(1 for _ in api.pages(f"/v1/projects/{project}/span_annotations", params))
    return count


# --------------------------------------------------------------------------- dataset


def _upload_dataset(api: _Phoenix) -> str:
    """Upload the demo dataset (or reuse it) and return its id."""
    existing = _find_dataset(api, DATASET_NAME)
    if existing is not None:
        return existing
    body = {
        "action": "create",
        "name": DATASET_NAME,
        "description": "Customer support questions with reference answers (demo data).",
        "inputs": [{"question": q} for q, _, _ in _SUPPORT_QA],
        "outputs": [{"answer": a} for _, a, _ in _SUPPORT_QA],
        "metadata": [{"topic": topic} for _, _, topic in _SUPPORT_QA],
    }
    created = api.call("POST", "/v1/datasets/upload", params={"sync": "true"}, body=body)
    return str(created["data"]["dataset_id"])


@dataclass(frozen=True)
class _Run:
    """One planned experiment run: the example it answers, its output, results and timing."""

    question: str
    output: str
    exact: JSON
    judged: JSON
    start_ns: int
    end_ns: int


def _experiment_output(kind: str, rng: random.Random, reference: str) -> tuple[str, JSON, JSON]:
    """Produce a run output of a kind (match, paraphrase, deflect) and its two results."""
    if kind == "match":
        output = reference
        relevance = rng.uniform(0.9, 1.0)
    elif kind == "paraphrase":
        output = f"Sure! {reference} Let me know if anything else comes up."
        relevance = rng.uniform(0.65, 0.92)
    else:
        output = "Please contact our support team and they will help you with that."
        relevance = rng.uniform(0.05, 0.35)
    matched = output == reference
    exact = {
        "label": "match" if matched else "no_match",
        "score": 1.0 if matched else 0.0,
        "explanation": None,
    }
    relevant = relevance >= 0.5
    judged = {
        "label": "relevant" if relevant else "irrelevant",
        "score": round(relevance, 3),
        "explanation": "The answer addresses the question with the right steps."
        if relevant
        else "The answer deflects instead of answering the question.",
    }
    return output, exact, judged


def _plan_experiment(rng: random.Random, spec: _Experiment, now_ns: int) -> list[_Run]:
    """Plan one run per dataset example, scoring exactly as the spec's rates say.

    With a dozen examples a draw per example may turn the story round (v1 matching more often
    than v3), so the rates fix the counts: round(exact_rate x n) examples match, and of the
    others round(relevance x rest) paraphrase the answer while the rest deflect. Which examples
    do which, the scores and the timings are drawn from ``rng``.
    """
    n = len(_SUPPORT_QA)
    matches = round(spec.exact_rate * n)
    paraphrases = round(spec.relevance * (n - matches))
    order = list(range(n))
    rng.shuffle(order)
    kinds = {
        example: "match" if rank < matches else "paraphrase" if rank < matches + paraphrases else ""
        for rank, example in enumerate(order)
    }
    clock = now_ns - spec.offset // timedelta(microseconds=1) * 1000
    median_ms = _MODELS[spec.model].median_ms * _VERSION_SPEED[int(spec.version[1:]) - 1]
    runs = []
    for example, (question, reference, _) in enumerate(_SUPPORT_QA):
        output, exact, judged = _experiment_output(kinds[example], rng, reference)
        latency = _latency_ms(rng, median_ms)
        start, end = clock, clock + int(latency * 1e6)
        clock = end + int(rng.uniform(5.0, 40.0) * 1e6)
        runs.append(_Run(question, output, exact, judged, start, end))
    return runs


def _run_experiments(api: _Phoenix, rng: random.Random, dataset_id: str, now_ns: int) -> list[str]:
    """Create the demo experiments with one evaluated run per example; return their ids."""
    examples = api.call("GET", f"/v1/datasets/{dataset_id}/examples")["data"]["examples"]
    by_question = {ex["input"]["question"]: ex for ex in examples}
    existing = {
        exp["name"]: str(exp["id"])
        for exp in api.pages(f"/v1/datasets/{dataset_id}/experiments", {"limit": 100})
    }
    ids: list[str] = []
    for spec in _EXPERIMENTS:
        # Draw every experiment's randomness even when it exists so later ones do not shift.
        plans = _plan_experiment(rng, spec, now_ns)
        if spec.name in existing:
            ids.append(existing[spec.name])
            continue
        created = api.call(
            "POST",
            f"/v1/datasets/{dataset_id}/experiments",
            body={
                "name": spec.name,
                "description": spec.description,
                "metadata": {
                    "prompt": spec.prompt,
                    "prompt_version": spec.version,
                    "model": spec.model,
                },
                "repetitions": 1,
            },
        )
        experiment_id = str(created["data"]["id"])
        for plan in plans:
            run = api.call(
                "POST",
                f"/v1/experiments/{experiment_id}/runs",
                body={
                    "dataset_example_id": by_question[plan.question]["id"],
                    "output": {"answer": plan.output},
                    "repetition_number": 1,
                    "start_time": _iso(plan.start_ns),
                    "end_time": _iso(plan.end_ns),
                },
            )
            run_id = str(run["data"]["id"])
            end = plan.end_ns
            for name, kind, result, cost_ms in (
                (EXACT_MATCH, "CODE", plan.exact, 1),
                (RELEVANCE, "LLM", plan.judged, 900),
            ):
                api.call(
                    "POST",
                    "/v1/experiment_evaluations",
                    body={
                        "experiment_run_id": run_id,
                        "name": name,
                        "annotator_kind": kind,
                        "start_time": _iso(end),
                        "end_time": _iso(end + cost_ms * 1_000_000),
                        "result": result,
                        "metadata": {},
                    },
                )
        _verify_experiment(api, experiment_id, len(plans))
        ids.append(experiment_id)
    return ids


def _verify_experiment(api: _Phoenix, experiment_id: str, runs: int) -> None:
    """Check that the experiment export lists every run with both evaluations."""
    exported = api.call("GET", f"/v1/experiments/{experiment_id}/json")
    names = {EXACT_MATCH, RELEVANCE}
    complete = [
        row for row in exported if names <= {a["name"] for a in row.get("annotations") or []}
    ]
    if len(exported) != runs or len(complete) != runs:
        raise RuntimeError(
            f"experiment {experiment_id} has {len(exported)} runs, {len(complete)} with both "
            f"evaluations; expected {runs}"
        )


# --------------------------------------------------------------------------- progress


class _Progress:
    """A progress bar on a terminal (redrawn in place), or a line per quarter elsewhere."""

    _WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._started = time.monotonic()
        self._label = ""
        self._total = self._done = self._shown = 0

    def stage(self, label: str, total: int) -> None:
        """Start counting a new stage of `total` units."""
        self._label, self._total, self._done, self._shown = label, max(1, total), 0, -1
        self._draw()

    def advance(self, units: int) -> None:
        """Count `units` more done in the current stage."""
        self._done = min(self._total, self._done + units)
        self._draw()

    def _draw(self) -> None:
        share = self._done / self._total
        quarter = int(share * 4)
        if not self._tty and quarter == self._shown:
            return
        self._shown = quarter
        filled = int(share * self._WIDTH)
        bar = "#" * filled + "." * (self._WIDTH - filled)
        line = (
            f"{self._label:<12} [{bar}] {self._done:>6,}/{self._total:,} {share:4.0%} "
            f"{time.monotonic() - self._started:5.0f}s"
        )
        end = "\n" if self._done >= self._total or not self._tty else ""
        self._stream.write(("\r" if self._tty else "") + line + end)
        self._stream.flush()


# --------------------------------------------------------------------------- entry points


def _read_back(api: _Phoenix, dataset_id: str) -> DemoSummary:
    """Summarize demo data that is already in Phoenix."""
    projects: list[str] = []
    llm_spans = total_spans = annotations = 0
    for project in PROJECT_NAMES:
        spans = list(
            api.pages(f"/v1/projects/{project}/spans", {"limit": _PAGE_LIMIT}, missing_ok=True)
        )
        if not spans:
            continue
        projects.append(project)
        total_spans += len(spans)
        llm_ids = [
            s["context"]["span_id"]
            for s in spans
            if s.get("span_kind") == OpenInferenceSpanKindValues.LLM.value
        ]
        llm_spans += len(llm_ids)
        annotations += _count_annotations(api, project, llm_ids)
    registered = {p["name"] for p in api.pages("/v1/prompts", {"limit": 100})}
    experiments = [
        str(e["id"]) for e in api.pages(f"/v1/datasets/{dataset_id}/experiments", {"limit": 100})
    ]
    return DemoSummary(
        projects=projects,
        llm_spans=llm_spans,
        total_spans=total_spans,
        prompts=[name for name in _PROMPTS if name in registered],
        annotations=annotations,
        dataset_id=dataset_id,
        experiment_ids=experiments,
        skipped=True,
    )


def load_demo(
    phoenix_url: str,
    *,
    api_key: str | None = None,
    llm_spans: int = DEMO_LLM_SPANS,
    seed: int = 7,
    now: datetime | None = None,
    timeout_s: float = 300.0,
    window: timedelta | None = None,
    progress: bool = False,
) -> DemoSummary:
    """Load the demo data into Phoenix unless it is already there.

    `window` defaults to a week for small loads, growing to a month at DEMO_LLM_SPANS; with
    `progress`, a progress bar on stderr follows the spans and annotations.
    """
    if llm_spans < 1:
        raise ValueError("llm_spans must be at least 1")
    span = window or window_for(llm_spans)
    bar = _Progress(sys.stderr) if progress else None
    url = phoenix_url.rstrip("/")
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    now_ns = _to_ns(moment)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    api = _Phoenix(url, api_key)
    try:
        dataset_id = _find_dataset(api, DATASET_NAME)
        if dataset_id is not None and _project_has_spans(api, PROJECT_NAMES[0]):
            logger.info("demo data already present in %s; reading it back", url)
            return _read_back(api, dataset_id)

        logger.info("registering %d prompts", len(_PROMPTS))
        prompts = _register_prompts(api)

        traces = _plan_traces(llm_spans, seed, now_ns, span)
        total = sum(3 if t.rag else 1 for t in traces)
        logger.info("sending %d spans (%d LLM, %d days) over OTLP", total, llm_spans, span.days)
        if bar is not None:
            bar.stage("spans", total)
        expected: dict[str, set[str]] = {p: set() for p in PROJECT_NAMES}
        seen: dict[str, set[str]] = {p: set() for p in PROJECT_NAMES}
        resume: dict[str, str | None] = dict.fromkeys(PROJECT_NAMES)

        # One batch ahead: Phoenix ingests a batch while the next one is sent, and never holds
        # more than two (far below its 20,000-span queue, past which it answers 503).
        in_flight: list[Sequence[_Trace]] = []

        def wait_for_oldest() -> None:
            batch = in_flight.pop(0)
            for t in batch:
                expected[t.project.name].update(t.span_ids)
            _wait_for_spans(api, expected, timeout_s, seen, resume)
            if bar is not None:
                bar.advance(sum(len(t.span_ids) for t in batch))

        def ingested(batch: Sequence[_Trace]) -> None:
            in_flight.append(batch)
            if len(in_flight) > 1:
                wait_for_oldest()

        _send_traces(url, seed, headers, traces, after_batch=ingested)
        while in_flight:
            wait_for_oldest()

        annotations = _plan_annotations(random.Random(f"demo-annotations:{seed}"), traces)
        logger.info("writing %d span annotations", len(annotations))
        if bar is not None:
            bar.stage("annotations", len(annotations))
        _post_annotations(api, annotations, bar)
        for project in PROJECT_NAMES:
            llm_ids = [t.llm_span_id for t in traces if t.project.name == project]
            id_set = set(llm_ids)
            want = sum(1 for a in annotations if a["span_id"] in id_set)
            got = _count_annotations(api, project, llm_ids)
            if got != want:
                raise RuntimeError(
                    f"project {project}: wrote {want} span annotations but Phoenix returns {got}"
                )

        logger.info("uploading dataset %s and running experiments", DATASET_NAME)
        if bar is not None:
            bar.stage("experiments", len(_EXPERIMENTS))
        dataset_id = _upload_dataset(api)
        experiment_ids = _run_experiments(
            api, random.Random(f"demo-experiments:{seed}"), dataset_id, now_ns
        )
        if bar is not None:
            bar.advance(len(_EXPERIMENTS))
        return DemoSummary(
            projects=[p for p in PROJECT_NAMES if expected[p]],
            llm_spans=llm_spans,
            total_spans=total,
            prompts=prompts,
            annotations=len(annotations),
            dataset_id=dataset_id,
            experiment_ids=experiment_ids,
            skipped=False,
        )
    finally:
        api.close()


def send_traces(
    phoenix_url: str,
    *,
    count: int,
    seed: int,
    api_key: str | None = None,
    now: datetime | None = None,
    window: timedelta = _SHORT_WINDOW,
    timeout_s: float = 120.0,
) -> dict[str, list[str]]:
    """Send `count` more demo traces (one LLM span each) and wait until Phoenix has them all.

    Returns the LLM span ids per project. Use a seed the demo load did not use, so ids are new.
    """
    url = phoenix_url.rstrip("/")
    now_ns = _to_ns(now or datetime.now(UTC))
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    trace_rng = random.Random(f"extra-traces:{seed}")
    clock_rng = random.Random(f"extra-clock:{seed}")
    regression_age_s = _regression_age_s(now_ns, window)
    traces = [
        _plan_trace(trace_rng, clock_rng, now_ns, window, regression_age_s) for _ in range(count)
    ]
    _send_traces(url, seed, headers, traces)
    expected: dict[str, set[str]] = {p: set() for p in PROJECT_NAMES}
    llm_ids: dict[str, list[str]] = {p: [] for p in PROJECT_NAMES}
    for t in traces:
        expected[t.project.name].update(t.span_ids)
        llm_ids[t.project.name].append(t.llm_span_id)
    api = _Phoenix(url, api_key)
    try:
        _wait_for_spans(api, expected, timeout_s)
    finally:
        api.close()
    return llm_ids


def _describe(summary: DemoSummary, elapsed_s: float) -> str:
    """Render a summary as one line for the terminal."""
    verb = "Skipped: demo data already present with" if summary.skipped else "Loaded"
    return (
        f"{verb} {summary.llm_spans} LLM spans ({summary.total_spans} spans) in "
        f"{', '.join(summary.projects)}; {len(summary.prompts)} prompts; "
        f"{summary.annotations} span annotations; dataset {DATASET_NAME} "
        f"({summary.dataset_id}) with {len(summary.experiment_ids)} experiments "
        f"[{elapsed_s:.1f}s]"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the loader from the command line and print a one-line summary."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.demo_data", description="Load demo data into Phoenix."
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("PHOENIX_URL"),
        help="Phoenix base URL (default: $PHOENIX_URL)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("PHOENIX_API_KEY"),
        help="Phoenix API key (default: $PHOENIX_API_KEY)",
    )
    parser.add_argument("--llm-spans", type=int, default=DEMO_LLM_SPANS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--now",
        type=datetime.fromisoformat,
        default=None,
        help="ISO 8601 reference time (default: now, UTC)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for Phoenix to ingest the spans",
    )
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url is required (or set PHOENIX_URL)")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    started = time.monotonic()
    try:
        summary = load_demo(
            args.url,
            api_key=args.api_key,
            llm_spans=args.llm_spans,
            seed=args.seed,
            now=args.now,
            timeout_s=args.timeout,
            progress=True,
        )
    except (RuntimeError, ValueError) as exc:
        print(f"demo_data: {exc}", file=sys.stderr)
        return 1
    print(_describe(summary, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
