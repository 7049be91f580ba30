"""Working days: chinese-calendar where it has data, the config table and weekends where it has none."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from config import load_time_limits, working_calendar
from sdk.support.working_days import WorkingCalendar, beijing_date, end_of_day


def test_the_library_knows_2026_holidays_and_the_weekend_days_worked_in_lieu() -> None:
    cal = working_calendar()
    assert cal.source(2026) == "chinese-calendar"
    assert not cal.is_working_day(date(2026, 10, 1))  # 国庆
    assert cal.is_working_day(date(2026, 10, 10))  # a Saturday worked in lieu (调休)
    assert cal.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    # 春节 2026: 02-15..02-23 off, Saturday 02-14 and 02-28 worked
    assert cal.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert cal.add_working_days(date(2026, 2, 14), 1) == date(2026, 2, 24)


def test_a_limit_that_crosses_the_end_of_the_library_data_counts_on_with_the_config_table() -> None:
    """chinese-calendar 1.11 stops at 2026: 2027 comes from config/time_limits.toml (statutory days) with a warning."""
    cal = working_calendar()
    assert cal.source(2027) == "config" and cal.source(2031) == "weekends"
    assert cal.fallback_years(date(2026, 12, 1), date(2027, 2, 1)) == [2027]
    assert cal.fallback_years(date(2026, 1, 1), date(2026, 12, 31)) == []
    # 受理 Friday 2026-12-25: 12-28..31 (4), 2027-01-01 元旦 off, 01-04..08 (9), 01-11 (10)
    assert cal.add_working_days(date(2026, 12, 25), 10) == date(2027, 1, 11)
    assert cal.working_days_between(date(2026, 12, 25), date(2027, 1, 11)) == 10
    # 春节 2027 from the table: 02-05..02-08 off (02-06/07 a weekend anyway)
    assert cal.add_working_days(date(2027, 2, 4), 1) == date(2027, 2, 9)
    limit = load_time_limits().limit("mortgage_first")
    assert limit.working_days == 10 and "seed 004" in limit.source
    accepted = datetime(2026, 12, 25, 2, 0, tzinfo=UTC)  # 10:00 Beijing
    assert limit.due(accepted, cal) == end_of_day(date(2027, 1, 11))


def test_without_the_library_the_table_and_weekends_are_used() -> None:
    bare = WorkingCalendar(use_library=False)
    assert bare.source(2026) == "weekends"
    assert bare.is_working_day(date(2026, 10, 1))  # a Thursday: without data it is not known to be a holiday
    table = WorkingCalendar(holidays={2030: [date(2030, 1, 1)]}, workdays={2030: [date(2030, 1, 5)]}, use_library=False)
    assert table.source(2030) == "config"
    assert not table.is_working_day(date(2030, 1, 1)) and table.is_working_day(date(2030, 1, 5))
    assert not table.is_working_day(date(2030, 1, 6))  # a Sunday


def test_counting_starts_the_day_after_and_rejects_what_cannot_be() -> None:
    cal = WorkingCalendar(use_library=False)
    assert cal.add_working_days(date(2030, 1, 4), 0) == date(2030, 1, 4)
    assert cal.add_working_days(date(2030, 1, 4), 1) == date(2030, 1, 7)  # Friday → Monday (民法典 art. 201)
    assert cal.working_days_between(date(2030, 1, 7), date(2030, 1, 7)) == 0
    with pytest.raises(ValueError, match="≥ 0"):
        cal.add_working_days(date(2030, 1, 4), -1)
    with pytest.raises(ValueError, match="another year"):
        WorkingCalendar(holidays={2030: [date(2031, 1, 1)]})


def test_dates_are_beijing_dates() -> None:
    assert beijing_date(datetime(2026, 12, 31, 16, 0, tzinfo=UTC)) == date(2027, 1, 1)
    assert beijing_date(datetime(2026, 12, 31, 15, 59)) == date(2026, 12, 31)  # naive = UTC
    assert end_of_day(date(2027, 1, 1)).astimezone(UTC) == datetime(2027, 1, 1, 15, 59, 59, 999999, tzinfo=UTC)
