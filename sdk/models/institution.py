"""The bank as the centre knows it: profile and filing (银行信息备案), channel, credentials."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ._base import Model, Resource
from .materials import Material

__all__ = [
    "CertificateRevocation",
    "ChannelState",
    "CredentialRecord",
    "Enrolment",
    "EnrolmentResult",
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


class InstitutionProfile(Resource):
    institution_id: str
    name: str
    uscc: str
    financial_licence_number: str = Field(description="金融许可证号")
    district: str = Field(description="辖区 (tenant)")
    channel: ChannelState
    filing: list[Material] = Field(default_factory=list, description="备案材料 (营业执照, 金融许可证…)")
    webhook_url: str | None = None


class InstitutionFiling(Model):
    """银行信息备案: institution documents filed once and not sent with every application."""

    documents: list[Material] = Field(min_length=1)


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


class Revocation(Model):
    multiline_fields: ClassVar[frozenset[str]] = frozenset({"reason"})
    reason: str = Field(default="revoked by the institution", max_length=200)


class CertificateRevocation(Model):
    """The centre's admin revokes an institution certificate: RFC 5280 §5.3.1 reason."""

    reason: Literal["key_compromise", "superseded", "cessation_of_operation", "affiliation_changed", "unspecified"] = (
        "key_compromise"
    )
