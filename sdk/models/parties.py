"""Parties (natural persons and organisations) and the bank operator.

``repr()`` of a party masks its name and identity number, so a party that slips into a log
line or an exception does not leak personal data.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..codes import IdType
from ..identifiers import check_resident_id, check_uscc
from ..privacy import mask_id, mask_name
from ._base import Model

__all__ = ["NaturalPerson", "Organisation", "Party"]

_PERSON_ID_TYPES = {
    IdType.RESIDENT_ID,
    IdType.HK_MO_TW_ID,
    IdType.PASSPORT,
    IdType.HOUSEHOLD_REGISTER,
    IdType.MILITARY_ID,
    IdType.OTHER,
}
_ORGANISATION_ID_TYPES = {IdType.USCC, IdType.ORGANISATION_CODE, IdType.BUSINESS_LICENCE, IdType.OTHER}


class _PartyBase(Model):
    name: str = Field(min_length=1, max_length=200, description="姓名或名称")
    id_type: IdType
    id_number: str = Field(min_length=1, max_length=64, description="证件号码")
    phone: str | None = Field(default=None, max_length=32, description="联系电话")

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            if key == "name" and isinstance(value, str):
                yield key, mask_name(value)
            elif key in ("id_number", "phone") and isinstance(value, str):
                yield key, mask_id(value)
            else:
                yield key, value

    @property
    def masked(self) -> str:
        """``张* (3201**********1234)`` for logs and screens."""
        return f"{mask_name(self.name)} ({mask_id(self.id_number)})"


class NaturalPerson(_PartyBase):
    """A natural person (自然人); a 居民身份证 number is checked per GB 11643."""

    kind: Literal["person"] = "person"
    id_type: IdType = IdType.RESIDENT_ID

    @model_validator(mode="after")
    def _check_id(self) -> NaturalPerson:
        if self.id_type not in _PERSON_ID_TYPES:
            raise ValueError(f"id_type {self.id_type.value} ({self.id_type.label}) is not for a person")
        if self.id_type is IdType.RESIDENT_ID:
            object.__setattr__(self, "id_number", check_resident_id(self.id_number))
        return self


class Organisation(_PartyBase):
    """An organisation (法人或其他组织); a 统一社会信用代码 is checked per GB 32100."""

    kind: Literal["organisation"] = "organisation"
    id_type: IdType = IdType.USCC
    legal_representative: str | None = Field(default=None, max_length=100, description="法定代表人")

    @model_validator(mode="after")
    def _check_id(self) -> Organisation:
        if self.id_type not in _ORGANISATION_ID_TYPES:
            raise ValueError(f"id_type {self.id_type.value} ({self.id_type.label}) is not for an organisation")
        if self.id_type is IdType.USCC:
            object.__setattr__(self, "id_number", check_uscc(self.id_number))
        return self


Party = Annotated[NaturalPerson | Organisation, Field(discriminator="kind")]
