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

__all__ = ["CertificateMetadata", "DetachedSignature", "SignedCertificateMetadata", "VerificationResult"]


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
