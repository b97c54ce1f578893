"""Which evaluator a score card shows, and what it shows of it: a mean, or label shares.

Evaluators score on their own scales (0-1, 1-5, pass/fail labels), so no card averages
across them: a card shows one evaluator, by default the one with the most annotations under
the filters, and the URL's `evaluator=` picks another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from store.analytics import EvaluatorScore, ScoreSummary

# (label, annotations with it), most frequent first, ties by label.
LabelCounts = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class EvaluatorView:
    """One evaluator as its card shows it: the mean and scored count, or its label counts."""

    name: str
    mean: float | None = None
    scored: int = 0
    annotations: int = 0
    labels: LabelCounts = ()

    @property
    def label_only(self) -> bool:
        """Tell whether the evaluator gave labels and no scores (a human review, say)."""
        return not self.scored and self.annotations > 0

    @property
    def labelled(self) -> int:
        """Count the annotations that carry a label."""
        return sum(n for _label, n in self.labels)


@dataclass(frozen=True)
class Choice:
    """The evaluator a page shows (None when there are no evaluations) and why, if not asked."""

    name: str | None
    message: str | None = None


def is_label_only(score: EvaluatorScore) -> bool:
    """Tell whether an evaluator gave labels and no scores."""
    return not score.scored and score.annotations > 0


def default_evaluator(scores: Iterable[EvaluatorScore]) -> str | None:
    """Return the evaluator with the most annotations, the first by name among equals."""
    ranked = sorted(scores, key=lambda s: (-s.annotations, s.name))
    return ranked[0].name if ranked else None


def choose(scores: Sequence[EvaluatorScore], wanted: str | None) -> Choice:
    """Pick the asked evaluator if it has annotations here, else the default, saying why."""
    fallback = default_evaluator(scores)
    if wanted is None or any(s.name == wanted for s in scores):
        return Choice(wanted or fallback)
    if fallback is None:
        return Choice(None, f"Ignored evaluator={wanted!r}: no evaluations match these filters.")
    return Choice(
        fallback,
        f"Ignored evaluator={wanted!r}: it has no evaluations under these filters; "
        f"showing {fallback!r}, the evaluator with the most.",
    )


def label_counts(summaries: Iterable[ScoreSummary]) -> dict[str, LabelCounts]:
    """Add up each evaluator's label counts over its (prompt, version) summaries."""
    totals: dict[str, dict[str, int]] = {}
    for summary in summaries:
        into = totals.setdefault(summary.name, {})
        for share in summary.labels:
            into[share.label] = into.get(share.label, 0) + share.count
    return {name: ranked(counts) for name, counts in totals.items()}


def ranked(counts: Mapping[str, int]) -> LabelCounts:
    """Order label counts most frequent first, ties by label."""
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def view(
    scores: Iterable[EvaluatorScore], name: str | None, labels: Mapping[str, LabelCounts]
) -> EvaluatorView | None:
    """Describe one evaluator for its card; one without annotations here shows as none."""
    if name is None:
        return None
    for score in scores:
        if score.name == name:
            return EvaluatorView(
                name, score.mean, score.scored, score.annotations, labels.get(name, ())
            )
    return EvaluatorView(name)


def options(scores: Iterable[EvaluatorScore], current: str | None) -> list[dict[str, str]]:
    """List the evaluators a picker offers, with their annotation counts; keep the URL's own."""
    found = sorted(scores, key=lambda s: s.name)
    offered = [{"label": f"{s.name} ({s.annotations:,})", "value": s.name} for s in found]
    if current and not any(s.name == current for s in found):
        offered.append({"label": current, "value": current})
    return offered
