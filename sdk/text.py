"""The one rule for characters a person cannot see, in every name, identifier and text field a bank sends.

A name or identifier that holds an invisible character is not the name or number a person reads:
``"陈明\\x00"`` is not ``"陈明"`` to the register, a right-to-left override (U+202E) shows
``"3401…"`` as something else, a zero-width space splits one identifier into two that look alike.
So every text field of a bank's request is checked by :func:`check_text` (the SDK models apply
it to all their text fields; the sandbox centre validates with the same models, and the agent
reports it per cell of the export):

- refused everywhere: C0/C1 control characters (NUL, ESC, DEL, U+0080–U+009F …), format
  characters (category Cf: bidi embeddings/overrides/isolates U+202A–U+202E, U+2066–U+2069,
  marks U+200E/U+200F/U+061C, zero-width U+200B–U+200D, U+2060, U+FEFF, soft hyphen U+00AD …),
  private-use characters (U+E000–U+F8FF and planes 15–16: not the same character on every
  system — GB 18030-2005 and -2022 map some of them differently) and lone surrogates;
- refused in one-line fields (names, identifiers, numbers, locations): line breaks (CR, LF,
  U+2028, U+2029, NEL) and tabs; multi-line fields (remarks, reasons, scopes) may hold them.

Errors are ``ValueError`` with the character's code point, its name and its position (1-based),
in Chinese for the branch staff who fix the export, e.g.
``第3个字符是不可见的控制字符 U+0000 (NUL)：姓名、证件号等字段不得含此类字符``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["MultiLineText", "OneLineText", "check_text", "find_invisible"]

_LINE_BREAKS = "\n\r\t\x0b\x0c\x85\u2028\u2029"
# fast path: a text with none of these is fine (Cc, Cf, Co, Cs, Zl, Zp are all in these ranges or found below)
_SUSPECT = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ue000-\uf8ff\ud800-\udfff"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001-\U000e007f\U000f0000-\U0010ffff]"
)
_NAMES = {
    "\x00": "NUL",
    "\t": "TAB 制表符",
    "\n": "LF 换行",
    "\r": "CR 回车",
    "\u200b": "ZERO WIDTH SPACE 零宽空格",
    "\u200c": "ZERO WIDTH NON-JOINER 零宽字符",
    "\u200d": "ZERO WIDTH JOINER 零宽字符",
    "\u2060": "WORD JOINER 零宽字符",
    "\ufeff": "BYTE ORDER MARK / ZERO WIDTH NO-BREAK SPACE 零宽字符",
    "\u202e": "RIGHT-TO-LEFT OVERRIDE 双向文字控制符",
    "\u202d": "LEFT-TO-RIGHT OVERRIDE 双向文字控制符",
}


def _describe(ch: str) -> str:
    cat = unicodedata.category(ch)
    name = _NAMES.get(ch) or unicodedata.name(ch, "")
    if not name:
        name = {"Co": "私用区字符 private use", "Cs": "代理项 surrogate", "Cc": "控制字符 control"}.get(cat, cat)
    if cat == "Co":
        kind = "私用区字符（各系统、GB 18030-2005 与 -2022 对其映射不同，不是确定的字）"
    elif cat in ("Zl", "Zp") or ch in _LINE_BREAKS:
        kind = "换行或制表符（单行字段不得含有）"
    elif cat == "Cf":
        kind = "不可见的格式字符（零宽或双向文字控制符）"
    else:
        kind = "不可见的控制字符"
    return f"U+{ord(ch):04X} ({name})，{kind}"


def find_invisible(value: str, *, one_line: bool = True) -> tuple[int, str] | None:
    """The first character the rule refuses: ``(index, character)``, or ``None`` when the text is clean."""
    for m in _SUSPECT.finditer(value):
        ch = m.group(0)
        if not one_line and ch in _LINE_BREAKS:
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp"):
            return m.start(), ch
    return None


def check_text(value: str, *, one_line: bool = True) -> str:
    """``value`` unchanged when it holds no character the rule refuses (see the module docstring).

    Raises:
        ValueError: the first refused character, its code point, name and 1-based position.
    """
    found = find_invisible(value, one_line=one_line)
    if found is None:
        return value
    index, ch = found
    return _refuse(index, ch)


def _refuse(index: int, ch: str) -> str:
    raise ValueError(
        f"第{index + 1}个字符是{_describe(ch)}：姓名、证件号、编号等字段不得含此类字符，请在源系统中删除后重新导出"
    )


def _one_line(value: str) -> str:
    return check_text(value, one_line=True)


def _multi_line(value: str) -> str:
    return check_text(value, one_line=False)


OneLineText = Annotated[str, AfterValidator(_one_line)]
"""A text field on one line: no control, format, private-use character or line break."""

MultiLineText = Annotated[str, AfterValidator(_multi_line)]
"""A text field that may span lines (remarks, reasons): no control, format or private-use character."""
