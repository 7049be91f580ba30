"""The applicant's choice of how the certificate reaches them (seed 001 §3: 邮寄免费送达, 一窗平台直接下载电子证明,
政务网自助下载; seed 002 EMS速递寄证), and what the centre did about it.

``CertificateDelivery`` is the choice, in the application: ``electronic`` (the 不动产登记证明(电子) is
downloaded, as always), ``post`` (the paper 证明 is also mailed, free, to ``address``) or
``collection`` (collected at the centre's counter). ``CertificateDispatch`` is the centre's record
once it issues (缮证): for ``post`` the carrier and tracking number, for ``collection`` where and from
when to collect. An application without ``delivery`` is treated as ``electronic`` by the centre; the
agent never assumes it — the mapping profile says so explicitly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from ..privacy import mask_id, mask_name
from ._base import Model, Resource

__all__ = ["DELIVERY_LABELS", "CertificateDelivery", "CertificateDispatch", "PostalAddress"]

DELIVERY_LABELS = {"electronic": "电子证照下载", "post": "邮寄", "collection": "窗口领取"}


class PostalAddress(Model):
    """Where the paper certificate is mailed: recipient (收件人, masked in ``repr``), phone, address, 6-digit 邮编."""

    recipient: str = Field(min_length=1, max_length=100, description="收件人")
    phone: str = Field(pattern=r"^[0-9+\- ]{7,20}$", description="联系电话")
    address: str = Field(min_length=4, max_length=200, description="邮寄地址")
    postcode: str = Field(pattern=r"^[0-9]{6}$", description="邮政编码")

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            if key == "recipient" and isinstance(value, str):
                yield key, mask_name(value)
            elif key in ("phone", "address") and isinstance(value, str):
                yield key, mask_id(value)
            else:
                yield key, value


class CertificateDelivery(Model):
    """The applicant's choice: ``electronic``, ``post`` (with ``address``) or ``collection``."""

    method: Literal["electronic", "post", "collection"] = Field(
        description="electronic 电子证照下载, post 邮寄 (free), collection 窗口领取"
    )
    address: PostalAddress | None = Field(default=None, description="for post only")

    @model_validator(mode="after")
    def _address(self) -> CertificateDelivery:
        if self.method == "post" and self.address is None:
            raise ValueError("delivery by post needs an address (收件人, 电话, 地址, 邮编)")
        if self.method != "post" and self.address is not None:
            raise ValueError(f"an address goes with delivery by post, not {self.method}")
        return self


class CertificateDispatch(Resource):
    """What the centre did to deliver the certificate, recorded at 缮证.

    ``post``: ``carrier`` (EMS), ``tracking_number`` (快递单号), ``posted_at``; ``collection``:
    ``office`` (领证地点), ``collect_from`` / ``collect_until`` (China time); ``electronic``: the
    certificates are downloaded (``GET /v1/certificates/{id}/content``), nothing else.
    """

    method: Literal["electronic", "post", "collection"]
    carrier: str | None = None
    tracking_number: str | None = None
    posted_at: datetime | None = None
    office: str | None = None
    collect_from: datetime | None = None
    collect_until: datetime | None = None

    def describe(self) -> str:
        """In Chinese, for the loan system's receipt line."""
        if self.method == "post":
            when = f"，{self.posted_at:%Y-%m-%d} 寄出" if self.posted_at else ""
            return f"邮寄：{self.carrier or ''} 运单号 {self.tracking_number}{when}"
        if self.method == "collection":
            start = f"{self.collect_from:%Y-%m-%d %H:%M}" if self.collect_from else ""
            end = f"至 {self.collect_until:%Y-%m-%d}" if self.collect_until else ""
            return f"窗口领取：{self.office}，{start} 起{end}（工作日）"
        return "电子证照下载：证明已入库"
