"""Property units (不动产单元) and the property query (登记资料查询)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field, model_validator

from ..codes import PropertyType
from ..identifiers import CertificateNumber, PropertyUnitId
from ..money import Yuan
from ._base import Model, Resource
from .parties import Party

__all__ = [
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


class QueryAuthorisation(Model):
    """The applicant's authorisation for a bank to query the register (seed 001)."""

    reference: str = Field(min_length=1, max_length=64, description="授权书编号")
    applicant: Party = Field(description="授权人 (the owner being queried about)")
    signed_at: datetime
    signature_id: str = Field(min_length=1, max_length=128, description="电子签名引用")
    valid_until: date | None = None


class PropertyQuery(Model):
    """登记资料查询: by 不动产单元号 or by 不动产权证书号, with the applicant's authorisation."""

    unit_id: PropertyUnitId | None = None
    title_certificate: CertificateNumber | None = None
    authorisation: QueryAuthorisation
    purpose: Literal["mortgage"] = Field(
        default="mortgage", description="查询目的: banks may query only for the mortgage business"
    )
    operator_id: str = Field(min_length=1, max_length=64, description="业务办理人员账号")

    @model_validator(mode="after")
    def _one_key(self) -> PropertyQuery:
        if (self.unit_id is None) == (self.title_certificate is None):
            raise ValueError("give exactly one of unit_id and title_certificate")
        return self


class PropertyRight(Resource):
    """A right or restriction on the register: ownership, mortgage, 查封, 异议, 预告."""

    kind: Literal["ownership", "mortgage", "seizure", "objection", "notice"]
    certificate_number: str | None = None
    holder: str | None = Field(default=None, description="权利人 (masked unless the applicant)")
    rank: int | None = Field(default=None, description="抵押顺位")
    amount: Yuan | None = None
    registered_at: datetime | None = None
    note: str | None = None


class PropertyQueryResult(Resource):
    query_id: str
    unit_id: str
    location: str
    property_type: PropertyType
    rights: list[PropertyRight]
    seized: bool = Field(description="是否查封")
    objection: bool = Field(description="是否异议")
    mortgaged: bool
    answered_at: datetime
