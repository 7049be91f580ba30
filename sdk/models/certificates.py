"""The electronic registration certificate, 不动产登记证明(电子) (seed 000 arts. 7–11, 14–20).

The metadata carries every field art. 7 requires, the electronic-licence metadata (证照标识,
持证主体, 签章, 状态), the structured mortgage terms for reconciliation, and the content's
digest. The centre signs the metadata (``SignedCertificateMetadata``) and seals the file.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from ..codes import LicenceHolderCodeType, LicenceStatus
from ..money import Yuan
from ._base import Resource

__all__ = [
    "NOTICE_KINDS",
    "CertificateMetadata",
    "DetachedSignature",
    "NoticeKind",
    "NoticeMetadata",
    "SignedCertificateMetadata",
    "SignedNoticeMetadata",
    "VerificationResult",
]


class CertificateMetadata(Resource):
    certificate_id: str
    application_id: str
    # seed 000 art. 7
    qr_payload: str = Field(description="二维码内容: {证照标识}^{证号}")
    issuing_authority: str = Field(description="不动产登记机构")
    issuing_authority_code: str = Field(description="登记机构统一社会信用代码")
    issued_at: datetime = Field(description="颁发时间")
    serial_number: str = Field(description="编号")
    certificate_number: str = Field(description="不动产登记证明号")
    right_or_matter: str = Field(description="证明权利或事项, e.g. 抵押权")
    right_holders: list[str] = Field(description="权利人(申请人)")
    obligors: list[str] = Field(description="义务人")
    location: str = Field(description="坐落")
    unit_ids: list[str] = Field(description="不动产单元号")
    other: str = Field(description="其他")
    notes: str = Field(description="附记")
    # electronic licence metadata (GB/T 36901–36905 practice)
    licence_id: str = Field(description="证照标识")
    licence_name: str = "不动产登记证明"
    licence_type_code: str
    holder_name: str = Field(description="持证主体")
    holder_code: str = Field(description="持证主体代码")
    holder_code_type: LicenceHolderCodeType
    valid_until: date | None = Field(default=None, description="有效期 (none: long-term)")
    signer: str = Field(description="签章人")
    signed_at: datetime = Field(description="签章时间")
    status: LicenceStatus
    superseded_by: str | None = Field(default=None, description="certificate_id of the newer one")
    # for reconciliation with the application
    mortgage_method: str | None = None
    secured_amount: Yuan | None = None
    maximum_amount: Yuan | None = None
    debt_start: date | None = None
    debt_end: date | None = None
    # the file
    media_type: Literal["application/pdf", "application/ofd"]
    sha256: str
    size: int


class DetachedSignature(Resource):
    alg: Literal["ed25519", "ecdsa-p256-sha256", "sm2-sm3"]
    keyid: str
    value: str = Field(description="base64 signature over the canonical JSON of the metadata")


class SignedCertificateMetadata(Resource):
    """The metadata and the centre's signature over its canonical JSON (sorted keys, no spaces)."""

    metadata: CertificateMetadata
    signature: DetachedSignature


class VerificationResult(Resource):
    """在线核验: is this certificate the centre's, and is it still current?"""

    result: Literal["valid", "superseded", "unknown"]
    licence_id: str | None = None
    certificate_number: str | None = None
    status: LicenceStatus | None = None
    superseded_by: str | None = None
    checked_at: datetime


#: every kind of sealed notice (电子文书) a centre or platform sends a bank, and its title: the four of an
#: application (seed 003 (四)) and those about collateral the platform and register deliver (docs/api.md §9a)
NoticeKind = Literal[
    "acceptance_receipt",
    "not_accepted",
    "refusal",
    "correction",
    "seizure",
    "seizure_release",
    "objection",
    "ownership_change",
    "query_result",
]
NOTICE_KINDS: dict[str, str] = {
    "acceptance_receipt": "受理凭证",
    "not_accepted": "不予受理通知书",
    "refusal": "不予登记通知书",
    "correction": "补正通知书",
    "seizure": "查封登记通知书",
    "seizure_release": "解封登记通知书",
    "objection": "异议登记通知书",
    "ownership_change": "产权变动通知书",
    "query_result": "不动产登记资料查询结果",
}


class NoticeMetadata(Resource):
    """A sealed notice (电子文书) with the same force as paper (seed 003 (四)): what it is, about what, and its file."""

    notice_id: str
    kind: NoticeKind
    title: str = Field(description="the document's title, e.g. 受理凭证 (NOTICE_KINDS)")
    notice_number: str = Field(description="文书编号")
    application_id: str | None = Field(
        default=None, description="the application it answers; none for collateral notices and 查询结果"
    )
    query_id: str | None = Field(default=None, description="a 查询结果's 登记资料查询 (PropertyQueryResult.query_id)")
    unit_ids: list[str] = Field(default_factory=list, description="不动产单元号 it concerns")
    restriction_id: str | None = Field(
        default=None,
        description="a collateral notice's 查封 or 异议 (PropertyRight.right_id in a 查询结果): one restriction is "
        "one event, whether pushed or found by query",
    )
    issuing_authority: str
    issuing_authority_code: str
    issued_at: datetime
    reason_code: str | None = Field(default=None, description="the decision's or 补正's code")
    reason: str | None = Field(default=None, description="the reason in words (no personal data)")
    deadline: datetime | None = Field(default=None, description="补正期限")
    media_type: Literal["application/pdf", "application/ofd"]
    sha256: str
    size: int


class SignedNoticeMetadata(Resource):
    """The notice's metadata and the centre's detached signature over its canonical JSON."""

    metadata: NoticeMetadata
    signature: DetachedSignature
