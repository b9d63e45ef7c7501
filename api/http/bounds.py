"""Bounds on the moments a read may ask for: time travel and statistics periods.

A moment far outside the engine's life makes work without end (the clocks of a case
``as_of`` year 9999 are computed day by day) or overflows a date (``to=9999-12-31``
plus its whole day). So ``as_of`` lies in [2000-01-01, now + the clock skew the
commands allow], a statistics bound in [2000-01-01, now + 10 years], and a period
spans at most 10 years; anything else is a 422 naming the parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.cases import CLOCK_SKEW
from domain.errors import ValidationFailed

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LONGEST_PERIOD = timedelta(days=3653)  # 10 years


def moment_within(
    moment: datetime, field: str, now: datetime, *, latest: datetime | None = None
) -> datetime:
    """``moment`` if it lies in [:data:`EARLIEST`, ``latest`` (default: now + skew)]; else 422."""
    latest = latest if latest is not None else now + CLOCK_SKEW
    if not EARLIEST <= moment <= latest:
        raise ValidationFailed(
            f"{field} must lie between {EARLIEST.date()} and {latest.isoformat()}",
            field=field,
            earliest=EARLIEST.isoformat(),
            latest=latest.isoformat(),
        )
    return moment


def period_within(begin: datetime | None, stop: datetime | None, now: datetime) -> None:
    """A statistics period: each bound in range, ``from`` not after ``to``, at most 10 years."""
    for moment, field in ((begin, "from"), (stop, "to")):
        if moment is not None:
            moment_within(moment, field, now, latest=now + LONGEST_PERIOD)
    if begin is not None and stop is not None:
        if begin > stop:
            raise ValidationFailed("from must not be after to", field="from")
        if stop - begin > LONGEST_PERIOD:
            raise ValidationFailed(
                "a period spans at most 10 years", field="to", longest_days=LONGEST_PERIOD.days
            )
