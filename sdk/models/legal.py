"""What makes an application legally the applicants' own (seeds 001–003).

The centre alone accepts and reviews; the bank prepares the application with the applicants.
For a "一次都不跑" (zero-visit) application the centre needs: the bank operator who prepared it
(each 业务办理人员 has an account issued by the centre), the applicants' 询问笔录 answers,
their truthfulness commitment (承诺), and their electronic signatures (seed 002 §1.6.2, seed 003
细则 (四)(五)). Each comes from the applicants (the loan system's export), never from a default.

An electronic signature is a *signed document*: the 申请书 or 询问笔录 PDF the applicant signed on a
signing platform (PAdES), sent as a material of the application (declared by SHA-256 and size,
uploaded like any material, never inside the JSON body) and referred to here by material id,
together with the material it signs. The agent and the centre check it with
:func:`sdk.esign.verify_esignature`. The applying bank (the mortgagee) needs no entry: its act is
the request it signs with its enrolled key (RFC 9421).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ._base import Model

__all__ = ["SIGNED_DOCUMENT_CODES", "Declaration", "ElectronicSignatureRef", "InquiryAnswer"]

#: the material codes of what an applicant e-signs (seed 003 细则 (四)): the 申请书 and the 询问笔录
SIGNED_DOCUMENT_CODES = ("application_form", "inquiry_record")


class InquiryAnswer(Model):
    """One question and answer of the structured 询问笔录."""

    multiline_fields: ClassVar[frozenset[str]] = frozenset({"question", "answer"})

    question_code: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    question: str = Field(min_length=1, max_length=300)
    answer: str = Field(min_length=1, max_length=1000)


class ElectronicSignatureRef(Model):
    """One applicant's electronic signature: the signed PDF (``material_id``) over the document ``document_id``.

    Both are ids of materials of the same application (:class:`sdk.models.Material`): the signed PDF
    (PAdES, the document's bytes followed by the signature) and the unsigned document it signs (the
    申请书 ``application_form`` or the 询问笔录 ``inquiry_record``). ``signature_id`` alone (a signing
    platform's id, which nobody can check) is the older form; a centre that checks e-signatures
    refuses it.
    """

    party: str = Field(
        pattern=r"^/[a-z_]+/\d+$", description="JSON pointer to the party in the application, e.g. /mortgagors/0"
    )
    material_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the material holding the signed PDF (PAdES)"
    )
    document_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="the material the applicant signed (申请书/询问笔录)",
    )
    signature_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="older form: a signing platform's signature id"
    )
    method: Literal["ca_certificate", "face_verification", "handwritten_pad"] = "ca_certificate"
    signed_at: datetime = Field(description="when the applicant signed (the time the signature reports)")

    @model_validator(mode="after")
    def _referenced(self) -> ElectronicSignatureRef:
        if (self.material_id is None) != (self.document_id is None):
            raise ValueError("material_id (the signed PDF) and document_id (what it signs) go together")
        if self.material_id is None and self.signature_id is None:
            raise ValueError("an e-signature names its signed document (material_id and document_id)")
        if self.material_id is not None and self.material_id == self.document_id:
            raise ValueError("the signed PDF and the document it signs are two materials")
        return self


class Declaration(Model):
    """The operator, the 询问笔录, the 承诺 and the applicants' signatures."""

    operator_id: str = Field(min_length=1, max_length=64, description="业务办理人员账号")
    inquiry: list[InquiryAnswer] = Field(min_length=1, description="询问笔录")
    commitment_accepted: bool = Field(description="申请人已签署真实性承诺")
    commitment_version: str = Field(default="1", max_length=16)
    signatures: list[ElectronicSignatureRef] = Field(
        default_factory=list, description="one per applicant other than the applying bank (the mortgagee)"
    )

    @model_validator(mode="after")
    def _committed(self) -> Declaration:
        if not self.commitment_accepted:
            raise ValueError("the applicants' truthfulness commitment (承诺) must be accepted")
        return self
