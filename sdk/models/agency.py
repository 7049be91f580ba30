"""The bank as 代理人 (agent) of the applicants, carried as data (seed 001 "银行作为代理人"; seed 004: 申请人身份
证明 = 委托书及代理人身份证件).

The bank's staff member prepares and submits the application for the applicants who signed a 委托书
(power of attorney). ``representation`` says who acts (the institution, its 经办人 account, the
person's name and 证件), for whom (JSON pointers to the represented applicants) and under which
委托书 (the material carrying it, by id and SHA-256). The model checks what the application itself
can show (the 委托书 material is there with that digest, the operator is the declaration's, the
principals are applicants); the centre checks the agent is the institution that submits
(``agent_not_institution``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from ..codes import IdType
from ..identifiers import check_resident_id, check_uscc
from ..privacy import mask_id, mask_name
from ._base import Model

__all__ = ["POWER_OF_ATTORNEY_MATERIALS", "AgentIdentity", "PowerOfAttorneyRef", "Representation"]

#: the material codes that may carry the 委托书: its own, or the checklist's 申请人身份证明 (委托书及代理人身份证件)
POWER_OF_ATTORNEY_MATERIALS = frozenset({"power_of_attorney", "applicant_identity"})


class AgentIdentity(Model):
    """代理人: the institution and the staff member acting for the applicants.

    ``institution_name``/``institution_uscc`` (GB 32100-checked): the bank; ``operator_id``: its
    经办人 account at the centre (the declaration's); ``name``, ``id_type``, ``id_number``: the staff
    member's name and 证件 (a 居民身份证 is GB 11643-checked). Name and number are masked in ``repr``.
    """

    institution_name: str = Field(min_length=1, max_length=200, description="代理机构名称")
    institution_uscc: str = Field(min_length=18, max_length=18, description="代理机构统一社会信用代码")
    operator_id: str = Field(min_length=1, max_length=64, description="经办人账号 (the declaration's operator_id)")
    name: str = Field(min_length=1, max_length=100, description="代理人姓名")
    id_type: IdType = IdType.RESIDENT_ID
    id_number: str = Field(min_length=1, max_length=64, description="代理人证件号码")

    @model_validator(mode="after")
    def _check_ids(self) -> AgentIdentity:
        object.__setattr__(self, "institution_uscc", check_uscc(self.institution_uscc))
        if self.id_type is IdType.RESIDENT_ID:
            object.__setattr__(self, "id_number", check_resident_id(self.id_number))
        return self

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            if key == "name" and isinstance(value, str):
                yield key, mask_name(value)
            elif key == "id_number" and isinstance(value, str):
                yield key, mask_id(value)
            else:
                yield key, value


class PowerOfAttorneyRef(Model):
    """委托书: the application's material carrying it, by id and SHA-256 (lower-case hex)."""

    material_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Representation(Model):
    """The bank acting as 代理人 for ``principals`` (JSON pointers such as ``/mortgagors/0``) under a 委托书."""

    agent: AgentIdentity
    power_of_attorney: PowerOfAttorneyRef
    principals: list[str] = Field(min_length=1, max_length=50, description="the represented applicants")

    @model_validator(mode="after")
    def _pointers(self) -> Representation:
        for p in self.principals:
            if not p.startswith("/") or p.count("/") != 2:
                raise ValueError(f"principal {p!r} is not a JSON pointer to a party, e.g. /mortgagors/0")
        return self
