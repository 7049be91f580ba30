from __future__ import annotations

from decimal import Decimal

import pytest

from sdk.money import fen_to_yuan, parse_yuan, wan_to_yuan, yuan_to_fen, yuan_to_wan


@pytest.mark.parametrize(
    ("given", "expected"),
    [("1,234.56", "1234.56"), ("１２３４．５", "1234.50"), (Decimal("10"), "10.00"), (7, "7.00")],
)
def test_parse_yuan_is_exact(given: object, expected: str) -> None:
    assert parse_yuan(given) == Decimal(expected)
    assert str(parse_yuan(given)) == expected


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (0.1, "not a float"),
        ("1.001", "fractions of a fen"),
        ("-1", "negative"),
        ("abc", "not a number"),
        (True, "float"),
    ],
)
def test_parse_yuan_refuses(given: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_yuan(given)


def test_wan_conversion_only_at_the_edge_and_exact() -> None:
    assert yuan_to_wan(Decimal("1500000.00")) == Decimal("150")
    assert yuan_to_wan(Decimal("0.01")) == Decimal("0.000001")
    assert wan_to_yuan("150.123456") == Decimal("1501234.56")
    with pytest.raises(ValueError, match="fen"):
        wan_to_yuan("0.0000001")
    assert yuan_to_fen(Decimal("12.34")) == 1234 and fen_to_yuan(1234) == Decimal("12.34")


@pytest.mark.parametrize("text", ["1e30", "1000000000000000", "9" * 40])
def test_absurd_amounts_are_refused_not_crashed(text: str) -> None:
    with pytest.raises(ValueError, match="below"):
        parse_yuan(text)
