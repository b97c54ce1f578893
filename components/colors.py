"""One colour per prompt version (or model) on every chart of every page, colour-blind safe.

The palette is Okabe and Ito's (https://jfly.uni-koeln.de/color/), told apart under the common
colour-vision deficiencies, less two of its colours: black, lost on the dark theme's charts, and
yellow, faint on white. That leaves six strong colours. Grey is left out too: on a time chart a
hollow grey marker explains the points drawn from too few calls, and greys are the evaluation
labels' colours (label_style), which must never pass for a version.

How a version gets its colour, the same on every page whichever other series a chart shows:
the catalogue (every prompt's versions, from our database) fixes it. A prompt's versions, in
natural order (v2 before v10), take consecutive palette colours from an offset its name hashes
to, so the versions of one prompt, which charts most often show together, never share a colour
until a prompt has more versions than the palette has colours; a new version, which usually
sorts last, leaves the others' colours alone. Series the catalogue does not know (a model, a
version no prompt row states) hash straight into the palette: stable, but two of them may meet
on a colour, which their names still tell apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

from services.prompt_filters import NO_VERSION, PromptNames, natural_key, prompt_label
from store.analytics import GroupKey

PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
)
# The legend's key to points drawn from too few calls to trust; no series takes it.
MUTED = "#BBBBBB"
# Evaluation labels (correct, helpful, good...): greys of even steps in lightness, so they read
# apart under any colour vision and never as a version; a fifth label on one chart and beyond
# adds a hatch. Each segment gets an outline that shows on white and on the dark theme alike.
LABEL_SHADES = ("#4A5158", "#767E86", "#A2A9B0", "#CED3D8")
LABEL_PATTERNS = ("", "/", "x", ".")
LABEL_OUTLINE = "#868E96"
SEPARATOR = " · "


def version_key(prompt: str, version: str) -> str:
    """Name a (prompt, version) as its colour knows it, whatever label a chart shows."""
    return f"{prompt}{SEPARATOR}{version}"


def _hashed(key: str) -> int:
    """Return a palette index from a stable hash (Python's hash() changes per process)."""
    return zlib.crc32(key.encode()) % len(PALETTE)


def catalogue_colors(versions: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Colour every (prompt, version) of the catalogue, keyed by version_key."""
    by_prompt: dict[str, set[str]] = {}
    for prompt, version in versions:
        by_prompt.setdefault(prompt, set()).add(version)
    colors = {}
    for prompt, labels in by_prompt.items():
        offset = _hashed(prompt)
        for rank, version in enumerate(sorted(labels, key=natural_key)):
            colors[version_key(prompt, version)] = PALETTE[(offset + rank) % len(PALETTE)]
    return colors


def series_color(key: str, catalogue: Mapping[str, str] | None = None) -> str:
    """Return a series' colour: the catalogue's for a known version, else its hashed one."""
    if catalogue and key in catalogue:
        return catalogue[key]
    return PALETTE[_hashed(key)]


def prompt_catalogue(names: PromptNames) -> dict[str, str]:
    """Colour every version our database knows, keyed by version_key of its prompt's name."""
    return catalogue_colors(
        (names.by_id[group], label) for group, label in names.labels.items() if group in names.by_id
    )


def group_color_key(key: GroupKey, names: PromptNames, by_model: bool = False) -> str:
    """Name a series' colour: "prompt · version" in full for a version, else its model."""
    if by_model:
        return f"model{SEPARATOR}{key.model}"
    return version_key(prompt_label(key, names), key.prompt_version or NO_VERSION)


def group_order(
    key: GroupKey, names: PromptNames, by_model: bool = False
) -> tuple[tuple[tuple[int, int | str], ...], ...]:
    """Sort series as the legend lists them: by prompt, then version in natural order."""
    if by_model:
        return ((), natural_key(key.model or ""))
    return natural_key(prompt_label(key, names)), natural_key(key.prompt_version or NO_VERSION)


def label_style(rank: int) -> tuple[str, str]:
    """Return the (grey, hatch) of the label at `rank` in its evaluator's labels by name.

    By name, not by frequency or arrival, so a label keeps its look from run to run; ranked
    within one evaluator, so the few labels of one bar are as far apart as the greys allow.
    """
    shade = LABEL_SHADES[rank % len(LABEL_SHADES)]
    return shade, LABEL_PATTERNS[(rank // len(LABEL_SHADES)) % len(LABEL_PATTERNS)]
