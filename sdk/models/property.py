"""Property units (不动产单元) and the property query (登记资料查询)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..codes import PropertyType
from ..identifiers import CertificateNumber, PropertyUnitId
from ..money import Yuan
from ._base import Model, Resource
from .certificates import DetachedSignature
from .parties import Party

__all__ = [
    "AUTHORISATION_VALIDITY_DAYS",
    "AUTHORISED_PURPOSES",
    "AuthorisationProblem",
    "PropertyQuery",
    "PropertyQueryResult",
    "PropertyRight",
    "PropertyUnit",
    "QueryAuthorisation",
]


class PropertyUnit(Model):
    """One 不动产单元 an application concerns."""

    unit_id: PropertyUnitId = Field(description="不动产单元号 (GB/T 37346)")
    property_type: PropertyType = Field(default=PropertyType.LAND_AND_BUILDING, description="不动产类型")
    location: str = Field(min_length=1, max_length=300, description="坐落")
    title_certificate: CertificateNumber | None = Field(
        default=None, description="不动产权证书号 (absent for a presale notice)"
    )
    area_m2: str | None = Field(default=None, pattern=r"^\d+(\.\d{1,4})?$", description="面积(㎡)")


#: 授权用途 a bank may query for: the mortgage business only
#: (seed 001 §6.2: "不得将查询信息用于办理抵押登记业务之外的用途")
AUTHORISED_PURPOSES = {"mortgage": "办理不动产抵押登记业务"}
#: the words an authorisation writes its mortgage purpose in, as staff and loan systems copy them: read as ``mortgage``
_MORTGAGE_WORDS = frozenset({"办理不动产抵押登记业务", "不动产抵押登记", "抵押登记", "抵押", "抵押登记业务"})
#: how long an authorisation that states no end (``valid_until``) stays valid from its signing, in days
AUTHORISATION_VALIDITY_DAYS = 90
#: an authorisation signed up to this far in the future (clocks differ) is not refused as future-dated
_CLOCK_SKEW = timedelta(minutes=5)


class QueryAuthorisation(Model):
    """The applicant's authorisation for a bank to query the register (seed 001 §3, §6.2).

    The bank and the centre check it alike (:meth:`problems`): signed, not in the future; within its
    validity period (``valid_from``..``valid_until``, Beijing dates; without ``valid_until``,
    :data:`AUTHORISATION_VALIDITY_DAYS` from signing); for the mortgage business only; and the person
    authorising is a right holder (权利人) of the unit queried.
    """

    reference: str = Field(min_length=1, max_length=64, description="授权书编号")
    applicant: Party = Field(description="授权人 (the owner being queried about)")
    signed_at: datetime
    signature_id: str = Field(min_length=1, max_length=128, description="电子签名引用")
    valid_from: date | None = Field(default=None, description="授权有效期起 (default: the day it was signed)")
    valid_until: date | None = Field(
        default=None, description=f"授权有效期止 (default: {AUTHORISATION_VALIDITY_DAYS} days after signing)"
    )
    purpose: str = Field(
        default="mortgage",
        max_length=64,
        description="授权用途 as the document states it; only 'mortgage' (办理不动产抵押登记业务) may be queried for",
    )

    @field_validator("purpose", mode="before")
    @classmethod
    def _purpose_words(cls, value: Any) -> Any:
        """The document's own words for the mortgage business (办理不动产抵押登记业务 …) are the mortgage purpose;
        anything else stays as written (and is refused by :meth:`problems`)."""
        if isinstance(value, str) and "".join(value.split()) in _MORTGAGE_WORDS:
            return "mortgage"
        return value

    def problems(self, *, now: datetime, owner_ids: Collection[str] | None = None) -> list[AuthorisationProblem]:
        """Why this authorisation does not allow a query now (empty when it does).

        Args:
            now: the instant of the query (aware; naive is taken as UTC).
            owner_ids: the 证件号码 of the unit's right holders when known (the centre's register; at the bank
                the owners on the title certificate or the loan's mortgagors); ``None`` skips that check.
        """
        from ..support.working_days import beijing_date

        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        today = beijing_date(now)
        signed = self.signed_at if self.signed_at.tzinfo else self.signed_at.replace(tzinfo=UTC)
        start = self.valid_from or beijing_date(signed)
        end = self.valid_until or beijing_date(signed) + timedelta(days=AUTHORISATION_VALIDITY_DAYS)
        found: list[AuthorisationProblem] = []
        if signed > now + _CLOCK_SKEW:
            found.append(AuthorisationProblem(
                "authorisation_future_dated", "/authorisation/signed_at",
                f"授权书签署时间 {signed.isoformat()} 晚于当前时间，授权书无效",
            ))  # fmt: skip
        elif start > today:
            found.append(AuthorisationProblem(
                "authorisation_not_yet_valid", "/authorisation/valid_from", f"授权书自 {start.isoformat()} 起才生效",
            ))  # fmt: skip
        if end < today:
            found.append(AuthorisationProblem(
                "authorisation_expired", "/authorisation/valid_until", f"授权书已于 {end.isoformat()} 过期",
            ))  # fmt: skip
        if end < start:
            found.append(AuthorisationProblem(
                "authorisation_period_invalid", "/authorisation/valid_until", "授权书有效期止早于有效期起",
            ))  # fmt: skip
        if self.purpose not in AUTHORISED_PURPOSES:
            found.append(AuthorisationProblem(
                "authorisation_wrong_purpose", "/authorisation/purpose",
                f"授权用途 {self.purpose!r} 不是办理不动产抵押登记业务：查询结果只能用于抵押登记业务",
            ))  # fmt: skip
        if owner_ids is not None and self.applicant.id_number not in owner_ids:
            found.append(AuthorisationProblem(
                "authorisation_not_owner", "/authorisation/applicant", "授权人不是该不动产的权利人",
            ))  # fmt: skip
        return found


@dataclass(frozen=True)
class AuthorisationProblem:
    """One reason a query's authorisation is refused: a stable ``code``, where (JSON pointer), why (Chinese)."""

    code: str
    pointer: str
    reason: str


class PropertyQuery(Model):
    """登记资料查询 by 不动产单元号, 不动产权证书号 or 坐落 (seed 002 §2.1.7), with the applicant's authorisation."""

    unit_id: PropertyUnitId | None = None
    title_certificate: CertificateNumber | None = None
    location: str | None = Field(default=None, min_length=1, max_length=300, description="坐落 (as registered)")
    authorisation: QueryAuthorisation
    purpose: Literal["mortgage"] = Field(
        default="mortgage", description="查询目的: banks may query only for the mortgage business"
    )
    operator_id: str = Field(min_length=1, max_length=64, description="业务办理人员账号")

    @model_validator(mode="after")
    def _one_key(self) -> PropertyQuery:
        if sum(k is not None for k in (self.unit_id, self.title_certificate, self.location)) != 1:
            raise ValueError("give exactly one of unit_id, title_certificate and location")
        return self


class PropertyRight(Resource):
    """A right or restriction on the register: ownership, mortgage, 查封, 异议, 预告."""

    kind: Literal["ownership", "mortgage", "seizure", "objection", "notice"]
    right_id: str | None = Field(
        default=None,
        description="the register's id of this right or restriction (a 查封's, an 异议's): names one restriction the "
        "same way in a 查询结果 and in the sealed notice about it (NoticeMetadata.restriction_id)",
    )
    certificate_number: str | None = None
    holder: str | None = Field(default=None, description="权利人 (masked unless the applicant)")
    rank: int | None = Field(default=None, description="抵押顺位")
    amount: Yuan | None = None
    registered_at: datetime | None = None
    note: str | None = None


class PropertyQueryResult(Resource):
    """查询结果 (权属查询证明): what the register shows, signed by the centre (``signature``).

    The signature is the centre's detached signature over the canonical JSON of every other field
    (:func:`sdk.certificates.verify_query_result`); the centre keeps the same record in its query trace.
    """

    query_id: str
    unit_id: str
    location: str
    property_type: PropertyType
    rights: list[PropertyRight]
    seized: bool = Field(description="是否查封")
    objection: bool = Field(description="是否异议")
    mortgaged: bool
    title_certificate: str | None = Field(default=None, description="不动产权证书号 the register records for the unit")
    owner_digests: list[str] = Field(
        default_factory=list,
        description="every 权利人 (all co-owners) as SHA-256 of '<query_id>:<证件号码>' "
        "(:func:`sdk.register_checks.owner_digest`): the bank checks its mortgagors are the owners without the "
        "centre disclosing co-owners' ID numbers",
    )
    answered_at: datetime
    operator_id: str | None = Field(default=None, description="who asked (业务办理人员账号)")
    authorisation_reference: str | None = Field(default=None, description="授权书编号")
    purpose: str | None = Field(default=None, description="查询目的")
    document_id: str | None = Field(
        default=None,
        description="the sealed 查询结果 (权属查询证明): a document of kind query_result served like a notice "
        "(GET /v1/notices/{document_id} and its /content), OFD or PDF sealed as the centre's certificates",
    )
    signature: DetachedSignature | None = Field(default=None, description="the centre's signature over the rest")
