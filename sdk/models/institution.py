"""The bank as the centre knows it: profile and filing (银行信息备案), channel, credentials."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ._base import Model, Resource
from .materials import Material

__all__ = [
    "FILING_KINDS",
    "CertificateRevocation",
    "ChannelState",
    "CredentialRecord",
    "Enrolment",
    "EnrolmentResult",
    "FilingDocument",
    "FilingState",
    "InstitutionFiling",
    "InstitutionProfile",
    "Operator",
    "PublicJwk",
    "Revocation",
    "Rotation",
    "WebhookSubscription",
]


class PublicJwk(Model):
    """A public key as a JWK (RFC 7517/8037): Ed25519 (OKP), P-256 (EC) or SM2 (EC, ``crv`` "SM2": the
    gm suite's, registered by us: x and y are the 32-byte big-endian coordinates, as for P-256)."""

    kty: Literal["OKP", "EC"]
    crv: Literal["Ed25519", "P-256", "SM2"]
    x: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    y: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")

    @model_validator(mode="after")
    def _shape(self) -> PublicJwk:
        if (self.kty, self.crv) not in {("OKP", "Ed25519"), ("EC", "P-256"), ("EC", "SM2")}:
            raise ValueError(f"unsupported key kty={self.kty} crv={self.crv}")
        if (self.kty == "EC") != (self.y is not None):
            raise ValueError("an EC key has x and y; an OKP key has x only")
        return self


class ChannelState(Resource):
    """Whether the centre accepts this institution's submissions (seed 002 §3.1.6, 关闭端口)."""

    status: Literal["open", "suspended"]
    reason: str | None = None
    since: datetime


#: the documents of 银行信息备案 (seed 001 §5.2): material code → name
FILING_KINDS: dict[str, str] = {"business_licence": "营业执照", "financial_licence": "金融许可证"}


class FilingDocument(Material):
    """One document of the 银行信息备案 (seed 001 §5.2), declared by digest and size like a material and
    uploaded after (``PUT /v1/institution/filing/documents/{id}``).

    ``code`` says which document: ``business_licence`` (营业执照; ``number`` is the 统一社会信用代码, the
    institution's own) or ``financial_licence`` (金融许可证; ``number`` is its 机构编码, the one the centre
    has on the account). ``valid_until`` is the last day it is valid (China date); none means 长期.
    """

    code: Literal["business_licence", "financial_licence"] = Field(
        description="business_licence 营业执照, financial_licence 金融许可证"
    )
    number: str = Field(min_length=1, max_length=64, description="证照编号: 统一社会信用代码 / 金融许可证机构编码")
    valid_until: date | None = Field(default=None, description="有效期至 (China date); absent: 长期有效")


class FilingState(Resource):
    """Whether the centre holds this institution's filing in order, and if not, why.

    ``complete``: every document of :data:`FILING_KINDS` filed, uploaded and valid today; ``missing``:
    one is not filed or not uploaded; ``expired``: one's ``valid_until`` has passed. The centre refuses
    applications unless ``complete`` (403 ``filing_required`` / ``filing_expired``).
    """

    status: Literal["complete", "missing", "expired"]
    reason: str | None = Field(default=None, description="in Chinese, for the bank's staff")
    valid_until: date | None = Field(default=None, description="the earliest expiry among the documents")


class InstitutionProfile(Resource):
    institution_id: str
    name: str
    uscc: str
    financial_licence_number: str = Field(description="金融许可证号")
    district: str = Field(description="辖区 (tenant)")
    channel: ChannelState
    filing: list[FilingDocument] = Field(default_factory=list, description="备案材料 (营业执照, 金融许可证)")
    filing_state: FilingState = Field(
        default_factory=lambda: FilingState(status="missing", reason="未办理银行信息备案"),
        description="whether the filing is in order (applications are refused unless complete)",
    )
    webhook_url: str | None = None


class InstitutionFiling(Model):
    """银行信息备案 (seed 001 §5.2): the institution's 营业执照 and 金融许可证, filed once — each application
    then needs neither. A new filing replaces the previous one (a renewed licence is filed again)."""

    documents: list[FilingDocument] = Field(min_length=len(FILING_KINDS), max_length=len(FILING_KINDS))

    @model_validator(mode="after")
    def _one_of_each(self) -> InstitutionFiling:
        codes = sorted(d.code for d in self.documents)
        if codes != sorted(FILING_KINDS):
            names = "、".join(FILING_KINDS.values())
            raise ValueError(f"a filing has one document of each kind ({names}); got {', '.join(codes)}")
        if len({d.id for d in self.documents}) != len(self.documents):
            raise ValueError("document ids must be unique")
        return self


class Operator(Resource):
    """A 业务办理人员 account the centre issued to one of the bank's staff."""

    operator_id: str = Field(description="the id the centre issued; the declaration's operator_id")
    display_name: str
    active: bool = Field(description="false once the centre deactivated the account")
    deactivated_at: datetime | None = None


class WebhookSubscription(Model):
    url: str = Field(pattern=r"^https?://", max_length=500)


class Enrolment(Model):
    """Register the bank's public key with a one-time enrolment token."""

    multiline_fields: ClassVar[frozenset[str]] = frozenset({"certificate_request"})

    token: str = Field(min_length=16, max_length=256)
    public_key: PublicJwk
    label: str = Field(default="agent", max_length=64)
    certificate_request: str | None = Field(
        default=None,
        max_length=8000,
        description="PEM PKCS#10 request for public_key, signed by it (sdk.csr): the centre answers an X.509 "
        "certificate from its institution CA (SM2 in gm, P-256 in intl)",
    )
    encryption_key: PublicJwk | None = Field(
        default=None,
        description="gm: the bank's own SM2 encryption public key (separate from public_key): a centre asking for "
        "the personal-field envelope seals the personal fields of its answers and webhooks to it (docs/api.md §5)",
    )


class EnrolmentResult(Resource):
    multiline_fields: ClassVar[frozenset[str]] = frozenset({"certificate"})
    key_id: str
    institution_id: str
    algorithm: Literal["ed25519", "ecdsa-p256-sha256", "sm2-sm3"]
    certificate: str | None = Field(default=None, description="PEM X.509 certificate of the key, when one was asked")


class CredentialRecord(Resource):
    multiline_fields: ClassVar[frozenset[str]] = frozenset({"certificate"})
    key_id: str
    algorithm: Literal["ed25519", "ecdsa-p256-sha256", "sm2-sm3"]
    label: str
    fingerprint: str = Field(description="SHA-256 of the public key's JWK thumbprint input, hex")
    status: Literal["active", "revoked"]
    created_at: datetime
    revoke_at: datetime | None = Field(default=None, description="scheduled end of a rotation's grace")
    revoked_at: datetime | None = None
    certificate: str | None = Field(default=None, description="PEM X.509 certificate the centre issued for the key")
    certificate_serial: str | None = Field(default=None, description="its serial number, hex")
    certificate_not_after: datetime | None = None
    certificate_status: Literal["valid", "expired", "revoked"] | None = Field(
        default=None, description="revoked once on the CRL (/pki/banks.crl)"
    )


class Rotation(Model):
    """A new key, authorised by a request signed with a current key."""

    multiline_fields: ClassVar[frozenset[str]] = frozenset({"certificate_request"})

    public_key: PublicJwk
    label: str = Field(default="agent", max_length=64)
    certificate_request: str | None = Field(
        default=None,
        max_length=8000,
        description="PEM PKCS#10 request for public_key, signed by it (sdk.csr): the centre answers an X.509 "
        "certificate from its institution CA (SM2 in gm, P-256 in intl)",
    )
    grace_seconds: int = Field(default=86400, ge=0, le=30 * 86400, description="until the old key is revoked")
    encryption_key: PublicJwk | None = Field(
        default=None,
        description="gm: the bank's new SM2 encryption public key; a centre asking for the personal-field envelope "
        "seals its answers and webhooks to it from then on (the bank keeps the old one through the grace)",
    )


class Revocation(Model):
    multiline_fields: ClassVar[frozenset[str]] = frozenset({"reason"})
    reason: str = Field(default="revoked by the institution", max_length=200)


class CertificateRevocation(Model):
    """The centre's admin revokes an institution certificate: RFC 5280 §5.3.1 reason."""

    reason: Literal["key_compromise", "superseded", "cessation_of_operation", "affiliation_changed", "unspecified"] = (
        "key_compromise"
    )
