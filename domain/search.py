"""Finding a case, and knowing a repeat when it comes: the rules, pure.

* **Search terms.** A query is split on white space into terms of at least two
  characters (:func:`terms`). A term of three or more is matched as a substring by a
  trigram index (SQLite FTS5 ``trigram``, PostgreSQL ``pg_trgm``); a term of two — the
  Chinese two-character word, 水费, 噪音 — by its bigram, which :func:`bigrams`
  writes beside the text (a trigram index cannot look up fewer than three).
* **Ranking.** :data:`TIERS`: the cases whose title holds every term come first, then
  those that hold them only elsewhere (description, comments, replies, resolutions);
  newest reported first within a tier. The title is what a case is known by: a
  township centre looking for "the water again" wants the cases *about* water before
  those that mention it.
* **What is indexed.** :func:`indexable`: the text with every personal number typed
  into it blanked (``domain.permissions.replace_numbers``), so no index holds a phone
  or ID number in clear; a party's number is found through its keyed hash instead.
* **Duplicates at intake.** :func:`duplicate_signals`: why an open case may be the same
  matter as a new report — a shared party, a close text (:func:`similarity`, trigram
  similarity as ``pg_trgm`` computes it), or a point within the policy's radius in the
  same category. Candidates are the open cases of the report's village (or its grid,
  where it has no village: ``RegionTree.ancestor_at``) within the policy's window: every
  one that shares a party, and the :data:`CANDIDATES` newest of the others (a village
  has a few dozen open; the bound keeps a report's command short however many it has).
* **重复件.** :func:`repeat_of`: a petition is a repeat when one of its parties has a
  closed petition of the same category closed within the policy's window.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from domain.errors import ValidationFailed
from domain.ladder import Rank, RegionTree
from domain.permissions import replace_numbers

MIN_TERM = 2
MAX_TERMS = 8
MAX_QUERY = 200
EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
_RUN = re.compile(r"\w+")
CANDIDATES = 100  # open cases of a village compared by text and place at intake, newest first
TIERS = ("title", "text")  # search results' ranks, best first: every term in the title; anywhere


def terms(query: str) -> list[str]:
    """The query's terms, case-folded, each at least two characters (a one-character
    term would match nearly every case)."""
    if not isinstance(query, str) or len(query) > MAX_QUERY:
        raise ValidationFailed(f"q is at most {MAX_QUERY} characters", field="q")
    found = list(dict.fromkeys(t.casefold() for t in query.split()))
    if not found:
        raise ValidationFailed("q needs a word to look for", field="q")
    if len(found) > MAX_TERMS:
        raise ValidationFailed(f"q has at most {MAX_TERMS} words", field="q")
    short = [t for t in found if len(t) < MIN_TERM]
    if short:
        raise ValidationFailed(
            f"each word of q has at least {MIN_TERM} characters", field="q", short=short
        )
    return found


def indexable(*texts: str | None) -> str:
    """The texts as a search index may hold them: case-folded, personal numbers blanked."""
    joined = "\n".join(t for t in texts if t)
    return replace_numbers(joined, lambda span: " ").casefold()


def bigrams(text: str) -> list[str]:
    """Every two-character substring of each run of letters and digits, once each."""
    found: dict[str, None] = {}
    for run in _RUN.findall(text.casefold()):
        for i in range(len(run) - 1):
            found.setdefault(run[i : i + 2])
    return list(found)


@lru_cache(maxsize=65536)
def trigrams(text: str) -> frozenset[str]:
    """Every three-character window of each run of letters and digits, case-folded (a run
    shorter than three is its own gram). Unlike ``pg_trgm`` no word is padded: Chinese
    runs whole sentences together, and padding would weigh its two ends."""
    grams: set[str] = set()
    for run in _RUN.findall(text.casefold()):
        grams.update(run[i : i + 3] for i in range(max(1, len(run) - 2)))
    return frozenset(grams)


def similarity(a: str, b: str) -> float:
    """Shared trigrams over all trigrams of the two (as ``pg_trgm``'s ``similarity``)."""
    ta, tb = trigrams(a), trigrams(b)
    union = len(ta | tb)
    return len(ta & tb) / union if union else 0.0


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lat, long) points (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def duplicate_area(tree: RegionTree, code: str) -> str:
    """Where a report's possible duplicates are looked for: its village (by rank, the
    one ladder rule ``RegionTree.ancestor_at``), else the region itself (a report made
    above any village)."""
    village = tree.ancestor_at(code, Rank.VILLAGE)
    return village.code if village is not None else code


@dataclass(frozen=True)
class Intake:
    """What the duplicate rule compares of a case: a new report or an open candidate."""

    case_id: str
    kind: str
    category: str
    title: str
    reported_at: datetime
    point: tuple[float, float] | None = None
    persons: frozenset[str] = frozenset()  # its parties' persons (and those sharing a number)


def duplicate_signals(
    new: Intake,
    other: Intake,
    *,
    window: timedelta,
    threshold: float,
    radius_m: float,
) -> list[dict[str, object]]:
    """Why ``other`` (an open case of the same village) may be ``new`` again: ``party``
    (a shared phone or ID number), ``text`` (title similarity at or above ``threshold``),
    ``nearby`` (both have points, within ``radius_m``, same kind and category). Empty:
    not a possible duplicate (or outside the window)."""
    if other.case_id == new.case_id or abs(new.reported_at - other.reported_at) > window:
        return []
    why: list[dict[str, object]] = []
    if new.persons & other.persons:
        why.append({"signal": "party"})
    close = similarity(new.title, other.title)
    if close >= threshold:
        why.append({"signal": "text", "similarity": round(close, 3)})
    if (
        new.point is not None
        and other.point is not None
        and (new.kind, new.category) == (other.kind, other.category)
    ):
        metres = distance_m(new.point, other.point)
        if metres <= radius_m:
            why.append({"signal": "nearby", "distance_m": round(metres, 1)})
    return why


@dataclass(frozen=True)
class Earlier:
    """An earlier case of one of a new petition's parties, as 重复件 needs it."""

    case_id: str
    kind: str
    category: str
    closed_at: datetime | None  # None: not closed


def repeat_of(
    kind: str, category: str, at: datetime, earlier: Iterable[Earlier], window: timedelta
) -> list[str]:
    """重复件: the earlier petitions that make a new petition of ``category``, reported
    ``at``, a repeat — closed, same category, closed within ``window`` before ``at``."""
    if kind != "petition":
        return []
    return sorted(
        e.case_id
        for e in earlier
        if e.kind == "petition"
        and e.category == category
        and e.closed_at is not None
        and timedelta(0) <= at - e.closed_at <= window
    )
