"""Memory bounds of every reader: size caps, the workbook decompression-bomb guard, XML without DOCTYPE/entities."""

from __future__ import annotations

import io
import zipfile
from typing import Any
from xml.parsers import expat

MAX_FIELD_CHARS = 10_000
#: the largest export read at all (bytes): far beyond any branch's daily export, and within the memory budget
MAX_EXPORT_BYTES = 64 * 1024 * 1024
#: the most a workbook's parts may unpack to, all together (bytes); a decompression bomb is refused before
MAX_UNPACKED_BYTES = 96 * 1024 * 1024
#: a part that packs better than this is not a spreadsheet but a bomb (real sheets pack 5–20×)
MAX_PACK_RATIO = 200


# --- XML safety (workbook parts and XML exports) ------------------------------------------------


class _Refused(Exception):
    pass


def _refuse_dtd(*_: Any) -> None:
    raise _Refused


def _check_xml_stream(stream: Any, what: str) -> str | None:
    """Stream ``stream`` through expat refusing any DOCTYPE or entity declaration (in any encoding:
    expat reads the BOM and the XML declaration); the reason, or ``None`` when it is plain XML."""
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    try:
        while chunk := stream.read(1 << 16):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _Refused:
        return (
            f"{what} 含 DOCTYPE 或实体声明（可能是实体炸弹），拒绝读取 "
            "(XML with a DOCTYPE or entity declarations is refused)"
        )
    except (expat.ExpatError, ValueError) as exc:
        return f"{what} 不是格式正确的 XML (not well-formed XML): {exc}"
    return None


def _workbook_guard(data: bytes) -> str | None:
    """Refuse a workbook whose parts would unpack beyond the memory budget, or hold a DTD, before openpyxl."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        return f"不是可读的 XLSX 工作簿 (not a readable XLSX workbook): {exc}"
    with archive:
        infos = archive.infolist()
        total = sum(i.file_size for i in infos)
        if total > MAX_UNPACKED_BYTES:
            return (
                f"工作簿解压后有 {total:,} 字节，超过上限 {MAX_UNPACKED_BYTES:,}（可能是压缩炸弹），拒绝读取 "
                "(a decompression bomb, or an export to split)"
            )
        for info in infos:
            if info.file_size > 1 << 20 and info.file_size > MAX_PACK_RATIO * max(info.compress_size, 1):
                return (
                    f"工作簿部件 {info.filename} 压缩比 {info.file_size // max(info.compress_size, 1)}:1，"
                    "不是正常的表格（压缩炸弹），拒绝读取 (a decompression bomb)"
                )
        for info in infos:
            if info.filename.endswith((".xml", ".rels", ".vml")):
                try:
                    with archive.open(info) as part:
                        problem = _check_xml_stream(part, f"工作簿部件 {info.filename}")
                except (
                    zipfile.BadZipFile,
                    OSError,
                    EOFError,
                    NotImplementedError,
                ) as exc:  # zlib errors are OSError-like
                    return f"不是可读的 XLSX 工作簿 (not a readable XLSX workbook): {type(exc).__name__}: {exc}"
                except Exception as exc:  # zlib.error and friends from a damaged archive
                    return f"不是可读的 XLSX 工作簿 (not a readable XLSX workbook): {type(exc).__name__}: {exc}"
                if problem:
                    return problem
    return None
