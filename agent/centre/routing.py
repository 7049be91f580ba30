"""The routing table (``[platform.centres]``): one port over the direct centre and a provincial platform.

A head office's agent may reach some centres directly (``[centre]``, RegBridge's API) and others through
a provincial 总对总 platform (``[platform]``, docs/dialects.md). :class:`RoutedCentre` is the
:class:`~agent.centre.port.CentrePort` the stages see: each application goes where the 行政区划代码 of
its first 不动产单元号 (its first 6 digits) sends it — the platform for a district in the table, the
direct centre for any other — and every later call about it follows it there:

- by application id, certificate id or reference: the district the agent recorded for it (``locate``,
  answered from the state store by the caller), else the direct centre;
- a sealed notice or 在线核验 (no application named): the direct centre first, the platform when the
  direct centre does not know it;
- a 登记资料查询 by its unit's district (by 证书号 or 坐落: the direct centre); a receipt (票据) by payment
  id: the direct centre first, then the platform;
- the event feed and webhooks: the direct centre (the platform has none);
- operators: both, deduplicated; the channel is open only when both take the bank's requests.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

import sdk
from agent.centre.port import CentrePort
from sdk.models import (
    Application,
    ApplicationRecord,
    EventPage,
    FeeNotice,
    Material,
    Operator,
    Payment,
    PaymentReceipt,
    PropertyQuery,
    PropertyQueryResult,
    SignedCertificateMetadata,
    SignedNoticeMetadata,
    Supplement,
    VerificationResult,
)

__all__ = ["Locate", "RoutedCentre"]

T = TypeVar("T")

#: what the agent knows of an id: ``(kind, id)`` with kind ``application``, ``certificate`` or ``reference`` →
#: the 行政区划代码 of the application's first unit, or None when it knows nothing of it
Locate = Callable[[str, str], str | None]


class RoutedCentre:
    """:class:`~agent.centre.port.CentrePort` over ``direct`` and ``platform``, routed by district.

    Args:
        direct: the centre of ``[centre]``.
        platform: the platform of ``[platform]``.
        districts: the 行政区划代码 routed to the platform (``[platform.centres]``).
        locate: the district of an application the agent created (see :data:`Locate`).
    """

    def __init__(self, direct: CentrePort, platform: CentrePort, districts: Collection[str], locate: Locate) -> None:
        self.direct, self.platform = direct, platform
        self.districts = frozenset(districts)
        self.locate = locate

    def _by(self, district: str | None) -> CentrePort:
        return self.platform if district is not None and district in self.districts else self.direct

    def _of(self, kind: str, key: str) -> CentrePort:
        return self._by(self.locate(kind, key))

    # --- submit ----------------------------------------------------------------------------------

    def create(self, application: Application, *, idempotency_key: str) -> ApplicationRecord:
        district = application.properties[0].unit_id[:6] if application.properties else None
        return self._by(district).create(application, idempotency_key=idempotency_key)

    def upload_material(self, application_id: str, material: Material, content: bytes) -> ApplicationRecord:
        return self._of("application", application_id).upload_material(application_id, material, content)

    def submit(self, application_id: str, *, idempotency_key: str) -> ApplicationRecord:
        return self._of("application", application_id).submit(application_id, idempotency_key=idempotency_key)

    def supplement(self, application_id: str, supplement: Supplement, *, idempotency_key: str) -> ApplicationRecord:
        port = self._of("application", application_id)
        return port.supplement(application_id, supplement, idempotency_key=idempotency_key)

    def withdraw(self, application_id: str, reason: str, *, idempotency_key: str) -> ApplicationRecord:
        return self._of("application", application_id).withdraw(application_id, reason, idempotency_key=idempotency_key)

    # --- query -----------------------------------------------------------------------------------

    def application(self, application_id: str) -> ApplicationRecord:
        return self._of("application", application_id).application(application_id)

    def find(self, reference: str) -> ApplicationRecord | None:
        return self._of("reference", reference).find(reference)

    def channel_open(self) -> bool:
        return self.direct.channel_open() and self.platform.channel_open()

    # --- events ----------------------------------------------------------------------------------

    def events(self, *, after: str | None, limit: int) -> EventPage:
        return self.direct.events(after=after, limit=limit)

    def set_webhook(self, url: str) -> None:
        self.direct.set_webhook(url)

    # --- fees, queries, accounts -----------------------------------------------------------------

    def pay(self, application_id: str, payment: Payment, *, idempotency_key: str) -> PaymentReceipt:
        return self._of("application", application_id).pay(application_id, payment, idempotency_key=idempotency_key)

    def fee_notice(self, application_id: str) -> FeeNotice:
        return self._of("application", application_id).fee_notice(application_id)

    def _either(self, call: Callable[[CentrePort], T]) -> T:
        """``call`` at the direct centre, and at the platform when the direct centre does not know the id."""
        try:
            return call(self.direct)
        except sdk.NotFound:
            return call(self.platform)

    def receipt(self, payment_id: str) -> PaymentReceipt:
        return self._either(lambda port: port.receipt(payment_id))

    def query_property(
        self, query: PropertyQuery, *, idempotency_key: str, institution_uscc: str | None = None
    ) -> PropertyQueryResult:
        """By the unit's district when the query names a unit; by 证书号 or 坐落: the direct centre."""
        district = str(query.unit_id)[:6] if query.unit_id else None
        port = self._by(district)
        return port.query_property(query, idempotency_key=idempotency_key, institution_uscc=institution_uscc)

    def operators(self, *, institution_uscc: str | None = None) -> list[Operator]:
        if institution_uscc is not None:  # a branch's own institution: only the platform acts for branches
            return self.platform.operators(institution_uscc=institution_uscc)
        found = {op.operator_id: op for op in self.platform.operators()}
        found.update({op.operator_id: op for op in self.direct.operators()})
        return list(found.values())

    # --- certificates and notices ----------------------------------------------------------------

    def certificate(self, certificate_id: str) -> SignedCertificateMetadata:
        return self._of("certificate", certificate_id).certificate(certificate_id)

    def download_certificate(self, certificate_id: str, *, expected_sha256: str) -> bytes:
        port = self._of("certificate", certificate_id)
        return port.download_certificate(certificate_id, expected_sha256=expected_sha256)

    def verify_certificate(self, licence_id: str | None = None, *, sha256: str | None = None) -> VerificationResult:
        answer = self.direct.verify_certificate(licence_id, sha256=sha256)
        return self.platform.verify_certificate(licence_id, sha256=sha256) if answer.result == "unknown" else answer

    def notice(self, notice_id: str) -> SignedNoticeMetadata:
        return self._either(lambda port: port.notice(notice_id))

    def download_notice(self, notice_id: str, *, expected_sha256: str) -> bytes:
        return self._either(lambda port: port.download_notice(notice_id, expected_sha256=expected_sha256))

    def close(self) -> None:
        try:
            self.platform.close()
        finally:
            self.direct.close()
