"""What makes an application legally the applicants' own (seeds 001–003).

The centre alone accepts and reviews; the bank prepares the application with the applicants.
For a "一次都不跑" (zero-visit) application the centre needs: the bank operator who prepared it
(each 业务办理人员 has an account issued by the centre), the applicants' 询问笔录 answers,
their truthfulness commitment (承诺), and references to their electronic signatures.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ._base import Model

__all__ = ["Declaration", "ElectronicSignatureRef", "InquiryAnswer"]


class InquiryAnswer(Model):
    """One question and answer of the structured 询问笔录."""

    multiline_fields: ClassVar[frozenset[str]] = frozenset({"question", "answer"})

    question_code: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    question: str = Field(min_length=1, max_length=300)
    answer: str = Field(min_length=1, max_length=1000)


class ElectronicSignatureRef(Model):
    """A reference to one applicant's electronic signature, held by the signature service."""

    party: str = Field(
        pattern=r"^/[a-z_]+/\d+$", description="JSON pointer to the party in the application, e.g. /mortgagors/0"
    )
    signature_id: str = Field(min_length=1, max_length=128)
    method: Literal["ca_certificate", "face_verification", "handwritten_pad"] = "ca_certificate"
    signed_at: datetime


class Declaration(Model):
    """The operator, the 询问笔录, the 承诺 and the applicants' signatures."""

    operator_id: str = Field(min_length=1, max_length=64, description="业务办理人员账号")
    inquiry: list[InquiryAnswer] = Field(min_length=1, description="询问笔录")
    commitment_accepted: bool = Field(description="申请人已签署真实性承诺")
    commitment_version: str = Field(default="1", max_length=16)
    signatures: list[ElectronicSignatureRef] = Field(min_length=1)

    @model_validator(mode="after")
    def _committed(self) -> Declaration:
        if not self.commitment_accepted:
            raise ValueError("the applicants' truthfulness commitment (承诺) must be accepted")
        return self
