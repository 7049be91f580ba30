"""Chinese registration identifiers: check, normalise, parse.

Every check is a plain function that returns the normalised value or raises ``ValueError``
with a reason a person can act on, and an ``Annotated`` type of the same name usable as a
pydantic field. Normalisation folds full-width characters (NFKC), strips surrounding white
space, upper-cases letters and drops the bracketed noise real exports carry
(``91340100781081199K（1-1）``); callers keep the original text themselves.

Rules (see shared/domain.md):

- 居民身份证号码, GB 11643-1999: 17 digits + check; weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2,
  check = (12 − Σ mod 11) mod 11 with 10 written ``X``; the birth date at [6:14] is a real
  date. An unknown area code is *not* an error (historic codes exist).
- 统一社会信用代码, GB 32100-2015: 18 characters from ``0-9ABCDEFGHJKLMNPQRTUWXY``; weights
  1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28; check = alphabet[(31 − Σ mod 31) mod 31].
  The first character (登记管理部门码) may be 1–9, A, N or Y. python-stdnum's ``cn.uscc``
  rejects A/N/Y codes, which are valid (e.g. N-prefixed 农村集体经济组织); we do not inherit that.
- 不动产单元号, GB/T 37346-2019: 28 characters, no check digit (see ``PropertyUnitParts``).
- 不动产权证书号 / 不动产登记证明号: ``皖(2019)长丰县不动产证明第0010484号``, either bracket width,
  any digit count, optional cancellation suffix such as ``(销)``.
- 证照标识 (GB/T 36901–36905 practice): ``1.2.156.3005.2.{type}.{issuer}.{serial}.{version}.{check}``
  with an ISO 7064 MOD 37,36 check character over type+issuer+serial+version.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator

from .text import check_text

__all__ = [
    "LICENCE_ID_PREFIX",
    "LICENCE_TYPE_PROOF",
    "LICENCE_TYPE_TITLE",
    "USCC",
    "USCC_ALPHABET",
    "CertificateNumber",
    "CertificateNumberParts",
    "LicenceId",
    "LicenceIdParts",
    "PropertyUnitId",
    "PropertyUnitParts",
    "ResidentId",
    "check_licence_id",
    "check_property_unit_id",
    "check_resident_id",
    "check_uscc",
    "iso7064_mod37_36_check_char",
    "licence_id",
    "normalise_code",
    "normalise_text",
    "parse_certificate_number",
    "parse_licence_id",
    "parse_property_unit_id",
    "resident_id_check_char",
    "uscc_check_char",
]

# Noise that real exports append to identifiers: "（1-1）", "(副本)", "【2】".
_TRAILING_NOTE = re.compile(r"\s*[(\[【][^()\[\]【】]*[)\]】]\s*$")


def normalise_text(value: str) -> str:
    """Fold full-width forms to half-width (NFKC) and strip surrounding white space."""
    return unicodedata.normalize("NFKC", value).strip()


def normalise_code(value: str) -> str:
    """An identifier as exports write it → as it is checked: width folded, trailing notes such as
    ``（1-1）`` stripped, spaces removed, upper case."""
    text = normalise_text(value)
    while True:
        stripped = _TRAILING_NOTE.sub("", text)
        if stripped == text:
            break
        text = stripped
    return re.sub(r"\s+", "", text).upper()


def _normalise_code(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected text, got {type(value).__name__}")
    check_text(value)  # the one rule for invisible characters (sdk/text.py), before any other check
    return normalise_code(value)


# --- 居民身份证号码 (GB 11643-1999) -------------------------------------------------------

_RID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit() or not first17.isascii():
        raise ValueError("resident id: the first 17 characters must be digits")
    total = sum(int(c) * w for c, w in zip(first17, _RID_WEIGHTS, strict=True))
    check = (12 - total % 11) % 11
    return "X" if check == 10 else str(check)


def check_resident_id(value: str) -> str:
    """Check a 居民身份证号码 (GB 11643-1999) and return it normalised (upper-case ``X``).

    Raises:
        ValueError: wrong length, non-digits, an impossible birth date or a wrong check.
    """
    number = _normalise_code(value, "resident id")
    if len(number) != 18:
        raise ValueError(f"resident id: expected 18 characters, got {len(number)}")
    first17, check = number[:17], number[17]
    if not (first17.isascii() and first17.isdigit()):
        raise ValueError("resident id: the first 17 characters must be digits")
    try:
        birth = _dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ValueError(f"resident id: birth date {number[6:14]} is not a real date") from None
    if birth.year < 1850 or birth > _dt.date.today():
        raise ValueError(f"resident id: birth date {number[6:14]} is out of range")
    expected = resident_id_check_char(first17)
    if check != expected:
        raise ValueError(f"resident id: check character is {check}, expected {expected}")
    return number


# --- 统一社会信用代码 (GB 32100-2015) ------------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_FIRST = frozenset("123456789ANY")


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters."""
    if len(first17) != 17 or any(c not in USCC_ALPHABET for c in first17):
        raise ValueError("USCC: the first 17 characters must come from 0-9 and A-Y less I O S V Z")
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def check_uscc(value: str) -> str:
    """Check a 统一社会信用代码 (GB 32100-2015) and return it normalised.

    Raises:
        ValueError: wrong length, a character outside the alphabet, an unknown
            registration-authority code or a wrong check character.
    """
    code = _normalise_code(value, "USCC")
    if len(code) != 18:
        raise ValueError(f"USCC: expected 18 characters, got {len(code)}")
    bad = sorted({c for c in code if c not in USCC_ALPHABET})
    if bad:
        raise ValueError(f"USCC: characters {''.join(bad)!r} are not allowed (no I O S V Z)")
    if code[0] not in _USCC_FIRST:
        raise ValueError(f"USCC: registration authority code {code[0]!r} must be 1-9, A, N or Y")
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise ValueError(f"USCC: check character is {code[17]}, expected {expected}")
    return code


# --- 不动产单元号 (GB/T 37346-2019) -------------------------------------------------------

_PROPERTY_UNIT = re.compile(r"^[0-9]{12}[GJZ][ABSXCDEFGHWY][0-9]{5}[FLQW][0-9]{8}$")

PARCEL_OWNERSHIP = {"G": "国家土地所有权", "J": "集体土地所有权", "Z": "土地所有权争议"}
FIXTURE_TYPES = {"F": "房屋", "L": "林木", "Q": "其他", "W": "无定着物"}


@dataclass(frozen=True, slots=True)
class PropertyUnitParts:
    """The parts of a 不动产单元号 (GB/T 37346-2019)."""

    county: str  # [0:6] 县级行政区划代码
    cadastral_district: str  # [6:9] 地籍区
    cadastral_subdistrict: str  # [9:12] 地籍子区
    ownership: str  # [12] G/J/Z
    parcel_type: str  # [13]
    parcel_sequence: str  # [14:19]
    fixture_type: str  # [19] F/L/Q/W
    fixture_unit: str  # [20:28]; for F: 4-digit 幢 + 4-digit 户 (inferred)

    @property
    def is_virtual(self) -> bool:
        """Transition-period units carry ``000000`` in place of 地籍区 and 地籍子区."""
        return self.cadastral_district == "000" and self.cadastral_subdistrict == "000"

    @property
    def is_building(self) -> bool:
        return self.fixture_type == "F"


def check_property_unit_id(value: str) -> str:
    """Check a 28-character 不动产单元号 and return it normalised.

    Raises:
        ValueError: naming the first position that breaks the GB/T 37346 layout.
    """
    unit = _normalise_code(value, "property unit id")
    if len(unit) != 28:
        raise ValueError(f"property unit id: expected 28 characters, got {len(unit)}")
    if _PROPERTY_UNIT.match(unit):
        return unit
    layout = [
        (0, 12, "a 12-digit county and cadastral code", str.isdigit),
        (12, 13, "ownership G, J or Z", lambda s: s in "GJZ"),
        (13, 14, "parcel type one of ABSXCDEFGHWY", lambda s: s in "ABSXCDEFGHWY"),
        (14, 19, "a 5-digit parcel sequence", str.isdigit),
        (19, 20, "fixture type F, L, Q or W", lambda s: s in "FLQW"),
        (20, 28, "an 8-digit fixture unit number", str.isdigit),
    ]
    for start, end, expected, ok in layout:
        part = unit[start:end]
        if not (part.isascii() and ok(part)):
            raise ValueError(f"property unit id: at [{start}:{end}] {part!r}, expected {expected}")
    raise ValueError("property unit id: does not match the GB/T 37346 layout")  # pragma: no cover


def parse_property_unit_id(value: str) -> PropertyUnitParts:
    u = check_property_unit_id(value)
    return PropertyUnitParts(u[0:6], u[6:9], u[9:12], u[12], u[13], u[14:19], u[19], u[20:28])


# --- 不动产权证书号 / 不动产登记证明号 -----------------------------------------------------

PROVINCE_ABBREVIATIONS = frozenset("京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼港澳台")

CertificateKind = Literal["不动产权", "不动产证明"]

_CERT_NUMBER = re.compile(
    r"^(?P<province>\w)\((?P<year>\d{4})\)(?P<locality>\w+?)"
    r"(?P<kind>不动产权|不动产证明)第(?P<serial>\d+)号(?P<suffix>\([^()]*\))?$"
)


@dataclass(frozen=True, slots=True)
class CertificateNumberParts:
    """A parsed 不动产权证书号 or 不动产登记证明号."""

    province: str
    year: int
    locality: str
    kind: CertificateKind
    serial: str
    suffix: str = ""  # e.g. "销" for a cancelled one

    @property
    def is_proof(self) -> bool:
        """True for a 不动产登记证明号 (mortgage, 预告, …), False for a 不动产权证书号."""
        return self.kind == "不动产证明"

    def __str__(self) -> str:
        tail = f"({self.suffix})" if self.suffix else ""
        return f"{self.province}({self.year}){self.locality}{self.kind}第{self.serial}号{tail}"


def parse_certificate_number(value: str) -> CertificateNumberParts:
    """Parse ``皖(2019)长丰县不动产证明第0010484号`` (either bracket width) into its parts.

    Raises:
        ValueError: when the text does not have that shape, the province abbreviation is
            unknown or the year is implausible.
    """
    if not isinstance(value, str):
        raise ValueError(f"certificate number: expected text, got {type(value).__name__}")
    text = re.sub(r"\s+", "", normalise_text(value))
    m = _CERT_NUMBER.match(text)
    if not m:
        raise ValueError(
            f"certificate number: {text!r} is not of the form 省(YYYY)市县不动产权第N号 or 省(YYYY)市县不动产证明第N号"
        )
    if m["province"] not in PROVINCE_ABBREVIATIONS:
        raise ValueError(f"certificate number: {m['province']!r} is not a province abbreviation")
    year = int(m["year"])
    if not 1986 <= year <= _dt.date.today().year + 1:
        raise ValueError(f"certificate number: year {year} is out of range")
    kind: CertificateKind = "不动产权" if m["kind"] == "不动产权" else "不动产证明"
    suffix = (m["suffix"] or "")[1:-1]
    return CertificateNumberParts(m["province"], year, m["locality"], kind, m["serial"], suffix)


def _check_certificate_number(value: str) -> str:
    return str(parse_certificate_number(value))


# --- 证照标识 with ISO 7064 MOD 37,36 ---------------------------------------------------------

_ALNUM36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LICENCE_ID_PREFIX = "1.2.156.3005.2"
LICENCE_TYPE_PROOF = "11100000MB03271699022"  # 不动产登记证明
LICENCE_TYPE_TITLE = "11100000MB03271699001"  # 不动产权证书


def _mod37_36_remainder(chars: str) -> int:
    """ISO 7064 hybrid system MOD 37,36: the running value P after ``chars``."""
    m = 36
    p = m
    for ch in chars:
        try:
            a = _ALNUM36.index(ch)
        except ValueError:
            raise ValueError(f"MOD 37,36: {ch!r} is not 0-9 or A-Z") from None
        s = (p + a) % m or m
        p = (2 * s) % (m + 1)
    return p


def iso7064_mod37_36_check_char(chars: str) -> str:
    """The ISO 7064 MOD 37,36 check character that makes ``chars + check`` valid."""
    p = _mod37_36_remainder(chars.upper())
    return _ALNUM36[(1 - p) % 36]


@dataclass(frozen=True, slots=True)
class LicenceIdParts:
    """A parsed 证照标识."""

    type_code: str
    issuer_code: str
    serial: str
    version: str
    check: str

    def __str__(self) -> str:
        return ".".join((LICENCE_ID_PREFIX, self.type_code, self.issuer_code, self.serial, self.version, self.check))


def licence_id(type_code: str, issuer_code: str, serial: str, version: int | str = 1) -> str:
    """Build a 证照标识 with its check character."""
    ver = f"{int(version):03d}"
    body = f"{type_code}{issuer_code}{serial}{ver}".upper()
    return str(LicenceIdParts(type_code, issuer_code, serial, ver, iso7064_mod37_36_check_char(body)))


def parse_licence_id(value: str) -> LicenceIdParts:
    """Parse and check a 证照标识.

    Raises:
        ValueError: a wrong prefix, a part of the wrong shape, or a wrong check character.
    """
    text = _normalise_code(value, "licence id")
    if not text.startswith(LICENCE_ID_PREFIX + "."):
        raise ValueError(f"licence id: expected to start with {LICENCE_ID_PREFIX}.")
    parts = text[len(LICENCE_ID_PREFIX) + 1 :].split(".")
    if len(parts) != 5:
        raise ValueError("licence id: expected type.issuer.serial.version.check after the prefix")
    type_code, issuer, serial, version, check = parts
    for name, part in (("type code", type_code), ("issuer code", issuer), ("serial", serial)):
        if not part or not re.fullmatch(r"[0-9A-Z]+", part):
            raise ValueError(f"licence id: {name} {part!r} must be letters and digits")
    if not re.fullmatch(r"\d{3}", version):
        raise ValueError(f"licence id: version {version!r} must be 3 digits")
    if not re.fullmatch(r"[0-9A-Z]", check):
        raise ValueError(f"licence id: check {check!r} must be one letter or digit")
    expected = iso7064_mod37_36_check_char(type_code + issuer + serial + version)
    if check != expected:
        raise ValueError(f"licence id: check character is {check}, expected {expected}")
    return LicenceIdParts(type_code, issuer, serial, version, check)


def check_licence_id(value: str) -> str:
    """Check a 证照标识 and return it normalised."""
    return str(parse_licence_id(value))


ResidentId = Annotated[str, AfterValidator(check_resident_id)]
USCC = Annotated[str, AfterValidator(check_uscc)]
PropertyUnitId = Annotated[str, AfterValidator(check_property_unit_id)]
CertificateNumber = Annotated[str, AfterValidator(_check_certificate_number)]
LicenceId = Annotated[str, AfterValidator(check_licence_id)]
