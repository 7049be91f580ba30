"""Searching by an ID number however staff type it (break23): grouped with dashes or spaces, full-width,
a lower-case x — recognised as an ID number (so never put in a URL nor written in full to the audit log)
and matched to the same keyed hash."""

from __future__ import annotations

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
