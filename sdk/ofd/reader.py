"""Reading an OFD document (GB/T 33190-2016, 电子文件存储与交换格式 版式文档) with lxml.

An OFD is a ZIP package (§7.2) whose entry is ``OFD.xml`` (§7.3: ``DocBody`` → ``DocInfo``,
``DocRoot``, ``Signatures``). The document root ``Doc_N/Document.xml`` (§7.5) names the page area
(``CommonData/PageArea``), the resource files (``PublicRes``, ``DocumentRes``, §7.9) and the pages
(``Pages/Page`` with ``ID`` and ``BaseLoc``, §7.6); each page's ``Content`` holds layers of
graphic units (§8): ``TextObject`` with ``TextCode`` (§11), ``PathObject`` with
``AbbreviatedData`` (§9), ``ImageObject`` pointing at a ``MultiMedia`` resource (§10). Fonts are
``Res/Fonts/Font`` (§11.1). Signatures (§18) are listed in ``Signatures.xml``; each
``Signature.xml`` has ``SignedInfo`` (``Provider``, ``SignatureMethod``, ``SignatureDateTime``,
``References`` with ``CheckMethod`` and one ``Reference FileRef`` + base64 ``CheckValue`` per
protected file, ``StampAnnot`` appearances, the ``Seal``) and ``SignedValue`` (the SES_Signature
file, :mod:`sdk.ofd.ses`).

Locations (ST_Loc, §5.2) are relative to the file that names them, or absolute from the package
root when they begin with ``/``; this module answers every path absolute without the leading slash
(``Doc_0/Document.xml``). Lengths are millimetres, the page origin top-left, y downwards (§5.2).

The package is read defensively: at most :data:`MAX_ENTRIES` entries and :data:`MAX_TOTAL_BYTES`
uncompressed, at most :data:`MAX_PAGES` pages (each page file parsed once however often it is listed) and
:data:`MAX_DELTAS` glyph advances per ``TextCode`` (the ``g n v`` repeat of §11.3 expanded), no encrypted
entries, no duplicate or escaping names (``..``, absolute, backslashes),
XML without DTDs, entities or network access. Anything else raises :class:`OfdError` naming the part.
Needs lxml (the ``regbridge[certificates]`` extra).
"""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
import zipfile
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "MAX_DELTAS",
    "MAX_ENTRIES",
    "MAX_PAGES",
    "MAX_TOTAL_BYTES",
    "OFD_NS",
    "OfdDocument",
    "OfdError",
    "OfdPage",
    "OfdSignature",
    "Reference",
    "StampAnnot",
    "TextRun",
    "read_ofd",
]

#: the OFD namespace (GB/T 33190-2016 §6)
OFD_NS = "http://www.ofdspec.org/2016"
_NS = {"ofd": OFD_NS}
#: the most entries and uncompressed bytes a package may hold (a certificate has ~15 and ~100 KB)
MAX_ENTRIES = 2000
MAX_TOTAL_BYTES = 64 * 1024 * 1024
#: the most pages a document may list (a certificate or notice has one or two): ten thousand pages naming one
#: small page file took minutes and 900 MB to read
MAX_PAGES = 200
#: the most glyph advances one ``TextCode``'s DeltaX may expand to: ``g 50000000 1`` took 18 s and 800 MB
MAX_DELTAS = 10_000


class OfdError(ValueError):
    """The bytes are not an OFD package this reader accepts; the message names the part."""


@dataclass(frozen=True)
class TextRun:
    """One ``TextCode`` of a ``TextObject``: its text, where (mm, top-left origin) and in which font."""

    x: float
    y: float
    size: float
    font_id: str
    text: str
    fill: tuple[int, int, int] = (0, 0, 0)
    delta_x: tuple[float, ...] = ()


@dataclass(frozen=True)
class PathUnit:
    """A ``PathObject``: its boundary (x, y, w, h) and abbreviated path data (§9.3)."""

    boundary: tuple[float, float, float, float]
    data: str
    stroke: bool
    fill: bool
    line_width: float
    stroke_color: tuple[int, int, int]
    fill_color: tuple[int, int, int]


@dataclass(frozen=True)
class ImageUnit:
    """An ``ImageObject``: its boundary and the ``MultiMedia`` resource it shows."""

    boundary: tuple[float, float, float, float]
    resource_id: str


@dataclass(frozen=True)
class OfdPage:
    id: str
    path: str
    texts: tuple[TextRun, ...]
    paths: tuple[PathUnit, ...]
    images: tuple[ImageUnit, ...]

    @property
    def text(self) -> str:
        """The page's text in document order, runs joined without separators."""
        return "".join(t.text for t in self.texts)


@dataclass(frozen=True)
class Reference:
    """A ``Reference``: the protected file (absolute, no leading slash) and its ``CheckValue``."""

    file: str
    check_value: bytes


@dataclass(frozen=True)
class StampAnnot:
    """Where a seal's appearance stands: the page (its ``ID``) and the boundary (mm)."""

    id: str
    page_ref: str
    boundary: tuple[float, float, float, float]


@dataclass(frozen=True)
class OfdSignature:
    """One signature of ``Signatures.xml`` and its ``Signature.xml`` (GB/T 33190 §18)."""

    id: str
    type: str
    path: str
    provider: str
    signature_method: str
    signature_date_time: str
    check_method: str
    references: tuple[Reference, ...]
    stamp_annots: tuple[StampAnnot, ...]
    seal_path: str | None
    signed_value_path: str


@dataclass(frozen=True)
class OfdDocument:
    """A read OFD package: every file, the document's parts and its signatures."""

    files: dict[str, bytes]
    doc_root: str
    doc_id: str
    title: str
    custom_data: dict[str, str]
    page_area: tuple[float, float, float, float]
    pages: tuple[OfdPage, ...]
    #: Font ID → (FontName, FamilyName, FontFile path or None)
    fonts: dict[str, tuple[str, str, str | None]]
    #: MultiMedia ID → (Type, Format, MediaFile path)
    media: dict[str, tuple[str, str, str]]
    signatures_path: str | None
    signatures: tuple[OfdSignature, ...]
    #: the files the document structure names (OFD.xml, Document.xml, resources, pages, fonts, media)
    structure_files: frozenset[str] = field(default_factory=frozenset)

    @property
    def text(self) -> str:
        """Every page's text, pages joined by a newline."""
        return "\n".join(p.text for p in self.pages)


# --- the package --------------------------------------------------------------------------------


def _unzip(data: bytes) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as e:
        raise OfdError(f"not a ZIP package (GB/T 33190 §7.2): {e}") from None
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise OfdError(f"the package has {len(infos)} entries, more than {MAX_ENTRIES}")
    if sum(i.file_size for i in infos) > MAX_TOTAL_BYTES:
        raise OfdError(f"the package unpacks to more than {MAX_TOTAL_BYTES} bytes")
    files: dict[str, bytes] = {}
    for info in infos:
        name = info.filename
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise OfdError(f"entry {name!r} is encrypted")
        if "\\" in name or name.startswith("/") or ".." in name.split("/") or not name:
            raise OfdError(f"entry {name!r} is not a plain relative path")
        if name in files:
            raise OfdError(f"entry {name!r} appears twice")
        try:
            content = archive.read(info)
        except Exception as e:  # bad CRC, unsupported compression…
            raise OfdError(f"entry {name!r} cannot be read: {type(e).__name__}") from None
        if len(content) != info.file_size:
            raise OfdError(f"entry {name!r} is not the size its header declares")
        files[name] = content
    return files


def _parser() -> Any:
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _xml(files: dict[str, bytes], path: str) -> Any:
    from lxml import etree

    if path not in files:
        raise OfdError(f"{path} is named but not in the package")
    try:
        root = etree.fromstring(files[path], _parser())
    except etree.XMLSyntaxError as e:
        raise OfdError(f"{path} is not well-formed XML: {e}") from None
    if root.getroottree().docinfo.doctype:
        raise OfdError(f"{path} carries a DTD (not allowed)")
    return root


def resolve(base: str, loc: str) -> str:
    """An ST_Loc named in file ``base``, absolute without the leading slash (§5.2).

    Raises:
        OfdError: a location that leaves the package.
    """
    loc = loc.strip().replace("\\", "/")
    joined = loc.lstrip("/") if loc.startswith("/") else posixpath.join(posixpath.dirname(base), loc)
    normal = posixpath.normpath(joined) if joined else ""
    if not normal or normal.startswith("..") or normal == ".":
        raise OfdError(f"{base} names a location outside the package: {loc!r}")
    return normal


def _text(node: Any, xpath: str, default: str = "") -> str:
    found = node.find(xpath, _NS)
    return (found.text or "").strip() if found is not None else default


def _box(value: str | None, where: str) -> tuple[float, float, float, float]:
    try:
        parts = [float(v) for v in (value or "").split()]
    except ValueError:
        raise OfdError(f"{where}: a box is four numbers, not {value!r}") from None
    if len(parts) != 4:
        raise OfdError(f"{where}: a box is four numbers, not {value!r}")
    return parts[0], parts[1], parts[2], parts[3]


def _color(node: Any, tag: str) -> tuple[int, int, int]:
    found = node.find(f"ofd:{tag}", _NS)
    if found is None or not found.get("Value"):
        return (0, 0, 0)
    try:
        r, g, b = (int(v) for v in found.get("Value").split()[:3])
    except ValueError:
        return (0, 0, 0)
    return r, g, b


def _floats(value: str | None) -> tuple[float, ...]:
    out: list[float] = []
    tokens = (value or "").split()
    i = 0
    while i < len(tokens):  # §11.3: "g n v" repeats v n times
        if tokens[i] == "g" and i + 2 < len(tokens):
            repeat = int(tokens[i + 1])
            if not 0 <= repeat <= MAX_DELTAS - len(out):
                raise OfdError(f"a DeltaX repeats a value {repeat} times (at most {MAX_DELTAS} advances per TextCode)")
            out.extend([float(tokens[i + 2])] * repeat)
            i += 3
        else:
            out.append(float(tokens[i]))
            i += 1
    return tuple(out)


# --- the parts ----------------------------------------------------------------------------------


def _resources(files: dict[str, bytes], path: str, fonts: dict[str, Any], media: dict[str, Any]) -> set[str]:
    """Fonts and multimedia of one Res file (§7.9); answers the files it names."""
    root = _xml(files, path)
    base_loc = root.get("BaseLoc", "")
    base = resolve(path, base_loc) + "/_" if base_loc else path
    named = {path}
    for font in root.iterfind("ofd:Fonts/ofd:Font", _NS):
        font_file = _text(font, "ofd:FontFile") or None
        file_path = resolve(base, font_file) if font_file else None
        if file_path:
            named.add(file_path)
        fonts[font.get("ID", "")] = (font.get("FontName", ""), font.get("FamilyName", ""), file_path)
    for item in root.iterfind("ofd:MultiMedias/ofd:MultiMedia", _NS):
        media_file = resolve(base, _text(item, "ofd:MediaFile"))
        named.add(media_file)
        media[item.get("ID", "")] = (item.get("Type", ""), item.get("Format", ""), media_file)
    return named


def _page(files: dict[str, bytes], page_id: str, path: str) -> OfdPage:
    root = _xml(files, path)
    texts: list[TextRun] = []
    paths: list[PathUnit] = []
    images: list[ImageUnit] = []
    for layer in root.iterfind("ofd:Content/ofd:Layer", _NS):
        for unit in layer:
            tag = unit.tag.split("}")[-1] if isinstance(unit.tag, str) else ""
            where = f"{path} {tag} {unit.get('ID')}"
            if tag == "TextObject":
                bx, by, _, _ = _box(unit.get("Boundary"), where)
                fill = _color(unit, "FillColor")
                for code in unit.iterfind("ofd:TextCode", _NS):
                    try:
                        x, y = float(code.get("X", "0")), float(code.get("Y", "0"))
                        size = float(unit.get("Size", "0"))
                        delta = _floats(code.get("DeltaX"))
                    except OfdError as e:
                        raise OfdError(f"{where}: {e}") from None
                    except ValueError:
                        raise OfdError(f"{where}: TextCode position is not numeric") from None
                    texts.append(TextRun(bx + x, by + y, size, unit.get("Font", ""), code.text or "", fill, delta))
            elif tag == "PathObject":
                try:
                    line_width = float(unit.get("LineWidth", "0.353"))
                except ValueError:
                    raise OfdError(f"{where}: LineWidth is not numeric") from None
                paths.append(
                    PathUnit(
                        _box(unit.get("Boundary"), where),
                        _text(unit, "ofd:AbbreviatedData"),
                        unit.get("Stroke", "true") != "false",
                        unit.get("Fill", "false") == "true",
                        line_width,
                        _color(unit, "StrokeColor"),
                        _color(unit, "FillColor"),
                    )
                )
            elif tag == "ImageObject":
                images.append(ImageUnit(_box(unit.get("Boundary"), where), unit.get("ResourceID", "")))
    return OfdPage(page_id, path, tuple(texts), tuple(paths), tuple(images))


def _signature(files: dict[str, bytes], sig_id: str, sig_type: str, path: str) -> OfdSignature:
    root = _xml(files, path)
    info = root.find("ofd:SignedInfo", _NS)
    if info is None:
        raise OfdError(f"{path} has no SignedInfo")
    refs_node = info.find("ofd:References", _NS)
    references: list[Reference] = []
    if refs_node is not None:
        for ref in refs_node.iterfind("ofd:Reference", _NS):
            try:
                value = base64.b64decode(_text(ref, "ofd:CheckValue"), validate=True)
            except (binascii.Error, ValueError):
                raise OfdError(f"{path}: the CheckValue of {ref.get('FileRef')!r} is not base64") from None
            references.append(Reference(resolve(path, ref.get("FileRef", "")), value))
    annots = tuple(
        StampAnnot(a.get("ID", ""), a.get("PageRef", ""), _box(a.get("Boundary"), f"{path} StampAnnot"))
        for a in info.iterfind("ofd:StampAnnot", _NS)
    )
    seal_loc = _text(info, "ofd:Seal/ofd:BaseLoc")
    signed_value = _text(root, "ofd:SignedValue")
    if not signed_value:
        raise OfdError(f"{path} names no SignedValue")
    provider = info.find("ofd:Provider", _NS)
    return OfdSignature(
        id=sig_id,
        type=sig_type,
        path=path,
        provider=provider.get("ProviderName", "") if provider is not None else "",
        signature_method=_text(info, "ofd:SignatureMethod"),
        signature_date_time=_text(info, "ofd:SignatureDateTime"),
        check_method=refs_node.get("CheckMethod", "") if refs_node is not None else "",
        references=tuple(references),
        stamp_annots=annots,
        seal_path=resolve(path, seal_loc) if seal_loc else None,
        signed_value_path=resolve(path, signed_value),
    )


def read_ofd(data: bytes) -> OfdDocument:
    """Read an OFD package: its first document's pages, resources and signatures.

    Raises:
        OfdError: not a ZIP, a part missing or malformed, or a limit exceeded (the message says which).
    """
    files = _unzip(bytes(data))
    entry = _xml(files, "OFD.xml")
    if entry.tag != f"{{{OFD_NS}}}OFD":
        raise OfdError("OFD.xml's root is not ofd:OFD (GB/T 33190 §7.3)")
    body = entry.find("ofd:DocBody", _NS)
    if body is None:
        raise OfdError("OFD.xml has no DocBody")
    doc_root = resolve("OFD.xml", _text(body, "ofd:DocRoot"))
    info = body.find("ofd:DocInfo", _NS)
    custom: dict[str, str] = {}
    if info is not None:
        for item in info.iterfind("ofd:CustomDatas/ofd:CustomData", _NS):
            custom[item.get("Name", "")] = (item.text or "").strip()
    signatures_loc = _text(body, "ofd:Signatures")
    signatures_path = resolve("OFD.xml", signatures_loc) if signatures_loc else None

    document = _xml(files, doc_root)
    common = document.find("ofd:CommonData", _NS)
    if common is None:
        raise OfdError(f"{doc_root} has no CommonData")
    page_area = _box(_text(common, "ofd:PageArea/ofd:PhysicalBox") or None, f"{doc_root} PhysicalBox")
    fonts: dict[str, tuple[str, str, str | None]] = {}
    media: dict[str, tuple[str, str, str]] = {}
    structure = {"OFD.xml", doc_root}
    for tag in ("PublicRes", "DocumentRes"):
        for node in common.iterfind(f"ofd:{tag}", _NS):
            structure |= _resources(files, resolve(doc_root, node.text or ""), fonts, media)
    listed = document.findall("ofd:Pages/ofd:Page", _NS)
    if len(listed) > MAX_PAGES:
        raise OfdError(f"{doc_root} lists {len(listed)} pages, more than {MAX_PAGES}")
    pages = []
    parsed: dict[str, OfdPage] = {}  # each page file read once, however many pages name it
    for node in listed:
        path = resolve(doc_root, node.get("BaseLoc", ""))
        structure.add(path)
        if path not in parsed:
            parsed[path] = _page(files, node.get("ID", ""), path)
        page = parsed[path]
        pages.append(page if page.id == node.get("ID", "") else replace(page, id=node.get("ID", "")))
    if not pages:
        raise OfdError(f"{doc_root} lists no pages")
    signatures: list[OfdSignature] = []
    if signatures_path is not None:
        listing = _xml(files, signatures_path)
        for node in listing.iterfind("ofd:Signature", _NS):
            path = resolve(signatures_path, node.get("BaseLoc", ""))
            signatures.append(_signature(files, node.get("ID", ""), node.get("Type", "Seal"), path))
    return OfdDocument(
        files=files,
        doc_root=doc_root,
        doc_id=_text(info, "ofd:DocID") if info is not None else "",
        title=_text(info, "ofd:Title") if info is not None else "",
        custom_data=custom,
        page_area=page_area,
        pages=tuple(pages),
        fonts=fonts,
        media=media,
        signatures_path=signatures_path,
        signatures=tuple(signatures),
        structure_files=frozenset(structure),
    )
