"""Writing and sealing OFD documents (GB/T 33190-2016) with lxml, and making the electronic seals
and signatures that seal them (GB/T 38540-2020 v4, GM/T 0031-2014 v1) with asn1crypto.

The package written (the reader, :mod:`sdk.ofd.reader`, documents every part and clause)::

    OFD.xml                              §7.3  DocBody: DocInfo (DocID, Title, CreationDate,
                                               Creator, CustomDatas), DocRoot, Signatures
    Doc_0/Document.xml                   §7.5  CommonData (MaxUnitID, PageArea, PublicRes,
                                               DocumentRes), Pages
    Doc_0/PublicRes.xml                  §7.9  Fonts (FontName, FamilyName; no FontFile: the
                                               fonts are named, not embedded)
    Doc_0/DocumentRes.xml                §7.9  MultiMedias (images, each a file under Res/)
    Doc_0/Res/*                                the images
    Doc_0/Pages/Page_N/Content.xml       §7.7  Content/Layer: TextObject (§11), PathObject (§9),
                                               ImageObject (§10)
    Doc_0/Signs/Signatures.xml           §18.1 MaxSignId, Signature (ID, Type="Seal", BaseLoc)
    Doc_0/Signs/Sign_N/Seal.esl          the electronic seal (SES_Seal / SESeal DER)
    Doc_0/Signs/Sign_N/Signature.xml     §18.2 SignedInfo: Provider, SignatureMethod (SM2-with-SM3
                                               OID), SignatureDateTime, References
                                               (CheckMethod = SM3 OID; one Reference per file
                                               with its SM3, base64), StampAnnot, Seal/BaseLoc;
                                               SignedValue
    Doc_0/Signs/Sign_N/SignedValue.dat   the electronic signature (SES_Signature DER) over SM3
                                               of Signature.xml

:func:`seal_ofd` protects every file of the package except ``Signatures.xml`` (which later
signatures extend) and the signature's own ``Signature.xml`` and ``SignedValue.dat``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import uuid
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lxml import etree

from sdk.gm import sm3
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.ofd import ses
from sdk.ofd.reader import OFD_NS

__all__ = [
    "OfdWriter",
    "PageBuilder",
    "make_seal",
    "make_signature",
    "seal_ofd",
    "zip_package",
]

_O = f"{{{OFD_NS}}}"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def _el(parent: Any, tag: str, text: str | None = None, **attrs: str) -> Any:
    node = etree.SubElement(parent, _O + tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        node.text = text
    return node


def _root(tag: str, **attrs: str) -> Any:
    return etree.Element(_O + tag, attrs, nsmap={"ofd": OFD_NS})


def _dump(root: Any) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _box(x: float, y: float, w: float, h: float) -> str:
    return " ".join(_num(v) for v in (x, y, w, h))


@dataclass
class PageBuilder:
    """The graphic units of one page, in drawing order (units: mm, origin top-left)."""

    writer: OfdWriter
    id: int
    units: list[Any] = field(default_factory=list)

    def text(
        self,
        x: float,
        y: float,
        text: str,
        *,
        size: float,
        font: int,
        advances: Sequence[float] = (),
        color: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        """A TextObject (§11) with one TextCode: baseline at (x, y), ``advances`` the per-glyph DeltaX."""
        width = sum(advances) + size if advances else size * max(1, len(text))
        self.units.append(("text", x, y, text, size, font, list(advances), color, width))

    def path(
        self,
        boundary: tuple[float, float, float, float],
        data: str,
        *,
        stroke: bool = True,
        fill: bool = False,
        line_width: float = 0.25,
        stroke_color: tuple[int, int, int] = (0, 0, 0),
        fill_color: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        """A PathObject (§9) with AbbreviatedData in the boundary's own coordinates (M, L, B, C…)."""
        self.units.append(("path", boundary, data, stroke, fill, line_width, stroke_color, fill_color))

    def image(self, boundary: tuple[float, float, float, float], resource: int) -> None:
        """An ImageObject (§10) showing MultiMedia ``resource`` over ``boundary``."""
        self.units.append(("image", boundary, resource))


class OfdWriter:
    """Builds one OFD document of A4 pages (or ``page_size`` mm), then :meth:`package` answers its files.

    Args:
        title, creator: DocInfo's Title and Creator.
        custom_data: DocInfo's CustomDatas (name → value), e.g. the licence's metadata.
        created: the CreationDate.
    """

    def __init__(
        self,
        *,
        title: str,
        creator: str,
        custom_data: dict[str, str] | None = None,
        created: _dt.date | None = None,
        page_size: tuple[float, float] = (210.0, 297.0),
        doc_id: str | None = None,
    ) -> None:
        self.title = title
        self.creator = creator
        self.custom_data = dict(custom_data or {})
        self.created = created or _dt.date.today()
        self.page_size = page_size
        self.doc_id = doc_id or uuid.uuid4().hex
        self._next_id = 0
        self.fonts: list[tuple[int, str, str]] = []
        self.media: list[tuple[int, str, bytes]] = []
        self.pages: list[PageBuilder] = []

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def font(self, name: str, family: str) -> int:
        """Declare a font (by name: viewers use the installed one) and answer its ID."""
        for fid, fname, ffamily in self.fonts:
            if (fname, ffamily) == (name, family):
                return fid
        fid = self._new_id()
        self.fonts.append((fid, name, family))
        return fid

    def image(self, data: bytes, fmt: Literal["PNG", "JPEG"] = "PNG") -> int:
        mid = self._new_id()
        self.media.append((mid, fmt, data))
        return mid

    def page(self) -> PageBuilder:
        builder = PageBuilder(self, self._new_id())
        self.pages.append(builder)
        return builder

    def package(self) -> dict[str, bytes]:
        """Every file of the package (path → bytes), unsigned; ``OFD.xml`` names the signatures file."""
        files: dict[str, bytes] = {}
        ofd = _root("OFD", Version="1.0", DocType="OFD")
        body = _el(ofd, "DocBody")
        info = _el(body, "DocInfo")
        _el(info, "DocID", self.doc_id)
        _el(info, "Title", self.title)
        _el(info, "CreationDate", self.created.isoformat())
        _el(info, "Creator", self.creator)
        _el(info, "CreatorVersion", "1.0")
        if self.custom_data:
            customs = _el(info, "CustomDatas")
            for name, value in self.custom_data.items():
                _el(customs, "CustomData", value, Name=name)
        _el(body, "DocRoot", "Doc_0/Document.xml")
        _el(body, "Signatures", "Doc_0/Signs/Signatures.xml")
        files["OFD.xml"] = _dump(ofd)

        public = _root("Res", BaseLoc="Res")
        fonts = _el(public, "Fonts")
        for fid, name, family in self.fonts:
            _el(fonts, "Font", ID=str(fid), FontName=name, FamilyName=family)
        files["Doc_0/PublicRes.xml"] = _dump(public)
        document_res = _root("Res", BaseLoc="Res")
        medias = _el(document_res, "MultiMedias")
        for mid, fmt, data in self.media:
            name = f"image_{mid}.{fmt.lower().replace('jpeg', 'jpg')}"
            item = _el(medias, "MultiMedia", ID=str(mid), Type="Image", Format=fmt)
            _el(item, "MediaFile", name)
            files[f"Doc_0/Res/{name}"] = data
        files["Doc_0/DocumentRes.xml"] = _dump(document_res)

        document = _root("Document")
        common = _el(document, "CommonData")
        max_id = _el(common, "MaxUnitID")
        area = _el(common, "PageArea")
        _el(area, "PhysicalBox", _box(0, 0, *self.page_size))
        _el(common, "PublicRes", "PublicRes.xml")
        _el(common, "DocumentRes", "DocumentRes.xml")
        pages = _el(document, "Pages")
        for index, page in enumerate(self.pages):
            loc = f"Pages/Page_{index}/Content.xml"
            _el(pages, "Page", ID=str(page.id), BaseLoc=loc)
            files[f"Doc_0/{loc}"] = self._content(page)
        max_id.text = str(self._next_id)
        files["Doc_0/Document.xml"] = _dump(document)
        signatures = _root("Signatures")
        _el(signatures, "MaxSignId", "0")
        files["Doc_0/Signs/Signatures.xml"] = _dump(signatures)
        return files

    def _content(self, page: PageBuilder) -> bytes:
        root = _root("Page")
        layer = _el(_el(root, "Content"), "Layer", ID=str(self._new_id()), Type="Body")
        for unit in page.units:
            kind = unit[0]
            if kind == "text":
                _, x, y, text, size, font, advances, color, width = unit
                top = y - size
                obj = _el(layer, "TextObject", ID=str(self._new_id()), Boundary=_box(x, top, width, size * 1.4),
                          Font=str(font), Size=_num(size))  # fmt: skip
                if color != (0, 0, 0):
                    _el(obj, "FillColor", Value=" ".join(str(c) for c in color))
                attrs = {"X": "0", "Y": _num(size)}
                if advances:
                    attrs["DeltaX"] = " ".join(_num(a) for a in advances)
                _el(obj, "TextCode", text, **attrs)
            elif kind == "path":
                _, boundary, data, stroke, fill, line_width, stroke_color, fill_color = unit
                obj = _el(layer, "PathObject", ID=str(self._new_id()), Boundary=_box(*boundary),
                          LineWidth=_num(line_width), Stroke="true" if stroke else "false",
                          Fill="true" if fill else "false")  # fmt: skip
                if stroke:
                    _el(obj, "StrokeColor", Value=" ".join(str(c) for c in stroke_color))
                if fill:
                    _el(obj, "FillColor", Value=" ".join(str(c) for c in fill_color))
                _el(obj, "AbbreviatedData", data)
            else:
                _, boundary, resource = unit
                _el(layer, "ImageObject", ID=str(self._new_id()), Boundary=_box(*boundary),
                    CTM=f"{_num(boundary[2])} 0 0 {_num(boundary[3])} 0 0", ResourceID=str(resource))  # fmt: skip
        return _dump(root)


def zip_package(files: dict[str, bytes]) -> bytes:
    """The files as an OFD ZIP (§7.2: deflated, ``OFD.xml`` first, fixed times so equal input gives equal bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files, key=lambda n: (n != "OFD.xml", n)):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return buf.getvalue()


# --- seals and signatures (GB/T 38540 / GM/T 0031) ----------------------------------------------


def _generalized(moment: _dt.datetime) -> _dt.datetime:
    return moment.astimezone(_dt.UTC).replace(microsecond=0)


def make_seal(
    *,
    es_id: str,
    name: str,
    picture: bytes,
    picture_size_mm: tuple[int, int],
    signer_certs: Iterable[bytes],
    valid_start: _dt.datetime,
    valid_end: _dt.datetime,
    maker_key: Sm2PrivateKey,
    maker_cert: bytes,
    version: Literal[1, 4] = 4,
    seal_type: int = 1,
    vendor_id: str = "RegBridge",
    created: _dt.datetime | None = None,
    picture_type: str = "png",
) -> bytes:
    """An electronic seal (DER): the seal info signed by its maker (制章者) with SM2.

    v4 (GB/T 38540 §6): ``SES_Seal``, certListType 1 (the certificates), GeneralizedTime dates, the
    maker signing SEQUENCE { eSealInfo, cert, signAlgID }. v1 (GM/T 0031): ``SESeal``, UTCTime
    dates, the maker signing the DER of ``esealInfo``.
    """
    created = _generalized(created or _dt.datetime.now(_dt.UTC))
    header = {"id": "ES", "version": version, "vid": vendor_id}
    pic = {"type": picture_type, "data": picture, "width": picture_size_mm[0], "height": picture_size_mm[1]}
    certs = list(signer_certs)
    if version == 4:
        prop = ses.PropertyInfoV4(
            {
                "type": seal_type,
                "name": name,
                "cert_list_type": 1,
                "cert_list": ses.CertInfoList(certs).untag(),
                "create_date": created,
                "valid_start": _generalized(valid_start),
                "valid_end": _generalized(valid_end),
            }
        )
        info = ses.SealInfoV4({"header": header, "es_id": es_id, "property": prop, "picture": pic})
        to_sign = ses.MakerSignedV4({"e_seal_info": info, "cert": maker_cert, "sign_alg_id": ses.SM2_SM3_OID})
        signature = maker_key.sign(to_sign.dump())
        seal = ses.SealV4(
            {"e_seal_info": info, "cert": maker_cert, "sign_alg_id": ses.SM2_SM3_OID, "signed_value": signature}
        )
        return bytes(seal.dump())
    prop1 = ses.PropertyInfoV1(
        {
            "type": seal_type,
            "name": name,
            "cert_list": certs,
            "create_date": created,
            "valid_start": _generalized(valid_start),
            "valid_end": _generalized(valid_end),
        }
    )
    info1 = ses.SealInfoV1({"header": header, "es_id": es_id, "property": prop1, "picture": pic})
    sign_info = {"cert": maker_cert, "signature_algorithm": ses.SM2_SM3_OID, "sign_data": maker_key.sign(info1.dump())}
    return bytes(ses.SealV1({"eseal_info": info1, "sign_info": sign_info}).dump())


def make_signature(
    *,
    seal: bytes,
    data_hash: bytes,
    signer_key: Sm2PrivateKey,
    signer_cert: bytes,
    signed_at: _dt.datetime,
    property_info: str,
) -> bytes:
    """An electronic signature (DER) of ``data_hash`` with ``seal``, by the signer's SM2 key.

    The version follows the seal's: v4 ``SES_Signature`` (GB/T 38540 §7) or v1 (GM/T 0031); the
    signature covers the DER of ``TBS_Sign``.
    """
    parsed = ses.parse_seal(seal)
    if parsed.version == 4:
        tbs = ses.TbsSignV4(
            {
                "version": 4,
                "eseal": ses.SealV4.load(seal),
                "time_info": _generalized(signed_at),
                "data_hash": data_hash,
                "property_info": property_info,
            }
        )
        value = signer_key.sign(tbs.dump())
        return bytes(
            ses.SignatureV4(
                {"to_sign": tbs, "cert": signer_cert, "signature_alg_id": ses.SM2_SM3_OID, "signature": value}
            ).dump()
        )
    tbs1 = ses.TbsSignV1(
        {
            "version": 1,
            "eseal": ses.SealV1.load(seal),
            "time_info": _generalized(signed_at).strftime("%y%m%d%H%M%SZ").encode(),
            "data_hash": data_hash,
            "property_info": property_info,
            "cert": signer_cert,
            "signature_algorithm": ses.SM2_SM3_OID,
        }
    )
    return bytes(ses.SignatureV1({"to_sign": tbs1, "signature": signer_key.sign(tbs1.dump())}).dump())


#: makes SignedValue.dat from the SM3 of Signature.xml (the signer's key stays with the caller)
SignFunction = Callable[[bytes], bytes]


def seal_ofd(
    files: dict[str, bytes],
    *,
    seal: bytes,
    sign: SignFunction,
    stamp_page: int,
    stamp_box: tuple[float, float, float, float],
    signed_at: _dt.datetime,
    provider: str = "RegBridge sandbox",
) -> dict[str, bytes]:
    """Add one seal signature (GB/T 33190 §18) to an unsealed or sealed package; answers the new files.

    Writes ``Sign_N/Seal.esl``, ``Sign_N/Signature.xml`` (References: the SM3 of every file but
    ``Signatures.xml`` and this signature's own two) and ``Sign_N/SignedValue.dat`` =
    ``sign(SM3(Signature.xml))``; ``Signatures.xml`` lists it.
    """
    out = dict(files)
    listing = etree.fromstring(out["Doc_0/Signs/Signatures.xml"])
    n = len(listing.findall(_O + "Signature"))
    base = f"Doc_0/Signs/Sign_{n}"
    out[f"{base}/Seal.esl"] = seal
    root = _root("Signature")
    info = _el(root, "SignedInfo")
    _el(info, "Provider", ProviderName=provider, Version="1.0", Company="RegBridge")
    _el(info, "SignatureMethod", ses.SM2_SM3_OID)
    _el(info, "SignatureDateTime", _generalized(signed_at).strftime("%Y%m%d%H%M%SZ"))
    refs = _el(info, "References", CheckMethod=ses.SM3_OID)
    for name in sorted(out):
        if name == "Doc_0/Signs/Signatures.xml":
            continue
        ref = _el(refs, "Reference", FileRef="/" + name)
        _el(ref, "CheckValue", base64.b64encode(sm3(out[name])).decode())
    _el(info, "StampAnnot", ID="1", PageRef=str(stamp_page), Boundary=_box(*stamp_box))
    seal_node = _el(info, "Seal")
    _el(seal_node, "BaseLoc", f"/{base}/Seal.esl")
    _el(root, "SignedValue", f"/{base}/SignedValue.dat")
    signature_xml = _dump(root)
    out[f"{base}/Signature.xml"] = signature_xml
    out[f"{base}/SignedValue.dat"] = sign(sm3(signature_xml))
    _el(listing, "Signature", ID=str(n + 1), Type="Seal", BaseLoc=f"/{base}/Signature.xml")
    max_node = listing.find(_O + "MaxSignId")
    if max_node is not None:
        max_node.text = str(n + 1)
    out["Doc_0/Signs/Signatures.xml"] = _dump(listing)
    return out
