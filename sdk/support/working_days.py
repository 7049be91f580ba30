"""Working days (工作日) in mainland China: public holidays and 调休 working days, for time limits.

One implementation for every layer that counts working days: the agent's committed time limits
(承诺办结时限, seed 001 "112", seed 004 "抵押权登记10个工作日内办结") and the sandbox's 补正 deadlines.
:mod:`config` builds the calendar the project uses (:func:`config.working_calendar`) from the table
in ``config/time_limits.toml``; this module holds only the rules.

Where a day's status comes from, in order:

1. ``chinese-calendar`` (PyPI ``chinesecalendar``, the ``calendar`` extra), which carries the State
   Council's published schedule (国务院办公厅关于节假日安排的通知) for each year it knows — holidays
   *and* the weekend days made working days (调休). It has data only up to the last published year
   (1.11.0: 2004–2026); for other years it raises ``NotImplementedError``.
2. A fallback table (``holidays``/``workdays`` by year, from config) for years the library lacks:
   weekends plus the listed holidays, minus the listed 调休 working days. Before the State Council
   publishes a year, the table can hold only the statutory days (全国年节及纪念日放假办法), so counts
   in such a year are an estimate: :meth:`WorkingCalendar.fallback_years` names them so callers warn.
3. Weekends alone, for a year in neither (also named by :meth:`WorkingCalendar.fallback_years`).

Counting follows 民法典 第二百零一条: a period counted in days starts on the day after the event
(受理 on a Friday, a 1-working-day limit ends on Monday), and ends at the end of its last day. Dates
are Beijing dates (UTC+8, no daylight saving): :func:`beijing_date` converts an instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Literal

__all__ = ["BEIJING", "DaySource", "WorkingCalendar", "beijing_date", "end_of_day"]

#: China Standard Time: UTC+8 all year (no daylight saving since 1991), so a fixed offset is exact and
#: needs no time-zone database (Windows has none).
BEIJING = timezone(timedelta(hours=8), "CST")

DaySource = Literal["chinese-calendar", "config", "weekends"]


def beijing_date(instant: datetime) -> date:
    """The Beijing calendar date of an instant (naive datetimes are taken as UTC)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(BEIJING).date()


def end_of_day(day: date) -> datetime:
    """The last instant of a Beijing day (23:59:59.999999+08:00): when a period ending that day runs out."""
    return datetime.combine(day, time.max, tzinfo=BEIJING)


def _library() -> Any | None:
    try:
        import chinese_calendar  # the `calendar` extra
    except ImportError:
        return None
    return chinese_calendar


@dataclass
class WorkingCalendar:
    """Which days are working days.

    Args:
        holidays: fallback holidays by year (for years the library has no data for).
        workdays: fallback 调休 working days (weekend days worked) by year.
        use_library: consult ``chinese-calendar`` first when it is installed (tests may turn it off).

    Example:
        >>> cal = WorkingCalendar()
        >>> cal.add_working_days(date(2026, 9, 30), 1)  # 国庆 2026: 10-01..10-07 off
        datetime.date(2026, 10, 8)
    """

    holidays: Mapping[int, Iterable[date]] = field(default_factory=dict)
    workdays: Mapping[int, Iterable[date]] = field(default_factory=dict)
    use_library: bool = True
    _holidays: dict[int, frozenset[date]] = field(init=False, repr=False)
    _workdays: dict[int, frozenset[date]] = field(init=False, repr=False)
    _library_years: dict[int, bool] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._holidays = {y: frozenset(d) for y, d in self.holidays.items()}
        self._workdays = {y: frozenset(d) for y, d in self.workdays.items()}
        for table in (self._holidays, self._workdays):
            for year, days in table.items():
                wrong = sorted(d for d in days if d.year != year)
                if wrong:
                    raise ValueError(f"working-day table for {year} lists {wrong[0].isoformat()} of another year")
        self._lib = _library() if self.use_library else None

    def source(self, year: int) -> DaySource:
        """Where the days of ``year`` come from: the library, the config table, or weekends alone."""
        if self._lib is not None:
            known = self._library_years.get(year)
            if known is None:
                try:
                    self._lib.is_workday(date(year, 6, 1))
                    known = True
                except NotImplementedError:
                    known = False
                self._library_years[year] = known
            if known:
                return "chinese-calendar"
        if year in self._holidays or year in self._workdays:
            return "config"
        return "weekends"

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` is a working day (a weekday that is no holiday, or a 调休 weekend day)."""
        src = self.source(day.year)
        if src == "chinese-calendar":
            return bool(self._lib.is_workday(day))  # type: ignore[union-attr]
        if day in self._workdays.get(day.year, ()):
            return True
        if day in self._holidays.get(day.year, ()):
            return False
        return day.weekday() < 5

    def add_working_days(self, start: date, count: int) -> date:
        """The day on which a period of ``count`` working days counted from ``start`` ends.

        ``start`` itself never counts (民法典 art. 201); ``count`` 0 answers ``start``.

        Raises:
            ValueError: ``count`` is negative.
        """
        if count < 0:
            raise ValueError(f"count must be ≥ 0, got {count}")
        day = start
        while count:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (``start``, ``end``]: how many of a period's days have run out by ``end``.

        0 when ``end`` is not after ``start``.
        """
        days = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            days += self.is_working_day(day)
        return days

    def fallback_years(self, start: date, end: date) -> list[int]:
        """The years in [``start``, ``end``] whose days do not come from the library (callers warn)."""
        return [y for y in range(start.year, end.year + 1) if self.source(y) != "chinese-calendar"]
