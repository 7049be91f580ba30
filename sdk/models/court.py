"""The effective court or arbitration document behind a mortgagor's unilateral discharge (seed 004).

Seed 004 (抵押权注销登记): "抵押人等当事人单方申请注销登记的，提交证实抵押权已消灭的人民法院、仲裁委员会
作出的生效法律文书". The document travels twice: as a material (the scanned or electronic file, code
``court_document``, uploaded with its digest) and as structured data the centre reads — which kind of
document, who issued it, its number and the date it took effect. The centre refuses (不予受理) a
mortgagor's unilateral discharge without it (``court_document_required``) or with one not yet effective
on the day it judges (``court_document_not_effective``).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field, model_validator

from ._base import Model

__all__ = ["COURT_DOCUMENT_MATERIAL", "CourtDocument", "CourtDocumentKind", "court_document_problems"]

#: the checklist code of the material that carries the document (config/checklists/mortgage_discharge.toml)
COURT_DOCUMENT_MATERIAL = "court_document"


class CourtDocumentKind(StrEnum):
    """生效法律文书的种类: what a court or an arbitration commission decides with."""

    JUDGMENT = "judgment"  # 民事判决书
    RULING = "ruling"  # 民事裁定书
    MEDIATION = "mediation"  # 民事调解书
    ARBITRATION_AWARD = "arbitration_award"  # 仲裁裁决书

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def by_arbitration(self) -> bool:
        return self is CourtDocumentKind.ARBITRATION_AWARD


_LABELS = {
    CourtDocumentKind.JUDGMENT: "判决书",
    CourtDocumentKind.RULING: "裁定书",
    CourtDocumentKind.MEDIATION: "调解书",
    CourtDocumentKind.ARBITRATION_AWARD: "仲裁裁决书",
}


class CourtDocument(Model):
    """One effective legal document (生效法律文书) proving the mortgage extinct.

    Fields: ``kind`` (judgment 判决书, ruling 裁定书, mediation 调解书 — issued by a 人民法院 —, or
    arbitration_award 仲裁裁决书 — by a 仲裁委员会); ``issuing_body`` (作出机关, its full name);
    ``document_number`` (文书编号, e.g. ``(2026)皖0121民初1234号``); ``effective_date`` (生效日期, the
    day the document took legal effect, China time); ``material_id`` (the id of the application's
    material of code ``court_document`` that carries it).

    Raises (on validation): ValueError when the issuing body does not fit the kind (a court's
    document from a body that is not a 法院, an award from one that is not a 仲裁委员会).
    """

    kind: CourtDocumentKind = Field(
        description="judgment 判决书, ruling 裁定书, mediation 调解书, arbitration_award 仲裁裁决书"
    )
    issuing_body: str = Field(min_length=2, max_length=100, description="作出机关: the 人民法院 or 仲裁委员会")
    document_number: str = Field(min_length=1, max_length=64, description="文书编号, e.g. (2026)皖0121民初1234号")
    effective_date: date = Field(description="生效日期 (China time)")
    material_id: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the material (code court_document) that carries the document"
    )

    @model_validator(mode="after")
    def _body_fits_kind(self) -> CourtDocument:
        if self.kind.by_arbitration and "仲裁" not in self.issuing_body:
            raise ValueError(f"a {self.kind.label} is issued by a 仲裁委员会, not {self.issuing_body}")
        if not self.kind.by_arbitration and "法院" not in self.issuing_body:
            raise ValueError(f"a {self.kind.label} is issued by a 人民法院, not {self.issuing_body}")
        return self


def court_document_problems(
    applicant_side: str, document: CourtDocument | None, today: date
) -> list[tuple[str, str, str]]:
    """What keeps a discharge from standing on its court document: ``(code, reason, JSON pointer)`` each.

    Only a mortgagor's unilateral discharge (``applicant_side`` ``mortgagor``) needs one (seed 004);
    the joint path and the mortgagee's own are never judged here. ``today`` is the judging day in
    China time. The centre (sandbox/review.py, 不予受理) and the agent (before sending) apply the same
    rule, so the refusal is avoidable.
    """
    if applicant_side != "mortgagor":
        return []
    if document is None:
        return [
            (
                "court_document_required",
                "抵押人单方申请注销登记，须提交证实抵押权已消灭的人民法院、仲裁委员会作出的生效法律文书"
                "（申请中缺少法律文书的种类、作出机关、文书编号、生效日期）",
                "/court_document",
            )
        ]
    if document.effective_date > today:
        return [
            (
                "court_document_not_effective",
                f"{document.issuing_body}{document.kind.label} {document.document_number} 的生效日期 "
                f"{document.effective_date.isoformat()} 晚于今日 {today.isoformat()}，法律文书尚未生效",
                "/court_document/effective_date",
            )
        ]
    return []
