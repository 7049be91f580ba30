"""The asynchronous client's resource groups (``client.applications`` …), its poller and its event pager."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from . import _endpoints as ep
from ._resources import builtins_timeout
from .models import (
    Application,
    ApplicationRecord,
    ApplicationStatus,
    CredentialRecord,
    EnrolmentResult,
    Event,
    EventPage,
    FeeNotice,
    InstitutionFiling,
    InstitutionProfile,
    Material,
    Operator,
    Payment,
    PaymentReceipt,
    PropertyQuery,
    PropertyQueryResult,
    PublicJwk,
    Revocation,
    Rotation,
    SignedCertificateMetadata,
    SignedNoticeMetadata,
    Supplement,
    VerificationResult,
    WebhookSubscription,
    Withdrawal,
)
from .waiters import WaitState

if TYPE_CHECKING:
    from ._client import AsyncClient


class _AsyncGroup:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client


class AsyncApplications(_AsyncGroup):
    async def create(self, application: Application, *, idempotency_key: str | None = None) -> ApplicationRecord:
        return await self._client.run(ep.create_application(application, idempotency_key))

    async def upload_material(self, application_id: str, material: Material, content: bytes) -> ApplicationRecord:
        return await self._client.run(ep.upload_material(application_id, material, content))

    async def submit(self, application_id: str, *, idempotency_key: str | None = None) -> ApplicationRecord:
        return await self._client.run(ep.submit_application(application_id, idempotency_key))

    async def get(self, application_id: str) -> ApplicationRecord:
        return await self._client.run(ep.get_application(application_id))

    async def find(self, client_reference: str) -> ApplicationRecord | None:
        return await self._client.run(ep.find_application(client_reference))

    async def list(
        self, *, statuses: Iterable[ApplicationStatus] = (), after: str | None = None, limit: int = 100
    ) -> builtins.list[ApplicationRecord]:
        return await self._client.run(ep.list_applications(statuses, after, limit))

    async def supplement(
        self, application_id: str, supplement: Supplement, *, idempotency_key: str | None = None
    ) -> ApplicationRecord:
        return await self._client.run(ep.supplement_application(application_id, supplement, idempotency_key))

    async def withdraw(
        self, application_id: str, reason: str, *, idempotency_key: str | None = None
    ) -> ApplicationRecord:
        return await self._client.run(
            ep.withdraw_application(application_id, Withdrawal(reason=reason), idempotency_key)
        )

    def begin_wait(
        self,
        application_id: str,
        *,
        until: Iterable[ApplicationStatus] | None = None,
        timeout: float | None = None,
    ) -> AsyncApplicationPoller:
        return AsyncApplicationPoller(self._client, WaitState.start(application_id, until, timeout))

    def resume_wait(self, continuation_token: str) -> AsyncApplicationPoller:
        return AsyncApplicationPoller(self._client, WaitState.from_token(continuation_token))

    async def wait(
        self,
        application_id: str,
        *,
        until: Iterable[ApplicationStatus] | None = None,
        timeout: float | None = None,
    ) -> ApplicationRecord:
        return await self.begin_wait(application_id, until=until, timeout=timeout).result()


class AsyncApplicationPoller:
    def __init__(self, client: AsyncClient, state: WaitState) -> None:
        self._client = client
        self.state = state

    async def poll(self) -> ApplicationRecord:
        record = await self._client.run(ep.get_application(self.state.application_id))
        self.state.observe(record)
        return record

    def done(self) -> bool:
        return self.state.done()

    def continuation_token(self) -> str:
        return self.state.to_token()

    async def result(self) -> ApplicationRecord:
        while True:
            record = await self.poll()
            if self.done():
                return record
            delay = self.state.next_delay(None)
            remaining = self.state.remaining()
            if remaining is not None and remaining <= 0:
                raise builtins_timeout(self.state)
            await self._client._sleep(min(delay, remaining) if remaining is not None else delay)


class AsyncEvents(_AsyncGroup):
    async def list(self, *, after: str | None = None, limit: int = 100) -> EventPage:
        return await self._client.run(ep.list_events(after, limit))

    def pager(self, *, after: str | None = None, limit: int = 100) -> AsyncEventPager:
        return AsyncEventPager(self._client, after, limit)


class AsyncEventPager:
    def __init__(self, client: AsyncClient, after: str | None, limit: int) -> None:
        self._client = client
        self.cursor = after
        self.limit = limit
        self.poll_interval_seconds: int | None = None

    async def pages(self) -> AsyncIterator[EventPage]:
        while True:
            page = await self._client.run(ep.list_events(self.cursor, self.limit))
            self.poll_interval_seconds = page.poll_interval_seconds
            yield page
            self.cursor = page.next_cursor
            if not page.has_more:
                return

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for page in self.pages():
            for event in page.events:
                yield event


class AsyncCertificates(_AsyncGroup):
    async def get(self, certificate_id: str) -> SignedCertificateMetadata:
        return await self._client.run(ep.get_certificate(certificate_id))

    async def download(self, certificate_id: str, *, expected_sha256: str | None = None) -> bytes:
        return await self._client.download(ep.certificate_content_path(certificate_id), expected_sha256)

    async def verify(self, *, licence_id: str | None = None, sha256: str | None = None) -> VerificationResult:
        return await self._client.run(ep.verify_certificate(licence_id, sha256))

    async def notice(self, notice_id: str) -> SignedNoticeMetadata:
        return await self._client.run(ep.get_notice(notice_id))

    async def download_notice(self, notice_id: str, *, expected_sha256: str | None = None) -> bytes:
        return await self._client.download(ep.notice_content_path(notice_id), expected_sha256)


class AsyncFees(_AsyncGroup):
    async def get(self, application_id: str) -> FeeNotice:
        return await self._client.run(ep.get_fees(application_id))

    async def pay(self, application_id: str, payment: Payment, *, idempotency_key: str | None = None) -> PaymentReceipt:
        return await self._client.run(ep.pay_fees(application_id, payment, idempotency_key))

    async def receipt(self, payment_id: str) -> PaymentReceipt:
        return await self._client.run(ep.get_receipt(payment_id))


class AsyncProperties(_AsyncGroup):
    async def query(self, query: PropertyQuery, *, idempotency_key: str | None = None) -> PropertyQueryResult:
        return await self._client.run(ep.query_property(query, idempotency_key))


class AsyncInstitution(_AsyncGroup):
    async def get(self) -> InstitutionProfile:
        return await self._client.run(ep.get_institution())

    async def file(self, filing: InstitutionFiling, *, idempotency_key: str | None = None) -> InstitutionProfile:
        return await self._client.run(ep.file_institution(filing, idempotency_key))

    async def upload_document(self, material: Material, content: bytes) -> InstitutionProfile:
        return await self._client.run(ep.upload_institution_document(material, content))

    async def set_webhook(self, url: str) -> InstitutionProfile:
        return await self._client.run(ep.set_webhook(WebhookSubscription(url=url)))

    async def operators(self) -> builtins.list[Operator]:
        return await self._client.run(ep.list_operators())


class AsyncCredentials(_AsyncGroup):
    async def enroll(
        self, token: str, public_key: PublicJwk, *, label: str = "agent", certificate_request: str | None = None,
        encryption_key: PublicJwk | None = None,
    ) -> EnrolmentResult:
        return await self._client.run(ep.enroll(token, public_key, label, certificate_request, encryption_key))

    async def list(self) -> builtins.list[CredentialRecord]:
        return await self._client.run(ep.list_credentials())

    async def rotate(
        self,
        public_key: PublicJwk,
        *,
        grace_seconds: int = 86400,
        label: str = "agent",
        idempotency_key: str | None = None,
        certificate_request: str | None = None,
        encryption_key: PublicJwk | None = None,
    ) -> CredentialRecord:
        rotation = Rotation(
            public_key=public_key, grace_seconds=grace_seconds, label=label, certificate_request=certificate_request,
            encryption_key=encryption_key,
        )  # fmt: skip
        return await self._client.run(ep.rotate_credential(rotation, idempotency_key))

    async def revoke(
        self, key_id: str, *, reason: str = "revoked by the institution", idempotency_key: str | None = None
    ) -> CredentialRecord:
        return await self._client.run(ep.revoke_credential(key_id, Revocation(reason=reason), idempotency_key))
