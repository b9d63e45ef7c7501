"""Working calendar: real 2025/2026 statutory data, overrides, and properties."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import (
    DEFAULT_HOURS,
    SHANGHAI,
    CalendarFileError,
    WorkingCalendar,
    WorkingHours,
    add_calendar,
    statutory_data_covers,
)

CAL = WorkingCalendar()
UTC = ZoneInfo("UTC")


def sh(*args: int) -> datetime:
    """A Shanghai-local aware datetime."""
    return datetime(*args, tzinfo=SHANGHAI)


# ------------------------------------------------------------ working days


def test_statutory_data_range():
    assert statutory_data_covers(2004)
    assert statutory_data_covers(2026)
    assert not statutory_data_covers(2003)


def test_national_day_2025():
    for day in range(1, 9):
        assert not CAL.is_working_day(date(2025, 10, day)), f"Oct {day} is a holiday"
    assert CAL.is_working_day(date(2025, 9, 28))  # Sunday, 调休上班
    assert CAL.is_working_day(date(2025, 10, 11))  # Saturday, 调休上班
    assert not CAL.is_working_day(date(2025, 9, 27))  # ordinary Saturday
    assert not CAL.is_working_day(date(2025, 10, 12))  # ordinary Sunday


def test_five_working_days_across_national_day_counts_make_up_sunday():
    # Thu 25 Sep: Fri 26 (1), Sun 28 调休 (2), Mon 29 (3), Tue 30 (4), Oct 1-8 off, Thu Oct 9 (5)
    assert CAL.add_working_days(sh(2025, 9, 25, 10), 5) == sh(2025, 10, 9, 10)
    assert CAL.add_working_days(sh(2025, 9, 26, 10), 1) == sh(2025, 9, 28, 10)
    assert CAL.add_working_days(sh(2025, 10, 10, 15), 1) == sh(2025, 10, 11, 15)


def test_spring_festival_2025_and_2026():
    assert CAL.add_working_days(sh(2025, 1, 24, 10), 1) == sh(2025, 1, 26, 10)  # Sun 调休
    assert CAL.add_working_days(sh(2025, 1, 27, 10), 1) == sh(2025, 2, 5, 10)  # Jan 28-Feb 4 off
    assert CAL.add_working_days(sh(2026, 2, 13, 10), 1) == sh(2026, 2, 14, 10)  # Sat 调休
    assert CAL.add_working_days(sh(2026, 2, 14, 10), 1) == sh(2026, 2, 24, 10)  # Feb 15-23 off
    assert CAL.next_working_day(date(2026, 2, 14)) == date(2026, 2, 24)
    assert CAL.is_working_day(date(2026, 2, 28))  # Saturday 调休


def test_plain_weekend():
    assert CAL.add_working_days(sh(2025, 3, 14, 10), 1) == sh(2025, 3, 17, 10)  # Fri -> Mon
    assert CAL.next_working_day(date(2025, 3, 14)) == date(2025, 3, 17)
    assert CAL.next_working_day(date(2025, 3, 15)) == date(2025, 3, 17)


def test_non_working_start_counts_from_next_working_day_and_ends_at_close():
    assert CAL.add_working_days(sh(2025, 3, 15, 10), 1) == sh(2025, 3, 17, 17, 30)  # Sat
    assert CAL.add_working_days(sh(2025, 3, 15, 10), 2) == sh(2025, 3, 18, 17, 30)
    assert CAL.add_working_days(sh(2025, 3, 14, 18), 1) == sh(2025, 3, 17, 17, 30)  # Fri evening
    assert CAL.add_working_days(sh(2025, 3, 17, 7), 1) == sh(2025, 3, 17, 17, 30)  # Mon early
    assert CAL.add_working_days(sh(2025, 3, 17, 12, 45), 1) == sh(2025, 3, 18, 12)  # lunch
    assert CAL.add_working_days(sh(2025, 10, 3, 10), 1) == sh(2025, 10, 9, 17, 30)  # holiday


def test_zero_working_days_returns_normalised_start():
    assert CAL.add_working_days(sh(2025, 3, 17, 10), 0) == sh(2025, 3, 17, 10)
    assert CAL.add_working_days(sh(2025, 3, 17, 17, 30), 0) == sh(2025, 3, 17, 17, 30)
    assert CAL.add_working_days(sh(2025, 3, 15, 10), 0) == sh(2025, 3, 17, 9)
    assert CAL.add_working_hours(sh(2025, 3, 17, 12, 45), 0) == sh(2025, 3, 17, 13, 30)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        CAL.add_working_days(sh(2025, 3, 17, 10), -1)
    with pytest.raises(ValueError):
        CAL.add_working_hours(sh(2025, 3, 17, 10), -0.5)
    with pytest.raises(TypeError):
        CAL.add_working_days(sh(2025, 3, 17, 10), 1.5)
    naive = datetime(2025, 3, 17, 10)
    for call in (
        lambda: CAL.add_working_days(naive, 1),
        lambda: CAL.add_working_hours(naive, 1),
        lambda: CAL.working_time_between(naive, sh(2025, 3, 18)),
        lambda: CAL.working_time_between(sh(2025, 3, 16), naive),
        lambda: add_calendar(naive, timedelta(hours=1)),
    ):
        with pytest.raises(ValueError, match="naive"):
            call()


# ----------------------------------------------------------- working hours


def test_add_working_hours_across_lunch_break():
    assert CAL.add_working_hours(sh(2025, 3, 17, 11), 2) == sh(2025, 3, 17, 14, 30)
    assert CAL.add_working_hours(sh(2025, 3, 17, 11), 1) == sh(2025, 3, 17, 12)  # window end
    assert CAL.add_working_hours(sh(2025, 3, 17, 12, 30), 1) == sh(2025, 3, 17, 14, 30)


def test_add_working_hours_across_night_and_weekend():
    assert CAL.add_working_hours(sh(2025, 3, 17, 17), 1) == sh(2025, 3, 18, 9, 30)
    assert CAL.add_working_hours(sh(2025, 3, 17, 17), 0.5) == sh(2025, 3, 17, 17, 30)
    assert CAL.add_working_hours(sh(2025, 3, 14, 17), timedelta(hours=1)) == sh(2025, 3, 17, 9, 30)


def test_add_working_hours_across_holiday_and_make_up_saturday():
    assert CAL.add_working_hours(sh(2025, 9, 30, 17), 1) == sh(2025, 10, 9, 9, 30)
    assert CAL.add_working_hours(sh(2025, 10, 10, 17), 1) == sh(2025, 10, 11, 9, 30)


def test_timezones_in_and_out():
    start = datetime(2025, 3, 17, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    result = CAL.add_working_hours(start, 1)
    assert result == sh(2025, 3, 17, 11)
    assert result.tzinfo == SHANGHAI
    assert CAL.add_working_days(start, 1).tzinfo == SHANGHAI
    assert add_calendar(start, timedelta(days=1)) == sh(2025, 3, 18, 10)
    assert add_calendar(start, timedelta(days=1)).tzinfo == SHANGHAI


def test_working_time_between():
    assert CAL.working_time_between(sh(2025, 3, 17, 9), sh(2025, 3, 18, 9)) == timedelta(hours=7)
    # Fri 11:00-12:00, 13:30-17:30, Mon 09:00-10:00
    assert CAL.working_time_between(sh(2025, 3, 14, 11), sh(2025, 3, 17, 10)) == timedelta(hours=6)
    assert CAL.working_time_between(sh(2025, 3, 18), sh(2025, 3, 17)) == timedelta()
    assert CAL.working_time_between(sh(2025, 10, 1), sh(2025, 10, 9)) == timedelta()
    assert CAL.working_days_between(sh(2025, 9, 25, 10), sh(2025, 10, 9, 10)) == 5.0
    assert CAL.working_days_between(sh(2025, 3, 17, 9), sh(2025, 3, 17, 12, 30)) == 3 / 7


def test_custom_hours_and_validation():
    cal = WorkingCalendar(hours=WorkingHours(((time(8, 0), time(16, 0)),)))
    assert cal.day_length == timedelta(hours=8)
    assert cal.add_working_hours(sh(2025, 3, 17, 15), 2) == sh(2025, 3, 18, 9)
    assert DEFAULT_HOURS.day_length == timedelta(hours=7)
    with pytest.raises(ValueError):
        WorkingHours(())
    with pytest.raises(ValueError):
        WorkingHours(((time(12), time(9)),))
    with pytest.raises(ValueError):
        WorkingHours(((time(9), time(12)), (time(11), time(14))))
    with pytest.raises(ValueError, match="2025-03-17"):
        WorkingCalendar(extra_holidays={date(2025, 3, 17)}, extra_workdays={date(2025, 3, 17)})


# --------------------------------------------------------------- overrides

OVERRIDE_2027 = """\
name = "cn-2027"
[[holiday]]
from = 2027-01-01
to = 2027-01-03
name = "元旦"
[[workday]]
date = 2027-01-04    # 调休上班
name = "元旦调休"
[hours]
windows = [["09:00", "12:00"], ["13:30", "17:30"]]   # optional
"""

OVERRIDE_2099 = """\
name = "cn-2099"
[[holiday]]
from = 2099-01-01
to = 2099-01-03
name = "元旦"
[[workday]]
date = 2099-01-04
name = "元旦调休"
"""


def test_override_example_from_spec():
    cal = WorkingCalendar.from_overrides(OVERRIDE_2027)
    assert cal.name == "cn-2027"
    assert cal.hours == DEFAULT_HOURS
    assert cal.extra_holidays == {date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)}
    assert cal.extra_workdays == {date(2027, 1, 4)}
    assert not cal.is_working_day(date(2027, 1, 1))  # a Friday
    assert cal.is_working_day(date(2027, 1, 4))


def test_override_outside_statutory_range():
    assert not statutory_data_covers(2099)
    plain = WorkingCalendar()
    assert plain.is_working_day(date(2099, 1, 1))  # Thursday, Mon-Fri fallback
    assert not plain.is_working_day(date(2099, 1, 4))  # Sunday
    cal = WorkingCalendar.from_overrides(OVERRIDE_2099)
    assert not cal.is_working_day(date(2099, 1, 1))
    assert cal.is_working_day(date(2099, 1, 4))  # Sunday made a working day
    # Wed 31 Dec 2098 + 1 working day skips Thu-Sat holidays, lands on the make-up Sunday
    assert cal.add_working_days(sh(2098, 12, 31, 10), 1) == sh(2099, 1, 4, 10)
    assert cal.add_working_days(sh(2098, 12, 31, 10), 2) == sh(2099, 1, 5, 10)


def test_override_wins_over_statutory_data_and_keywords_merge():
    text = '[[workday]]\ndate = "2025-10-03"\n[hours]\nwindows = [["08:30", "17:00"]]\n'
    cal = WorkingCalendar.from_overrides(text, name="pilot", extra_holidays={date(2025, 3, 17)})
    assert cal.name == "pilot"
    assert cal.is_working_day(date(2025, 10, 3))
    assert not cal.is_working_day(date(2025, 3, 17))
    assert cal.day_length == timedelta(hours=8, minutes=30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = \n", "invalid TOML.*line 1"),
        ("[[holidays]]\ndate = 2027-01-01\n", "unknown key.*holidays"),
        ("name = 3\n", "name"),
        ("holiday = 3\n", "holiday"),
        ("[[holiday]]\nfrom = 2027-01-01\n", r"line 1: holiday\[0\]: missing 'to'"),
        (
            '[[holiday]]\ndate = 2027-01-01\n[[holiday]]\ndate = "soon"\n',
            r"line 3: holiday\[1\]\.date",
        ),
        ("[[workday]]\nfrom = 2027-01-05\nto = 2027-01-04\n", r"workday\[0\].*before"),
        ("[[workday]]\ndate = 2027-01-04\nwhen = 1\n", r"workday\[0\].*unknown key.*when"),
        ("[[workday]]\ndate = 2027-01-04T09:00:00\n", r"workday\[0\]\.date"),
        ("[[holiday]]\ndate = 2027-01-04\n[[workday]]\ndate = 2027-01-04\n", "2027-01-04.*both"),
        ("[[holiday]]\nfrom = 2027-01-01\nto = 2029-01-01\n", "range longer"),
        ('[hours]\nwindows = [["12:00", "09:00"]]\n', "hours.windows"),
        ('[hours]\nwindows = [["9am", "12:00"]]\n', r"hours.windows\[0\]"),
        ("[hours]\nwindows = []\n", "hours.windows"),
        ('[hours]\nstart = "09:00"\n', "hours.*unknown key.*start"),
    ],
)
def test_bad_override_text_names_the_problem(text, message):
    with pytest.raises(CalendarFileError, match=message):
        WorkingCalendar.from_overrides(text)


def test_calendar_file_error_is_a_value_error():
    assert issubclass(CalendarFileError, ValueError)


# -------------------------------------------------------------- properties

# 2024-12 .. 2027-03 spans statutory data (2025, 2026) and the Mon-Fri fallback (2027).
_dates = st.dates(min_value=date(2024, 12, 1), max_value=date(2027, 3, 1))
_boundaries = st.sampled_from(
    [time(0), time(8, 59, 59, 999999), time(9), time(12), time(12, 45), time(13, 30), time(17, 30)]
)
_any_times = st.times()
moments = st.one_of(
    st.builds(lambda d, t: datetime.combine(d, t, tzinfo=SHANGHAI), _dates, _boundaries),
    st.builds(lambda d, t: datetime.combine(d, t, tzinfo=SHANGHAI), _dates, _any_times),
    st.builds(lambda d, t: datetime.combine(d, t, tzinfo=UTC), _dates, _any_times),
)
durations = st.one_of(
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(hours=150)),
    st.integers(min_value=1, max_value=300).map(lambda n: timedelta(minutes=30 * n)),
)
day_counts = st.integers(min_value=0, max_value=40)
FAST = settings(max_examples=100, deadline=None)


def _inside_working_window(moment: datetime) -> bool:
    local = moment.astimezone(SHANGHAI)
    return CAL.is_working_day(local.date()) and any(
        start <= local.time() <= end for start, end in CAL.hours.windows
    )


@FAST
@given(moments, durations)
def test_round_trip(start, amount):
    assert CAL.working_time_between(start, CAL.add_working_hours(start, amount)) == amount


@FAST
@given(moments, day_counts.filter(bool))
def test_working_days_round_trip(start, n):
    assert CAL.working_days_between(start, CAL.add_working_days(start, n)) == n


@FAST
@given(moments, moments, durations)
def test_add_working_hours_monotonic_in_start(a, b, amount):
    s1, s2 = sorted([a, b])
    assert CAL.add_working_hours(s1, amount) <= CAL.add_working_hours(s2, amount)


@FAST
@given(moments, durations, durations)
def test_add_working_hours_monotonic_in_amount(start, h1, h2):
    h1, h2 = sorted([h1, h2])
    assert CAL.add_working_hours(start, h1) <= CAL.add_working_hours(start, h2)


@FAST
@given(moments, moments, day_counts)
def test_add_working_days_monotonic_in_start(a, b, n):
    s1, s2 = sorted([a, b])
    assert CAL.add_working_days(s1, n) <= CAL.add_working_days(s2, n)


@FAST
@given(moments, day_counts, day_counts)
def test_add_working_days_monotonic_in_count(start, n1, n2):
    n1, n2 = sorted([n1, n2])
    assert CAL.add_working_days(start, n1) <= CAL.add_working_days(start, n2)


@FAST
@given(moments, moments, moments)
def test_working_time_between_is_additive(x, y, z):
    a, b, c = sorted([x, y, z])
    total = CAL.working_time_between(a, c)
    assert CAL.working_time_between(a, b) + CAL.working_time_between(b, c) == total


@FAST
@given(moments, durations, day_counts.filter(bool))
def test_results_are_later_and_inside_working_hours(start, amount, n):
    for result in (CAL.add_working_hours(start, amount), CAL.add_working_days(start, n)):
        assert result > start
        assert result.tzinfo == SHANGHAI
        assert _inside_working_window(result)


def _advance_worked_out(calendar: WorkingCalendar, start: datetime, amount: timedelta) -> datetime:
    """``add_working_hours`` with each date's windows worked out afresh (none kept)."""
    t, d, remaining = start.astimezone(calendar.tz).replace(tzinfo=None), None, amount
    d = t.date()
    while True:
        windows = list(calendar.hours.on(d)) if calendar.is_working_day(d) else []
        for window_start, window_end in windows:
            if window_end < t:
                continue
            segment_start = max(window_start, t)
            if remaining <= window_end - segment_start:
                return (segment_start + remaining).replace(tzinfo=calendar.tz)
            remaining -= window_end - segment_start
        d += timedelta(days=1)


@FAST
@given(moments, durations)
def test_kept_windows_answer_as_worked_out_afresh(start, amount):
    """The windows a calendar keeps per date answer as worked out afresh, asked again and
    after its store was cleared."""
    calendar = WorkingCalendar.from_overrides('[[holiday]]\ndate = 2026-03-10\nname = "x"\n')
    expected = _advance_worked_out(calendar, start, amount)
    assert calendar.add_working_hours(start, amount) == expected
    assert calendar.add_working_hours(start, amount) == expected
    calendar._days.clear()
    assert calendar.add_working_hours(start, amount) == expected
