"""How numbers read on screen: one rule per unit, for cards, tables, tooltips and chart axes.

assets/dashAgGridFunctions.js mirrors these rules for the grids (tests/test_formats.py runs both
on the same values). The CSV export never goes through here: it keeps full precision.
"""

from __future__ import annotations

import math
from typing import Any, Literal

Unit = Literal["count", "percent", "ms", "usd", "score", "number"]
NO_VALUE = "\u2013"  # an en dash stands for "no data"


def _plain(text: str) -> str:
    """Drop the sign of a value that rounds to zero: "-0" reads as a loss that is not there."""
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text


def fmt_count(value: float | None) -> str:
    """Show a count with thousands separators: 1,204."""
    return NO_VALUE if value is None else _plain(f"{round(value):,}")


def fmt_pct(value: float | None) -> str:
    """Show a rate (a share of 1) as a percentage with one decimal: 18.2%."""
    return NO_VALUE if value is None else _plain(f"{value * 100:,.1f}%")


def fmt_ms(value: float | None) -> str:
    """Show a latency in ms below a second and in seconds from one: 705 ms, 1.71 s."""
    if value is None:
        return NO_VALUE
    if abs(value) >= 1000:
        return _plain(f"{value / 1000:,.2f} s")
    return _plain(f"{value:.0f} ms")


def _usd_digits(amount: float) -> int:
    """Choose a dollar amount's decimals: cents from $1, else four, else two significant."""
    if amount >= 1:
        return 2
    if amount >= 0.0001 or amount == 0:
        return 4  # cents would hide the cost of a single call
    return min(12, 1 - math.floor(math.log10(amount)))  # $0.0000065, not $0.0000


def fmt_usd(value: float | None) -> str:
    """Show dollars: cents from $1, four decimals below, two significant digits below $0.0001."""
    if value is None:
        return NO_VALUE
    text = f"{abs(value):,.{_usd_digits(abs(value))}f}"
    sign = "-" if value < 0 and any(c in "123456789" for c in text) else ""
    return f"{sign}${text}"


def fmt_score(value: float | None) -> str:
    """Show an evaluator's mean score with two decimals: 0.73."""
    return NO_VALUE if value is None else _plain(f"{value:.2f}")


def fmt_number(value: float | None) -> str:
    """Show any other number with thousands separators and at most three decimals."""
    if value is None:
        return NO_VALUE
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return _plain(text)


FORMATTERS = {
    "count": fmt_count,
    "percent": fmt_pct,
    "ms": fmt_ms,
    "usd": fmt_usd,
    "score": fmt_score,
    "number": fmt_number,
}


def fmt_value(value: float | None, unit: Unit) -> str:
    """Show a value in its unit."""
    return FORMATTERS[unit](value)


def fmt_delta(value: float | None, unit: Unit) -> str:
    """Show a difference with its sign: rates in percentage points (+3.1 pp), else the unit."""
    if value is None:
        return NO_VALUE
    text = f"{abs(value) * 100:,.1f} pp" if unit == "percent" else fmt_value(abs(value), unit)
    if not any(c in "123456789" for c in text):
        return text  # rounds to zero: no sign
    return ("+" if value > 0 else "-") + text


# Plotly's axis settings per unit (d3-format), the same rules as above where d3 can say them.
AXES: dict[Unit, dict[str, Any]] = {
    "count": {"tickformat": ",~f"},
    "percent": {"tickformat": ".1~%"},
    "ms": {"tickformat": ",~f", "ticksuffix": " ms"},
    "usd": {"tickformat": ",~f", "tickprefix": "$"},
    "score": {"tickformat": ".2f"},
    "number": {"tickformat": ",~f"},
}


def axis(unit: Unit | None) -> dict[str, Any]:
    """Return a chart axis's tick format for a unit (nothing for no unit)."""
    return dict(AXES[unit]) if unit else {}
