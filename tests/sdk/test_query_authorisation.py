"""The authorisation rules the agent and the centre share (sdk.models.QueryAuthorisation.problems)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from sdk.models import AUTHORISATION_VALIDITY_DAYS, PropertyQuery, QueryAuthorisation

from ..factories import person

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 10:00 in Beijing


def _auth(**changes: Any) -> QueryAuthorisation:
    data: dict[str, Any] = {
        "reference": "SQ-1",
        "applicant": person().model_dump(mode="json"),
        "signed_at": "2026-11-29T01:00:00+00:00",
        "signature_id": "s-1",
        **changes,
    }
    return QueryAuthorisation.model_validate(data)


def _codes(auth: QueryAuthorisation, owners: set[str] | None = None) -> list[str]:
    return [p.code for p in auth.problems(now=NOW, owner_ids=owners)]


def test_a_good_authorisation_has_no_problem() -> None:
    auth = _auth(valid_until="2026-11-30")  # its last day is today (Beijing)
    assert _codes(auth, {auth.applicant.id_number}) == []


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"valid_until": "2026-11-29"}, "authorisation_expired"),
        ({"signed_at": "2099-01-01T00:00:00+00:00"}, "authorisation_future_dated"),
        ({"valid_from": "2026-12-01"}, "authorisation_not_yet_valid"),
        ({"purpose": "credit_check"}, "authorisation_wrong_purpose"),
        ({"valid_from": "2026-11-20", "valid_until": "2026-11-10"}, "authorisation_expired"),
    ],
)
def test_each_bad_authorisation_names_its_reason(changes: dict[str, Any], code: str) -> None:
    problems = _auth(**changes).problems(now=NOW)
    assert code in [p.code for p in problems]
    assert all(p.reason and p.pointer.startswith("/authorisation/") for p in problems)


def test_an_authorisation_without_an_end_lasts_its_default_period_from_signing() -> None:
    signed_long_ago = _auth(signed_at="2026-01-01T00:00:00+00:00")
    assert AUTHORISATION_VALIDITY_DAYS == 90 and _codes(signed_long_ago) == ["authorisation_expired"]
    assert "2026-04-01" in signed_long_ago.problems(now=NOW)[0].reason


def test_the_person_authorising_must_be_an_owner_when_the_owners_are_known() -> None:
    auth = _auth()
    assert _codes(auth, {"110101199003070000"}) == ["authorisation_not_owner"]
    assert _codes(auth, None) == []


def test_a_query_names_its_unit_by_exactly_one_key() -> None:
    base = {"operator_id": "op-1", "authorisation": _auth().model_dump(mode="json")}
    assert PropertyQuery.model_validate({**base, "location": "合肥市长丰县双凤大道88号"}).location
    with pytest.raises(ValueError, match="exactly one"):
        PropertyQuery.model_validate({**base, "location": "x", "unit_id": "340121261006GB00014F00010001"})
    with pytest.raises(ValueError, match="exactly one"):
        PropertyQuery.model_validate(base)
    assert date(2026, 11, 30) == NOW.date()
