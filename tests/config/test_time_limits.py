"""config/time_limits.toml: every business type's committed time limit, its source, and a centre's own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config import TimeLimits, load_time_limits, working_calendar
from sandbox.schedule import Timing
from sdk.models import APPLICATION_TYPES
from sdk.support.working_days import end_of_day


def test_every_business_type_has_a_default_limit_with_its_source() -> None:
    limits = load_time_limits()
    assert set(limits.defaults) == set(APPLICATION_TYPES)
    assert limits.limit("mortgage_first").working_days == 10  # seed 004: 抵押权登记10个工作日内办结
    assert limits.limit("purchase_notice").working_days == 5  # seed 004: 5个工作日内出证
    assert all(limits.limit(t).source for t in APPLICATION_TYPES)
    with pytest.raises(KeyError):
        limits.limit("no_such_type")


def test_a_centre_states_its_own_limits_and_keeps_the_default_for_the_rest() -> None:
    base = load_time_limits()
    limits = TimeLimits(base.defaults, base.default_source, {"340121": ("长丰县服务指南", {"mortgage_first": 5})})
    own = limits.limit("mortgage_first", "340121")
    assert (own.working_days, own.source, own.centre) == (5, "长丰县服务指南", "340121")
    assert limits.limit("mortgage_change", "340121").working_days == 10  # not listed: the default
    assert limits.limit("mortgage_first", "110101").centre is None


def test_the_sandbox_counts_its_correction_deadline_in_the_same_working_days() -> None:
    """A 补正 of 2 working days asked on 2026-12-31: 元旦 (config, 2027) and a weekend pass, it ends 01-05."""
    asked = datetime(2026, 12, 31, 2, 0, tzinfo=UTC)
    timing = Timing(correction_working_days=2)
    assert timing.correction_deadline(asked) == end_of_day(working_calendar().add_working_days(asked.date(), 2))
    assert timing.correction_deadline(asked).date().isoformat() == "2027-01-05"
    assert Timing(correction_days=1.5).correction_deadline(asked) == datetime(2027, 1, 1, 14, 0, tzinfo=UTC)
