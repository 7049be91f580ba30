"""De-identification of personal data for logs, screens and reports (seed 002 §5).

``mask_id("320102199001011234")`` → ``"3201**********1234"``; ``mask_name("张三丰")`` → ``"张**"``.
:func:`mask_text` finds ID numbers inside free text (an error message, a log line) and masks
them, so a message built from user data can be logged safely.
"""

from __future__ import annotations

import re

__all__ = ["mask_id", "mask_name", "mask_text"]

# 18-character resident IDs and USCCs, 15-digit old IDs, and passport-like tokens are masked
# when they stand alone in text.
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")


def mask_id(value: str) -> str:
    """Keep the first four and last four characters of an identity number."""
    text = value.strip()
    if len(text) <= 8:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 8) + text[-4:]


def mask_name(value: str) -> str:
    """Keep the first character of a person's name (张三 → 张*); organisations keep more."""
    text = value.strip()
    if not text:
        return text
    if len(text) >= 6:  # an organisation's name: keep its head and its tail
        return text[:2] + "*" * (len(text) - 4) + text[-2:]
    return text[0] + "*" * (len(text) - 1)


def mask_text(text: str) -> str:
    """Mask every identity number that appears in ``text``."""
    return _ID_IN_TEXT.sub(lambda m: mask_id(m.group(1)), text)
