"""Electronic seals and seal signatures (电子印章 / 电子签章): the SES structures of GB/T 38540-2020
(version 4) and GM/T 0031-2014 (version 1, which older systems still issue), as asn1crypto types,
with a reader that answers one shape for both and the bytes each signature covers.

GB/T 38540-2020 §6 (电子印章数据格式, v4)::

    SES_Seal ::= SEQUENCE { eSealInfo SES_SealInfo, cert OCTET STRING (制章者证书),
                            signAlgID OBJECT IDENTIFIER, signedValue BIT STRING }
    SES_SealInfo ::= SEQUENCE { header SES_Header, esID IA5String, property SES_ESPropertyInfo,
                                picture SES_ESPictrueInfo, extDatas ExtensionDatas OPTIONAL }
    SES_Header ::= SEQUENCE { ID IA5String ("ES"), version INTEGER (4), Vid IA5String }
    SES_ESPropertyInfo ::= SEQUENCE { type INTEGER, name UTF8String, certListType INTEGER,
        certList SES_CertList, createDate GeneralizedTime, validStart GeneralizedTime,
        validEnd GeneralizedTime }
    SES_CertList ::= CHOICE { certs SEQUENCE OF OCTET STRING,            -- certListType 1
                              certDigestList SEQUENCE OF CertDigestObj }  -- certListType 2
    CertDigestObj ::= SEQUENCE { type PrintableString, value OCTET STRING }
    SES_ESPictrueInfo ::= SEQUENCE { type IA5String, data OCTET STRING, width INTEGER, height INTEGER }

The maker's signature (``signedValue``) covers the DER of ``SEQUENCE { eSealInfo, cert, signAlgID }``.

GB/T 38540-2020 §7 (电子签章数据格式, v4)::

    SES_Signature ::= SEQUENCE { toSign TBS_Sign, cert OCTET STRING (签章者证书),
        signatureAlgID OBJECT IDENTIFIER, signature BIT STRING, timeStamp [0] BIT STRING OPTIONAL }
    TBS_Sign ::= SEQUENCE { version INTEGER (4), eseal SES_Seal, timeInfo GeneralizedTime,
        dataHash BIT STRING, propertyInfo IA5String, extDatas ExtensionDatas OPTIONAL }

The signer's signature covers the DER of ``TBS_Sign``; for an OFD (GB/T 33190 §18) ``dataHash`` is
the SM3 digest of the signature's ``Signature.xml``.

GM/T 0031-2014 (v1) differs: ``SESeal ::= SEQUENCE { esealInfo SES_SealInfo, signInfo SES_SignInfo }``
with ``SES_SignInfo ::= SEQUENCE { cert OCTET STRING, signatureAlgorithm OID, signData BIT STRING }``
(the maker signs the DER of ``esealInfo``); the property info has no ``certListType`` (its
``certList`` is ``SEQUENCE OF OCTET STRING``) and UTCTime dates; ``TBS_Sign ::= SEQUENCE { version
INTEGER, eseal SESeal, timeInfo BIT STRING, dataHash BIT STRING, propertyInfo IA5String, cert OCTET
STRING, signatureAlgorithm OID }`` and ``SES_Signature ::= SEQUENCE { toSign TBS_Sign, signature
BIT STRING }`` (the signer's certificate sits inside ``TBS_Sign``).

Signatures are SM2 with SM3 (OID ``1.2.156.10197.1.501``, GM/T 0006), DER ``SEQUENCE { r, s }`` in
the BIT STRING, computed with the signer's user id (GM/T 0009 §10, default ``1234567812345678``).
Needs asn1crypto (the ``regbridge[gm]`` or ``[certificates]`` extra).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Literal

from asn1crypto import core

__all__ = [
    "SM2_SM3_OID",
    "SM3_OID",
    "SealParts",
    "SesError",
    "SignatureParts",
    "parse_seal",
    "parse_signature",
]

#: SM2 signature with SM3 (GM/T 0006)
SM2_SM3_OID = "1.2.156.10197.1.501"
#: SM3 digest (GM/T 0006)
SM3_OID = "1.2.156.10197.1.401"


class SesError(ValueError):
    """The bytes are not a GB/T 38540 (v4) or GM/T 0031 (v1) structure."""


# --- shared ------------------------------------------------------------------------------------


class ExtData(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012 - asn1crypto's declaration
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):  # type: ignore[misc]
    _child_spec = ExtData


class SesHeader(core.Sequence):  # type: ignore[misc]
    _fields = [("id", core.IA5String), ("version", core.Integer), ("vid", core.IA5String)]  # noqa: RUF012


class PictureInfo(core.Sequence):  # type: ignore[misc]
    """SES_ESPictrueInfo (the standard's spelling): the seal's picture."""

    _fields = [  # noqa: RUF012
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class CertInfoList(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.OctetString


class CertDigestObj(core.Sequence):  # type: ignore[misc]
    _fields = [("type", core.PrintableString), ("value", core.OctetString)]  # noqa: RUF012


class CertDigestList(core.SequenceOf):  # type: ignore[misc]
    _child_spec = CertDigestObj


# --- v4 (GB/T 38540-2020) ----------------------------------------------------------------------


class PropertyInfoV4(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        ("cert_list", core.Any),  # SES_CertList: the CHOICE is told by cert_list_type (both are SEQUENCE OF)
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]


class SealInfoV4(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("header", SesHeader),
        ("es_id", core.IA5String),
        ("property", PropertyInfoV4),
        ("picture", PictureInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SealV4(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("e_seal_info", SealInfoV4),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
    ]


class MakerSignedV4(core.Sequence):  # type: ignore[misc]
    """What the seal maker signs in v4: SEQUENCE { eSealInfo, cert, signAlgID }."""

    _fields = [  # noqa: RUF012
        ("e_seal_info", SealInfoV4),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
    ]


class TbsSignV4(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("eseal", SealV4),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SignatureV4(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("to_sign", TbsSignV4),
        ("cert", core.OctetString),
        ("signature_alg_id", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("time_stamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


# --- v1 (GM/T 0031-2014) -----------------------------------------------------------------------


class PropertyInfoV1(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list", CertInfoList),
        ("create_date", core.UTCTime),
        ("valid_start", core.UTCTime),
        ("valid_end", core.UTCTime),
    ]


class SealInfoV1(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("header", SesHeader),
        ("es_id", core.IA5String),
        ("property", PropertyInfoV1),
        ("picture", PictureInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SignInfoV1(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("cert", core.OctetString),
        ("signature_algorithm", core.ObjectIdentifier),
        ("sign_data", core.OctetBitString),
    ]


class SealV1(core.Sequence):  # type: ignore[misc]
    _fields = [("eseal_info", SealInfoV1), ("sign_info", SignInfoV1)]  # noqa: RUF012


class TbsSignV1(core.Sequence):  # type: ignore[misc]
    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("eseal", SealV1),
        ("time_info", core.OctetBitString),  # the standard allows a time stamp or a UTCTime's text here
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
        ("cert", core.OctetString),
        ("signature_algorithm", core.ObjectIdentifier),
    ]


class SignatureV1(core.Sequence):  # type: ignore[misc]
    _fields = [("to_sign", TbsSignV1), ("signature", core.OctetBitString)]  # noqa: RUF012


# --- one reading for both ----------------------------------------------------------------------


@dataclass(frozen=True)
class SealParts:
    """An electronic seal as read (either version); ``maker_signed`` is what the maker's signature covers."""

    version: Literal[1, 4]
    header_id: str
    header_version: int
    vendor_id: str
    es_id: str
    seal_type: int
    name: str
    #: the certificates the seal lets sign (DER); for a v4 digest list, ``cert_digests`` instead
    certs: tuple[bytes, ...]
    #: (algorithm name, digest) pairs of a v4 ``certDigestList``
    cert_digests: tuple[tuple[str, bytes], ...]
    created: _dt.datetime
    valid_start: _dt.datetime
    valid_end: _dt.datetime
    picture_type: str
    picture: bytes
    picture_width: int
    picture_height: int
    seal_info_der: bytes
    maker_cert: bytes
    maker_algorithm: str
    maker_signature: bytes
    maker_signed: bytes
    der: bytes


@dataclass(frozen=True)
class SignatureParts:
    """An electronic signature (签章) as read: the seal it used, when, over what, by whom."""

    version: Literal[1, 4]
    seal: SealParts
    signed_at: _dt.datetime | None
    data_hash: bytes
    property_info: str
    signer_cert: bytes
    algorithm: str
    signature: bytes
    #: the DER of TBS_Sign, what ``signature`` covers
    to_sign: bytes


def _aware(value: Any) -> _dt.datetime:
    if not isinstance(value, _dt.datetime):
        raise SesError("a seal date is not a time")
    return value if value.tzinfo else value.replace(tzinfo=_dt.UTC)


def _seal_from(obj: Any, version: int) -> SealParts:
    if version == 4:
        info, prop = obj["e_seal_info"], obj["e_seal_info"]["property"]
        list_type = int(prop["cert_list_type"].native)
        raw_list = prop["cert_list"].dump()
        certs: tuple[bytes, ...] = ()
        digests: tuple[tuple[str, bytes], ...] = ()
        if list_type == 1:
            certs = tuple(bytes(c.native) for c in CertInfoList.load(raw_list))
        elif list_type == 2:
            digests = tuple((str(d["type"].native), bytes(d["value"].native)) for d in CertDigestList.load(raw_list))
        else:
            raise SesError(f"certListType {list_type} is neither 1 (certificates) nor 2 (digests)")
        maker_signed = MakerSignedV4(
            {"e_seal_info": info, "cert": obj["cert"], "sign_alg_id": obj["sign_alg_id"]}
        ).dump(force=True)
        maker_cert, maker_alg = bytes(obj["cert"].native), str(obj["sign_alg_id"].dotted)
        maker_sig = bytes(obj["signed_value"].native)
    else:
        info, prop = obj["eseal_info"], obj["eseal_info"]["property"]
        certs, digests = tuple(bytes(c.native) for c in prop["cert_list"]), ()
        sign_info = obj["sign_info"]
        maker_signed = info.dump()
        maker_cert, maker_alg = bytes(sign_info["cert"].native), str(sign_info["signature_algorithm"].dotted)
        maker_sig = bytes(sign_info["sign_data"].native)
    header, picture = info["header"], info["picture"]
    return SealParts(
        version=4 if version == 4 else 1,
        header_id=str(header["id"].native),
        header_version=int(header["version"].native),
        vendor_id=str(header["vid"].native),
        es_id=str(info["es_id"].native),
        seal_type=int(prop["type"].native),
        name=str(prop["name"].native),
        certs=certs,
        cert_digests=digests,
        created=_aware(prop["create_date"].native),
        valid_start=_aware(prop["valid_start"].native),
        valid_end=_aware(prop["valid_end"].native),
        picture_type=str(picture["type"].native),
        picture=bytes(picture["data"].native),
        picture_width=int(picture["width"].native),
        picture_height=int(picture["height"].native),
        seal_info_der=info.dump(),
        maker_cert=maker_cert,
        maker_algorithm=maker_alg,
        maker_signature=maker_sig,
        maker_signed=maker_signed,
        der=obj.dump(),
    )


def _load_strict(spec: Any, der: bytes) -> Any:
    obj = spec.load(der, strict=True)
    obj.native  # noqa: B018 - parse every field now: a malformed inner value raises here, not later
    return obj


def parse_seal(der: bytes) -> SealParts:
    """An electronic seal (``Seal.esl``, or the one inside a signature), v4 or v1.

    Raises:
        SesError: neither structure, or trailing bytes.
    """
    for spec, version in ((SealV4, 4), (SealV1, 1)):
        try:
            return _seal_from(_load_strict(spec, bytes(der)), version)
        except SesError:
            raise
        except Exception:  # the other version, or garbage: try the next, then say neither
            continue
    raise SesError("not a GB/T 38540 (v4) nor a GM/T 0031 (v1) electronic seal (SES_Seal / SESeal)")


def parse_signature(der: bytes) -> SignatureParts:
    """An electronic signature (``SignedValue.dat``), v4 or v1.

    Raises:
        SesError: neither structure.
    """
    data = bytes(der)
    try:
        obj = _load_strict(SignatureV4, data)
        tbs = obj["to_sign"]
        return SignatureParts(
            version=4,
            seal=_seal_from(tbs["eseal"], 4),
            signed_at=_aware(tbs["time_info"].native),
            data_hash=bytes(tbs["data_hash"].native),
            property_info=str(tbs["property_info"].native),
            signer_cert=bytes(obj["cert"].native),
            algorithm=str(obj["signature_alg_id"].dotted),
            signature=bytes(obj["signature"].native),
            to_sign=tbs.dump(),
        )
    except SesError:
        raise
    except Exception:
        pass
    try:
        obj = _load_strict(SignatureV1, data)
        tbs = obj["to_sign"]
        return SignatureParts(
            version=1,
            seal=_seal_from(tbs["eseal"], 1),
            signed_at=_v1_time(bytes(tbs["time_info"].native)),
            data_hash=bytes(tbs["data_hash"].native),
            property_info=str(tbs["property_info"].native),
            signer_cert=bytes(tbs["cert"].native),
            algorithm=str(tbs["signature_algorithm"].dotted),
            signature=bytes(obj["signature"].native),
            to_sign=tbs.dump(),
        )
    except SesError:
        raise
    except Exception:
        raise SesError("not a GB/T 38540 (v4) nor a GM/T 0031 (v1) electronic signature (SES_Signature)") from None


def _v1_time(raw: bytes) -> _dt.datetime | None:
    """GM/T 0031's timeInfo: the text of a UTCTime (``YYMMDDhhmmssZ``) or a GeneralizedTime; else unknown."""
    text = raw.decode("ascii", "replace").strip()
    for fmt in ("%y%m%d%H%M%SZ", "%Y%m%d%H%M%SZ"):
        try:
            return _dt.datetime.strptime(text, fmt).replace(tzinfo=_dt.UTC)
        except ValueError:
            continue
    return None
