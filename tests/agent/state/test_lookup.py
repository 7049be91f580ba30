"""Searching by an ID number however staff type it (break23): grouped with dashes or spaces, full-width,
a lower-case x — recognised as an ID number (so never put in a URL nor written in full to the audit log)
and matched to the same keyed hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.state.lookup import looks_like_id_number, masked_query, person_digest

ID = "34012119620303002X"


@pytest.mark.parametrize(
    "typed",
    [
        ID,
        ID.lower(),
        "340121-19620303-002X",
        "3401 2119 6203 0300 2x",
        "３４０１２１１９６２０３０３００２Ｘ",
        "340121–19620303–002X",
        "340121－19620303－002X",
    ],
)
def test_an_id_number_typed_any_way_is_recognised_masked_and_matched(typed: str) -> None:
    key = b"k" * 32
    assert looks_like_id_number(typed)
    shown = masked_query(typed)
    assert "19620303" not in shown and shown.startswith("3401") and shown.endswith("002X")
    assert person_digest(key, typed) == person_digest(key, ID)


def test_other_keys_are_not_taken_for_an_id_number() -> None:
    for q in ("DEMO-001", "HT-DEMO-001", "340121261006GB00014F00010001", "app_5f2a"):
        assert not looks_like_id_number(q) and masked_query(q) == q


def test_a_name_typed_into_the_search_is_masked_where_the_search_is_shown_or_audited() -> None:
    assert masked_query("张伟") == "张*" and masked_query(" 欧阳娜娜 ") == "欧***"


def test_an_application_held_with_a_quarantine_item_needs_a_person_once(tmp_path: Path) -> None:
    """break23: a pre-flight hold was listed twice (the application, and its quarantine item)."""
    from agent.state.sqlite import SQLiteStore
    from agent.state.status import needing_person

    from .test_state import _app

    store = SQLiteStore(tmp_path / "s.db")
    try:
        for ref in ("LN-1-DYSC", "LN-2-DYSC"):
            store.add_application({**_app(ref), "loan_no": ref[:4], "idem_create": ref, "idem_submit": ref + "s"})
            store.update_application(ref, stage="quarantined", last_error="held")
        error = {"file": "a.csv", "row": 2, "field": "x", "value": "", "expected": "held", "target": ""}
        store.quarantine("preflight", [error], loan_no="LN-1", reference="LN-1-DYSC", row=2)
        needs = [(n["reference"], n["why"]) for n in needing_person(store)]
    finally:
        store.close()
    assert sorted(needs) == [("LN-1-DYSC", "quarantine #1"), ("LN-2-DYSC", "quarantined")]
