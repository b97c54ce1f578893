"""What a monitor is: its metric, rule and sides, parsed from a form or the API, checked whole.

A monitor watches one metric of one prompt (optionally in one project) and says when it got
worse. Three rules:

* relative: a candidate version (a named one, or the newest) against a baseline (a named one,
  or the version before the candidate), over the same recent window;
* previous_period: the prompt (or one version of it) over the last window against the window
  before it;
* threshold: the metric over the last window against a fixed value, as other tools do.

Every value from a user is parsed here; a bad one gets a message that names the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

Metric = Literal[
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "error_rate",
    "cost_per_call",
    "tokens_per_call",
    "score_mean",
    "label_share",
]
Rule = Literal["relative", "previous_period", "threshold"]
EffectUnit = Literal["percent", "absolute"]
METRICS: tuple[str, ...] = get_args(Metric)
RULES: tuple[str, ...] = get_args(Rule)
NEWEST = "newest"
PREVIOUS = "previous"

# How each metric reads, and which way is worse by default.
METRIC_TEXT: dict[str, str] = {
    "p50_ms": "p50 latency",
    "p95_ms": "p95 latency",
    "p99_ms": "p99 latency",
    "error_rate": "error rate",
    "cost_per_call": "cost per call",
    "tokens_per_call": "tokens per call",
    "score_mean": "mean score",
    "label_share": "label share",
}
METRIC_UNIT: dict[str, str] = {
    "p50_ms": "ms",
    "p95_ms": "ms",
    "p99_ms": "ms",
    "error_rate": "percent",
    "cost_per_call": "usd",
    "tokens_per_call": "count",
    "score_mean": "number",
    "label_share": "percent",
}
LOWER_IS_BAD = frozenset({"score_mean"})
MAX_WINDOW_HOURS = 24 * 90
MAX_TEXT = 200


class MonitorError(ValueError):
    """A monitor definition that cannot be used; the message names the field and why."""


@dataclass(frozen=True)
class MonitorSpec:
    """One monitor's definition, parsed and checked."""

    name: str
    prompt: str
    metric: str
    rule: str
    project: str | None = None
    evaluator: str | None = None
    label: str | None = None
    candidate: str = NEWEST
    baseline: str = PREVIOUS
    window_hours: float = 24.0
    min_effect: float = 10.0
    min_effect_unit: str = "percent"
    min_samples: int = 100
    threshold: float | None = None
    higher_is_bad: bool = True
    channels: tuple[int, ...] = ()

    @property
    def metric_text(self) -> str:
        """Name the metric as a reader says it, with its evaluator and label."""
        text = METRIC_TEXT[self.metric]
        if self.metric == "score_mean":
            return f"mean {self.evaluator}"
        if self.metric == "label_share":
            return f"{self.evaluator}: share of {self.label!r}"
        return text

    @property
    def unit(self) -> str:
        """Return the metric's unit, as the formatters name it."""
        return METRIC_UNIT[self.metric]

    def rule_text(self) -> str:
        """Describe the rule in a sentence."""
        worse_word = "higher" if self.higher_is_bad else "lower"
        side = "above" if self.higher_is_bad else "below"
        effect = (
            f"{self.min_effect:g} %"
            if self.min_effect_unit == "percent"
            else f"{self.min_effect:g} (absolute)"
        )
        window = f"{self.window_hours:g} h"
        if self.rule == "relative":
            candidate = "the newest version" if self.candidate == NEWEST else self.candidate
            baseline = "the version before it" if self.baseline == PREVIOUS else self.baseline
            return (
                f"{candidate} against {baseline} over the last {window}: fires when "
                f"{self.metric_text} is {effect} {worse_word} or more, with the difference's "
                f"95 % interval wholly {side} zero"
            )
        if self.rule == "previous_period":
            return (
                f"the last {window} against the {window} before: fires when {self.metric_text} "
                f"is {effect} {worse_word} or more, with the difference's 95 % interval wholly "
                f"{side} zero"
            )
        return (
            f"{self.metric_text} over the last {window}: fires when its 95 % interval lies "
            f"wholly {side} {self.threshold:g}"
        )

    def to_json(self) -> str:
        """Serialise for the database."""
        return json.dumps(asdict(self), sort_keys=True)


def _text(raw: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """Read an optional text field: stripped, bounded, no control characters."""
    value = raw.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MonitorError(f"{name}: required.")
        return None
    if not isinstance(value, str):
        raise MonitorError(f"{name}: expected text, got {type(value).__name__}.")
    text = value.strip()
    if len(text) > MAX_TEXT:
        raise MonitorError(f"{name}: at most {MAX_TEXT} characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise MonitorError(f"{name}: control characters are not allowed.")
    return text


def _number(raw: Mapping[str, Any], name: str, default: float | None) -> float | None:
    """Read a finite number (a number or numeric text)."""
    value = raw.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise MonitorError(f"{name}: expected a number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MonitorError(f"{name}: expected a number, got {str(value)[:40]!r}.") from None
    if not math.isfinite(number):
        raise MonitorError(f"{name}: must be a finite number.")
    return number


def _choice(raw: Mapping[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    """Read one of a fixed set of values."""
    value = raw.get(name, default)
    if value is None or value == "":
        value = default
    if value not in choices:
        raise MonitorError(f"{name}: {str(value)[:40]!r} is not one of {', '.join(choices)}.")
    return str(value)


def _channels(raw: Mapping[str, Any]) -> tuple[int, ...]:
    """Read the channel ids a monitor notifies."""
    value = raw.get("channels") or []
    if not isinstance(value, (list, tuple)):
        raise MonitorError("channels: expected a list of channel ids.")
    ids = []
    for item in value:
        if isinstance(item, bool):
            raise MonitorError(f"channels: {item!r} is not a channel id.")
        try:
            ids.append(int(item))
        except (TypeError, ValueError):
            raise MonitorError(f"channels: {str(item)[:40]!r} is not a channel id.") from None
    return tuple(sorted(set(ids)))


def parse_spec(raw: Mapping[str, Any]) -> MonitorSpec:
    """Parse a monitor from a form or JSON body, or raise MonitorError naming the field."""
    if not isinstance(raw, Mapping):
        raise MonitorError("A monitor is a JSON object.")
    known = set(MonitorSpec.__dataclass_fields__)
    if unknown := sorted(set(raw) - known):
        fields = ", ".join(sorted(known))
        raise MonitorError(f"Unknown field {unknown[0]!r}; the fields are {fields}.")
    name = _text(raw, "name", required=True)
    prompt = _text(raw, "prompt", required=True)
    metric = _choice(raw, "metric", METRICS, "")
    rule = _choice(raw, "rule", RULES, "relative")
    evaluator = _text(raw, "evaluator")
    label = _text(raw, "label")
    if metric in {"score_mean", "label_share"} and evaluator is None:
        raise MonitorError(f"evaluator: {metric} needs the evaluator's name.")
    if metric == "label_share" and label is None:
        raise MonitorError("label: label_share needs the label whose share is watched.")
    window = _number(raw, "window_hours", 24.0)
    assert window is not None
    if not 0 < window <= MAX_WINDOW_HOURS:
        raise MonitorError(f"window_hours: must be more than 0 and at most {MAX_WINDOW_HOURS}.")
    min_effect = _number(raw, "min_effect", 10.0)
    assert min_effect is not None
    if min_effect < 0:
        raise MonitorError("min_effect: must be 0 or more (it is a size, the rule gives the side).")
    samples = _number(raw, "min_samples", 100)
    assert samples is not None
    if samples != int(samples) or not 1 <= samples <= 10_000_000:
        raise MonitorError("min_samples: a whole number from 1 to 10,000,000.")
    threshold = _number(raw, "threshold", None)
    if rule == "threshold" and threshold is None:
        raise MonitorError("threshold: the threshold rule needs a threshold value.")
    higher = raw.get("higher_is_bad")
    if higher is None or higher == "":
        higher_is_bad = metric not in LOWER_IS_BAD
    elif isinstance(higher, bool):
        higher_is_bad = higher
    else:
        raise MonitorError("higher_is_bad: expected true or false.")
    candidate = _text(raw, "candidate") or NEWEST
    baseline = _text(raw, "baseline") or PREVIOUS
    if rule == "relative" and candidate == baseline:
        raise MonitorError("baseline: a version compared with itself never changes.")
    if candidate == PREVIOUS:
        raise MonitorError(
            f"candidate: {PREVIOUS!r} names a baseline; use a version or {NEWEST!r}."
        )
    return MonitorSpec(
        name=name or "",
        prompt=prompt or "",
        metric=metric,
        rule=rule,
        project=_text(raw, "project"),
        evaluator=evaluator if metric in {"score_mean", "label_share"} else None,
        label=label if metric == "label_share" else None,
        candidate=candidate,
        baseline=baseline,
        window_hours=window,
        min_effect=min_effect,
        min_effect_unit=_choice(raw, "min_effect_unit", get_args(EffectUnit), "percent"),
        min_samples=int(samples),
        threshold=threshold if rule == "threshold" else None,
        higher_is_bad=higher_is_bad,
        channels=_channels(raw),
    )


def load_spec(stored: str) -> MonitorSpec:
    """Read a monitor's stored definition."""
    raw = json.loads(stored)
    raw["channels"] = tuple(raw.get("channels") or ())
    return MonitorSpec(**raw)
