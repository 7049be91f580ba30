"""Money, exact to the fen.

Amounts travel as decimal strings of yuan with at most two decimals (``"1500000.00"``), never
as floats. The register keeps mortgage amounts in 万元; convert only at that boundary with
:func:`yuan_to_wan` / :func:`wan_to_yuan`.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = ["Yuan", "fen_to_yuan", "parse_yuan", "wan_to_yuan", "yuan_to_fen", "yuan_to_wan"]

#: no registration amount comes near this; bigger numbers are input errors (and beyond exact fen arithmetic)
MAX_YUAN = Decimal("1000000000000000")
_FEN = Decimal("0.01")
_TEN_THOUSAND = Decimal(10000)


def parse_yuan(value: object) -> Decimal:
    """An amount in yuan as an exact ``Decimal`` with two decimals.

    Accepts ``Decimal``, ``int`` and decimal strings (``"1,234.56"`` and full-width digits
    too). Refuses floats, which cannot say an amount exactly, and anything below the fen.

    Raises:
        ValueError: the value is not an amount, is negative, or has fractions of a fen.
    """
    if isinstance(value, bool | float):
        raise ValueError("amount: give a decimal string or Decimal, not a float")
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().replace(",", "")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"amount: {value!r} is not a number") from None
    elif isinstance(value, int | Decimal):
        amount = Decimal(value)
    else:
        raise ValueError(f"amount: expected a decimal amount, got {type(value).__name__}")
    if not amount.is_finite():
        raise ValueError("amount: must be finite")
    if amount < 0:
        raise ValueError(f"amount: {amount} is negative")
    if amount >= MAX_YUAN:
        raise ValueError(f"amount: must be below {MAX_YUAN:,} yuan")
    if amount != amount.quantize(_FEN):
        raise ValueError(f"amount: {amount} has fractions of a fen")
    return amount.quantize(_FEN)


def yuan_to_fen(amount: Decimal) -> int:
    return int(parse_yuan(amount) * 100)


def fen_to_yuan(fen: int) -> Decimal:
    if fen < 0:
        raise ValueError("amount: negative fen")
    return (Decimal(fen) / 100).quantize(_FEN)


def yuan_to_wan(amount: Decimal) -> Decimal:
    """Yuan → 万元 for the register, exact (up to six decimals, since 1 fen = 0.000001 万元)."""
    return (parse_yuan(amount) / _TEN_THOUSAND).normalize()


def wan_to_yuan(amount: Decimal | str) -> Decimal:
    """万元 → yuan; the result must be a whole number of fen.

    Raises:
        ValueError: when the 万元 amount does not land on a fen (more than six decimals).
    """
    wan = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    return parse_yuan(wan * _TEN_THOUSAND)


Yuan = Annotated[
    Decimal,
    BeforeValidator(parse_yuan),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d{1,2})?$", "examples": ["1500000.00"]}),
]
"""An amount in yuan, exact to the fen; a decimal string on the wire."""
