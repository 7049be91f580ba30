"""Text of an export: byte-order marks, encodings tried in order, cells flagged or unwrapped, values as text."""

from __future__ import annotations

import codecs
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from connectors.readers.records import SourceRecord

# --- encodings --------------------------------------------------------------------------------

#: every byte-order mark in use, longest first (UTF-32 LE starts like UTF-16 LE)
BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (b"\x84\x31\x95\x33", "gb18030"),
    (b"\xdd\x73\x66\x73", "utf-ebcdic"),
    (codecs.BOM_UTF8, "utf-8"),
    (b"\x2b\x2f\x76\x38", "utf-7"),
    (b"\x2b\x2f\x76\x39", "utf-7"),
    (b"\x2b\x2f\x76\x2b", "utf-7"),
    (b"\x2b\x2f\x76\x2f", "utf-7"),
    (b"\xf7\x64\x4c", "utf-1"),
    (b"\x0e\xfe\xff", "scsu"),
    (b"\xfb\xee\x28", "bocu-1"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
]
# the codecs a declared encoding belongs with (a GB 18030 mark on a file declared GBK is GB 18030: a superset)
_FAMILY = {
    "utf_8": "utf-8",
    "utf_8_sig": "utf-8",
    "utf_16": "utf-16",
    "utf_16_le": "utf-16",
    "utf_16_be": "utf-16",
    "utf_32": "utf-32",
    "utf_32_le": "utf-32",
    "utf_32_be": "utf-32",
    "gb18030": "gb18030",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "utf_7": "utf-7",
}
_LABEL = {
    "utf-8": "UTF-8",
    "utf-16": "UTF-16",
    "utf-32": "UTF-32",
    "gb18030": "GB18030",
    "utf-7": "UTF-7",
    "utf-1": "UTF-1",
    "utf-ebcdic": "UTF-EBCDIC",
    "scsu": "SCSU",
    "bocu-1": "BOCU-1",
}


def _family(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name.replace("-", "_")
    except LookupError:
        return encoding.lower()
    return _FAMILY.get(name, name)


def detect_bom(data: bytes) -> tuple[str, int] | None:
    """``(codec, length)`` of the byte-order mark ``data`` starts with, or ``None``."""
    for mark, codec in BOMS:
        if data.startswith(mark):
            return codec, len(mark)
    return None


def evident_encoding(data: bytes) -> str | None:
    """The encoding a file evidently is in, from its bytes (BOM, NUL pattern, strict decoding), or ``None``."""
    bom = detect_bom(data)
    if bom:
        family = _family(bom[0])
        return _LABEL.get(family, family.upper())
    sample = data[:4096]
    if b"\x00" in sample:  # text in UTF-8 or GB 18030 holds no NUL; UTF-16 of any ASCII punctuation does
        for enc, label in (("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE")):
            try:
                text = sample[: len(sample) & ~1].decode(enc)
            except UnicodeDecodeError:
                continue
            shown = sum(1 for c in text if c.isprintable() or c in "\r\n\t")
            if shown >= 0.95 * len(text) and ("\n" in text or "," in text):
                return label
    for enc, label in (("utf-8", "UTF-8"), ("gb18030", "GB18030"), ("big5", "Big5")):
        try:
            data.decode(enc)
        except UnicodeDecodeError:
            continue
        return label
    return None


def _advice(evident: str | None, declared: list[str]) -> str:
    said = "、".join(declared)
    if evident is None:
        return f"文件不是声明的编码 {said}，也不像任何常见编码：请确认导出的编码"
    return (
        f"该文件显然是 {evident} 编码，而映射配置声明的是 {said}：请在配置 [source] encoding 中改为（或加入）"
        f'"{evident.lower()}"，或让贷款系统按 {said} 导出 (the file is evidently {evident}, not {said})'
    )


def _decode(data: bytes, encodings: list[str]) -> tuple[str, str]:
    """Decode with the declared encoding the file fits; a byte-order mark is honoured and removed.

    Returns ``(text, encoding used)``, e.g. ``("…", "gb18030 (BOM)")``.

    Raises:
        ValueError: the file's mark contradicts every declared encoding, or no declared encoding
            decodes it; the message names the encoding the file evidently is in.
    """
    bom = detect_bom(data)
    if bom is not None:
        codec, size = bom
        family = codec if codec in ("utf-ebcdic", "utf-1", "scsu", "bocu-1") else _family(codec)
        if not any(_family(e) == family for e in encodings):
            raise ValueError(
                f"文件以 {_LABEL.get(family, family)} 的字节顺序标记 (BOM) 开头。"
                + _advice(_LABEL.get(family, family), encodings)
            )
        try:
            text = data[size:].decode(codec)
        except LookupError:
            raise ValueError(
                f"文件是 {_LABEL.get(codec, codec)} 编码，RegBridge 不能读取：请按 UTF-8 或 GB18030 导出"
            ) from None
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"文件带 {_LABEL.get(family, family)} 的 BOM，但第 {exc.start + size} 字节起不是有效的 {codec} "
                f"(cannot decode as {codec}: byte offset {exc.start + size})"
            ) from None
        return text.removeprefix("\ufeff"), f"{codec} (BOM)"
    problems = []
    for enc in encodings:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            problems.append(f"{enc}: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})")
            continue
        except LookupError:
            problems.append(f"{enc}: unknown encoding")
            continue
        return text.removeprefix("\ufeff"), enc
    raise ValueError(_advice(evident_encoding(data), encodings) + "; cannot decode as " + "; ".join(problems))


def _encodings(source: dict[str, Any], default: list[str]) -> list[str]:
    enc = source.get("encoding") or default
    return [enc] if isinstance(enc, str) else list(enc)


# written under one and read under the other shows another character
_GB18030_CHANGED = frozenset(
    [7743, *range(65040, 65050), 40884, 40885, *range(40890, 40896), 131207, 131209, 131276, 136663, 141711, 147966]
)
_FLAGGED = re.compile(
    "[\ue000-\uf8ff\U000f0000-\U0010ffff" + "".join(re.escape(chr(c)) for c in sorted(_GB18030_CHANGED)) + "]"
)


def _flag(record: SourceRecord) -> None:
    """Report the cells holding characters that are not one character on every system."""
    for column, value in record.values.items():
        for m in _FLAGGED.finditer(value):
            code = ord(m.group(0))
            if code in _GB18030_CHANGED:
                why = (
                    f"第{m.start() + 1}个字符 U+{code:04X} 在 GB 18030-2005 与 GB 18030-2022 中编码不同，"
                    "不同系统读出的可能不是同一个字：请核对后改用确定的写法"
                )
            else:
                why = (
                    f"第{m.start() + 1}个字符 U+{code:04X} 是私用区字符（造字），不是通用的字："
                    "请改用该字的标准 Unicode/GB 18030-2022 编码"
                )
            record.problems.append((column, why))
            break


_KEEP_AS_TEXT = re.compile(r'="(.*)"|\'([0-9A-Za-z][0-9A-Za-z()（）\-/]*)', re.DOTALL)


def unwrap_text(value: str) -> str:
    """The usual "keep as text" spellings of an identifier unwrapped: ``="0123"`` and ``'0123`` → ``0123``."""
    if value[:1] not in ("=", "'"):
        return value
    m = _KEEP_AS_TEXT.fullmatch(value.strip())
    if m is None:
        return value
    return m.group(1) if m.group(1) is not None else m.group(2)


def _clean_row(values: dict[Any, Any]) -> dict[str, str]:
    out = {}
    for k, v in values.items():
        if k is None:
            continue
        text = "" if v is None else _text(v)
        out[str(k).strip()] = unwrap_text(text)
    return out


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # the shortest text that round-trips; an exact Decimal of a float would show binary noise
        d = Decimal(repr(value))
        return format(d.normalize(), "f") if d == d.to_integral_value() else repr(value)
    return str(value)
