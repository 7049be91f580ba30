"""The one rule for invisible characters (sdk/text.py), applied by every bank-sent model's text fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sdk.models import NaturalPerson, Organisation, PropertyUnit
from sdk.text import check_text, find_invisible

ID = "340121196203030027"
UNIT = "340121261006GB00014F00010001"


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ("陈明\x00", "U+0000"),
        ("陈\u202e明", "U+202E"),
        ("陈\u2066明", "U+2066"),
        ("陈\u200b明", "U+200B"),
        ("陈\u200d明", "U+200D"),
        ("陈\ufeff明", "U+FEFF"),
        ("陈\n明", "U+000A"),
        ("陈\r明", "U+000D"),
        ("陈\u2028明", "U+2028"),
        ("陈\x1b明", "U+001B"),
        ("陈\x85明", "U+0085"),
        ("陈\ue000明", "U+E000"),
    ],
)
def test_names_identifiers_and_one_line_fields_refuse_invisible_characters(bad: str, code: str) -> None:
    for build in (
        lambda: NaturalPerson(name=bad, id_number=ID),
        lambda: NaturalPerson(name="陈明", id_number=ID[:9] + bad + ID[9:]),
        lambda: Organisation(name=bad, id_number="91340100MA2N0X1Y3B"),
        lambda: PropertyUnit(unit_id=UNIT, location=bad),
        lambda: PropertyUnit(unit_id=UNIT[:5] + bad + UNIT[5:], location="x"),
    ):
        with pytest.raises(ValidationError) as caught:
            build()
        assert code in str(caught.value), str(caught.value)


def test_multi_line_fields_keep_line_breaks_but_not_control_characters() -> None:
    assert check_text("第一行\n第二行\t", one_line=False) == "第一行\n第二行\t"
    assert find_invisible("第一行\n第二行") == (3, "\n")
    with pytest.raises(ValueError, match=r"U\+0000"):
        check_text("a\x00", one_line=False)
    assert check_text("𠮷䶮 陈明（长丰）") == "𠮷䶮 陈明（长丰）"
