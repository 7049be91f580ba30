"""The routing table (``[platform.centres]``, ``[centres]``): one port over the direct centres and a platform.

A head office's agent may reach some centres directly (``[centre]``, and more in ``[centres."<prefix>"]``, each
RegBridge's API with its own credential) and others through a provincial 总对总 platform (``[platform]``,
docs/dialects.md). :class:`RoutedCentre` is the :class:`~agent.centre.port.CentrePort` the stages see: each
application goes where the 行政区划代码 of its first 不动产单元号 (its first 6 digits) sends it — the platform for
a district of its table, else the direct centre whose prefix is the longest that starts the district, else
``[centre]`` — and every later call about it follows it there:

- by application id, certificate id or reference: the district the agent recorded for it (``locate``,
  answered from the state store by the caller), else ``[centre]``;
- a sealed notice or 在线核验 (no application named): ``[centre]`` first, then each other direct centre, then
  the platform, until one knows it;
- a 登记资料查询 by its unit's district (by 证书号 or 坐落: ``[centre]``); a receipt (票据) by payment id: as a
  sealed notice;
- the event feed: every direct centre's, read together under one cursor (``{"": [centre]'s, "<prefix>": …}`` as
  JSON; a plain cursor kept from before ``[centres]`` is ``[centre]``'s); the platform has none; webhooks:
  ``[centre]``'s;
- operators: every centre's, deduplicated; the channel is open only when every centre takes the bank's requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
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
    """:class:`~agent.centre.port.CentrePort` over the direct centres and a platform, routed by district.

    Args:
        direct: the centre of ``[centre]``.
        platform: the platform of ``[platform]`` (None: no platform).
        districts: the 行政区划代码 routed to the platform (``[platform.centres]``).
        locate: the district of an application the agent created (see :data:`Locate`).
        directs: the other direct centres by the start of their districts' codes (``[centres."<prefix>"]``).
    """

    def __init__(
        self,
        direct: CentrePort,
        platform: CentrePort | None,
        districts: Collection[str],
        locate: Locate,
        directs: Mapping[str, CentrePort] | None = None,
    ) -> None:
        self.direct, self.platform = direct, platform
        self.districts = frozenset(districts) if platform is not None else frozenset()
        self.locate = locate
        self.directs = dict(sorted((directs or {}).items(), key=lambda kv: -len(kv[0])))  # longest prefix first
        #: every port, [centre] first and the platform last (the order a look-up without a district tries)
        self.ports: list[CentrePort] = [direct, *self.directs.values(), *([platform] if platform else [])]

    def _by(self, district: str | None) -> CentrePort:
        if district is None:
            return self.direct
        if self.platform is not None and district in self.districts:
            return self.platform
        return next((port for prefix, port in self.directs.items() if district.startswith(prefix)), self.direct)

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
        return all(port.channel_open() for port in self.ports)

    # --- events ----------------------------------------------------------------------------------

    @staticmethod
    def _cursors(after: str | None) -> dict[str, str | None]:
        """Each direct centre's cursor (``""``: ``[centre]``'s) in the feed cursor ``after``."""
        if after and after.startswith("{"):
            try:
                kept = json.loads(after)
            except ValueError:
                kept = None
            if isinstance(kept, dict):
                return {str(k): str(v) if v is not None else None for k, v in kept.items()}
        return {"": after}  # none yet, or a cursor of [centre]'s own kept from before [centres]

    def events(self, *, after: str | None, limit: int) -> EventPage:
        """Every direct centre's feed after its own cursor, one page of each; the platform has none."""
        cursors = self._cursors(after)
        if not self.directs:  # [centre]'s feed alone, its own cursor as it gives it
            return self.direct.events(after=cursors.get(""), limit=limit)
        feeds: list[tuple[str, CentrePort]] = [("", self.direct), *self.directs.items()]
        pages = [(key, port.events(after=cursors.get(key), limit=limit)) for key, port in feeds]
        return EventPage(
            events=[event for _, page in pages for event in page.events],
            next_cursor=json.dumps({key: page.next_cursor for key, page in pages}, sort_keys=True),
            has_more=any(page.has_more for _, page in pages),
            poll_interval_seconds=min(page.poll_interval_seconds for _, page in pages),
        )

    def set_webhook(self, url: str) -> None:
        self.direct.set_webhook(url)

    # --- fees, queries, accounts -----------------------------------------------------------------

    def pay(self, application_id: str, payment: Payment, *, idempotency_key: str) -> PaymentReceipt:
        return self._of("application", application_id).pay(application_id, payment, idempotency_key=idempotency_key)

    def fee_notice(self, application_id: str) -> FeeNotice:
        return self._of("application", application_id).fee_notice(application_id)

    def _either(self, call: Callable[[CentrePort], T]) -> T:
        """``call`` at each port in turn (:attr:`ports`) until one knows the id (the last one's ``NotFound``)."""
        for port in self.ports[:-1]:
            try:
                return call(port)
            except sdk.NotFound:
                continue
        return call(self.ports[-1])

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
        if institution_uscc is not None and self.platform is not None:  # only the platform acts for branches
            return self.platform.operators(institution_uscc=institution_uscc)
        found: dict[str, Operator] = {}
        for port in reversed(self.ports):  # [centre]'s record of an account wins
            found.update({op.operator_id: op for op in port.operators()})
        return list(found.values())

    # --- certificates and notices ----------------------------------------------------------------

    def certificate(self, certificate_id: str) -> SignedCertificateMetadata:
        return self._of("certificate", certificate_id).certificate(certificate_id)

    def download_certificate(self, certificate_id: str, *, expected_sha256: str) -> bytes:
        port = self._of("certificate", certificate_id)
        return port.download_certificate(certificate_id, expected_sha256=expected_sha256)

    def verify_certificate(self, licence_id: str | None = None, *, sha256: str | None = None) -> VerificationResult:
        answer = self.direct.verify_certificate(licence_id, sha256=sha256)
        for port in self.ports[1:]:
            if answer.result != "unknown":
                break
            answer = port.verify_certificate(licence_id, sha256=sha256)
        return answer

    def notice(self, notice_id: str) -> SignedNoticeMetadata:
        return self._either(lambda port: port.notice(notice_id))

    def download_notice(self, notice_id: str, *, expected_sha256: str) -> bytes:
        return self._either(lambda port: port.download_notice(notice_id, expected_sha256=expected_sha256))

    def close(self) -> None:
        failed: list[Exception] = []
        for port in reversed(self.ports):  # one port failing to close must not leave the others open
            try:
                port.close()
            except Exception as exc:
                failed.append(exc)
        if failed:
            raise failed[0]
