"""The first adapter of the centre port: RegBridge's own API, through ``sdk.Client``."""

from __future__ import annotations

import sdk
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

__all__ = ["ApiCentre"]


class ApiCentre:
    """:class:`~agent.centre.port.CentrePort` over an ``sdk.Client`` (signed, retried, idempotent requests).

    Args:
        client: the SDK client for the configured centre; its resource groups are looked up at each
            call, so a test may replace one (``client.applications = …``).
    """

    def __init__(self, client: sdk.Client) -> None:
        self.client = client

    def create(self, application: Application, *, idempotency_key: str) -> ApplicationRecord:
        return self.client.applications.create(application, idempotency_key=idempotency_key)

    def upload_material(self, application_id: str, material: Material, content: bytes) -> ApplicationRecord:
        return self.client.applications.upload_material(application_id, material, content)

    def submit(self, application_id: str, *, idempotency_key: str) -> ApplicationRecord:
        return self.client.applications.submit(application_id, idempotency_key=idempotency_key)

    def supplement(self, application_id: str, supplement: Supplement, *, idempotency_key: str) -> ApplicationRecord:
        return self.client.applications.supplement(application_id, supplement, idempotency_key=idempotency_key)

    def withdraw(self, application_id: str, reason: str, *, idempotency_key: str) -> ApplicationRecord:
        return self.client.applications.withdraw(application_id, reason, idempotency_key=idempotency_key)

    def application(self, application_id: str) -> ApplicationRecord:
        return self.client.applications.get(application_id)

    def find(self, reference: str) -> ApplicationRecord | None:
        return self.client.applications.find(reference)

    def channel_open(self) -> bool:
        """The channel is open and the 银行信息备案 complete: the centre takes the bank's applications."""
        profile = self.client.institution.get()
        return profile.channel.status == "open" and profile.filing_state.status == "complete"

    def events(self, *, after: str | None, limit: int) -> EventPage:
        return self.client.events.list(after=after, limit=limit)

    def set_webhook(self, url: str) -> None:
        self.client.institution.set_webhook(url)

    def pay(self, application_id: str, payment: Payment, *, idempotency_key: str) -> PaymentReceipt:
        return self.client.fees.pay(application_id, payment, idempotency_key=idempotency_key)

    def fee_notice(self, application_id: str) -> FeeNotice:
        return self.client.fees.get(application_id)

    def receipt(self, payment_id: str) -> PaymentReceipt:
        return self.client.fees.receipt(payment_id)

    def operators(self, *, institution_uscc: str | None = None) -> list[Operator]:
        # a direct centre knows this agent as the one institution it enrolled: its accounts are the list
        return self.client.institution.operators()

    def query_property(
        self, query: PropertyQuery, *, idempotency_key: str, institution_uscc: str | None = None
    ) -> PropertyQueryResult:
        """The enrolled institution's query (a direct centre: the agent is enrolled as one institution)."""
        return self.client.properties.query(query, idempotency_key=idempotency_key)

    def certificate(self, certificate_id: str) -> SignedCertificateMetadata:
        return self.client.certificates.get(certificate_id)

    def download_certificate(self, certificate_id: str, *, expected_sha256: str) -> bytes:
        return self.client.certificates.download(certificate_id, expected_sha256=expected_sha256)

    def verify_certificate(self, licence_id: str | None = None, *, sha256: str | None = None) -> VerificationResult:
        return self.client.certificates.verify(licence_id=licence_id, sha256=sha256)

    def notice(self, notice_id: str) -> SignedNoticeMetadata:
        return self.client.certificates.notice(notice_id)

    def download_notice(self, notice_id: str, *, expected_sha256: str) -> bytes:
        return self.client.certificates.download_notice(notice_id, expected_sha256=expected_sha256)

    def close(self) -> None:
        self.client.close()
