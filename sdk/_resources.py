"""The synchronous client's resource groups (``client.applications`` …), its poller and its event pager."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from . import _endpoints as ep
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
    from ._client import Client


class _Group:
    def __init__(self, client: Client) -> None:
        self._client = client


class Applications(_Group):
    """``client.applications``: create, upload, submit, get, supplement, withdraw, wait."""

    def create(self, application: Application, *, idempotency_key: str | None = None) -> ApplicationRecord:
        """Create a draft application (status ``draft``); upload its materials, then submit."""
        return self._client.run(ep.create_application(application, idempotency_key))

    def upload_material(self, application_id: str, material: Material, content: bytes) -> ApplicationRecord:
        """Upload one declared material; refused locally and by the centre if it differs."""
        return self._client.run(ep.upload_material(application_id, material, content))

    def submit(self, application_id: str, *, idempotency_key: str | None = None) -> ApplicationRecord:
        return self._client.run(ep.submit_application(application_id, idempotency_key))

    def get(self, application_id: str) -> ApplicationRecord:
        return self._client.run(ep.get_application(application_id))

    def find(self, client_reference: str) -> ApplicationRecord | None:
        """The application with this ``client_reference``, or ``None``."""
        return self._client.run(ep.find_application(client_reference))

    def list(
        self, *, statuses: Iterable[ApplicationStatus] = (), after: str | None = None, limit: int = 100
    ) -> builtins.list[ApplicationRecord]:
        return self._client.run(ep.list_applications(statuses, after, limit))

    def supplement(
        self, application_id: str, supplement: Supplement, *, idempotency_key: str | None = None
    ) -> ApplicationRecord:
        """Answer a 补正; upload the supplement's new materials afterwards."""
        return self._client.run(ep.supplement_application(application_id, supplement, idempotency_key))

    def withdraw(self, application_id: str, reason: str, *, idempotency_key: str | None = None) -> ApplicationRecord:
        return self._client.run(ep.withdraw_application(application_id, Withdrawal(reason=reason), idempotency_key))

    def begin_wait(
        self,
        application_id: str,
        *,
        until: Iterable[ApplicationStatus] | None = None,
        timeout: float | None = None,
    ) -> ApplicationPoller:
        """A poller that waits until the application reaches one of ``until`` (default: final)."""
        return ApplicationPoller(self._client, WaitState.start(application_id, until, timeout))

    def resume_wait(self, continuation_token: str) -> ApplicationPoller:
        """Resume a waiter from ``poller.continuation_token()`` saved by an earlier process."""
        return ApplicationPoller(self._client, WaitState.from_token(continuation_token))

    def wait(
        self,
        application_id: str,
        *,
        until: Iterable[ApplicationStatus] | None = None,
        timeout: float | None = None,
    ) -> ApplicationRecord:
        return self.begin_wait(application_id, until=until, timeout=timeout).result()


class ApplicationPoller:
    """Polls an application at the centre's hinted interval until it reaches a target status."""

    def __init__(self, client: Client, state: WaitState) -> None:
        self._client = client
        self.state = state

    def poll(self) -> ApplicationRecord:
        request = ep.get_application(self.state.application_id)
        record = self._client.run(request)
        self.state.observe(record)
        return record

    def done(self) -> bool:
        return self.state.done()

    def continuation_token(self) -> str:
        return self.state.to_token()

    def result(self) -> ApplicationRecord:
        """Poll until done; raises ``builtins.TimeoutError`` when the deadline passes first."""
        while True:
            record = self.poll()
            if self.done():
                return record
            delay = self.state.next_delay(None)
            remaining = self.state.remaining()
            if remaining is not None and remaining <= 0:
                raise builtins_timeout(self.state)
            self._client._sleep(min(delay, remaining) if remaining is not None else delay)


def builtins_timeout(state: WaitState) -> Exception:
    return builtins.TimeoutError(
        f"application {state.application_id} still {state.last_status} at the deadline; "
        f"resume with token {state.to_token()}"
    )


class Events(_Group):
    """``client.events``: the feed by cursor."""

    def list(self, *, after: str | None = None, limit: int = 100) -> EventPage:
        return self._client.run(ep.list_events(after, limit))

    def pager(self, *, after: str | None = None, limit: int = 100) -> EventPager:
        return EventPager(self._client, after, limit)


class EventPager:
    """Iterates the feed from a cursor to its current end; ``cursor`` advances per page.

    Persist ``cursor`` only after the events of a page are handled: the feed is at-least-once,
    so events after the last persisted cursor come again.
    """

    def __init__(self, client: Client, after: str | None, limit: int) -> None:
        self._client = client
        self.cursor = after
        self.limit = limit
        self.poll_interval_seconds: int | None = None

    def pages(self) -> Iterator[EventPage]:
        while True:
            page = self._client.run(ep.list_events(self.cursor, self.limit))
            self.poll_interval_seconds = page.poll_interval_seconds
            yield page
            self.cursor = page.next_cursor
            if not page.has_more:
                return

    def __iter__(self) -> Iterator[Event]:
        for page in self.pages():
            yield from page.events


class Certificates(_Group):
    """``client.certificates``: signed metadata, content, online verification."""

    def get(self, certificate_id: str) -> SignedCertificateMetadata:
        return self._client.run(ep.get_certificate(certificate_id))

    def download(self, certificate_id: str, *, expected_sha256: str | None = None) -> bytes:
        """The certificate file, after following the redirect and checking its digests."""
        return self._client.download(ep.certificate_content_path(certificate_id), expected_sha256)

    def verify(self, *, licence_id: str | None = None, sha256: str | None = None) -> VerificationResult:
        """在线核验 by 证照标识 or by the file's SHA-256."""
        return self._client.run(ep.verify_certificate(licence_id, sha256))

    def notice(self, notice_id: str) -> SignedNoticeMetadata:
        """A sealed notice's metadata (受理凭证, 补正通知书…), signed by the centre (docs/api.md §9a)."""
        return self._client.run(ep.get_notice(notice_id))

    def download_notice(self, notice_id: str, *, expected_sha256: str | None = None) -> bytes:
        """The sealed notice file, after following the redirect and checking its digests."""
        return self._client.download(ep.notice_content_path(notice_id), expected_sha256)


class Fees(_Group):
    def get(self, application_id: str) -> FeeNotice:
        return self._client.run(ep.get_fees(application_id))

    def pay(self, application_id: str, payment: Payment, *, idempotency_key: str | None = None) -> PaymentReceipt:
        return self._client.run(ep.pay_fees(application_id, payment, idempotency_key))

    def receipt(self, payment_id: str) -> PaymentReceipt:
        return self._client.run(ep.get_receipt(payment_id))


class Properties(_Group):
    def query(self, query: PropertyQuery, *, idempotency_key: str | None = None) -> PropertyQueryResult:
        """登记资料查询, with the applicant's authorisation; the centre records every query."""
        return self._client.run(ep.query_property(query, idempotency_key))


class Institution(_Group):
    def get(self) -> InstitutionProfile:
        return self._client.run(ep.get_institution())

    def file(self, filing: InstitutionFiling, *, idempotency_key: str | None = None) -> InstitutionProfile:
        """银行信息备案: declare the institution's documents (upload each afterwards)."""
        return self._client.run(ep.file_institution(filing, idempotency_key))

    def upload_document(self, material: Material, content: bytes) -> InstitutionProfile:
        return self._client.run(ep.upload_institution_document(material, content))

    def set_webhook(self, url: str) -> InstitutionProfile:
        return self._client.run(ep.set_webhook(WebhookSubscription(url=url)))

    def operators(self) -> builtins.list[Operator]:
        return self._client.run(ep.list_operators())


class Credentials(_Group):
    def enroll(
        self, token: str, public_key: PublicJwk, *, label: str = "agent", certificate_request: str | None = None,
        encryption_key: PublicJwk | None = None,
    ) -> EnrolmentResult:
        """Register a public key with a one-time enrolment token (no credential needed); with a PEM
        PKCS#10 ``certificate_request`` for it (:func:`sdk.csr.build_request`), the answer carries the
        centre's X.509 certificate of the key. ``encryption_key`` (gm): the bank's SM2 encryption public
        key, to which a centre asking for the personal-field envelope seals its answers and webhooks."""
        return self._client.run(ep.enroll(token, public_key, label, certificate_request, encryption_key))

    def list(self) -> builtins.list[CredentialRecord]:
        return self._client.run(ep.list_credentials())

    def rotate(
        self,
        public_key: PublicJwk,
        *,
        grace_seconds: int = 86400,
        label: str = "agent",
        idempotency_key: str | None = None,
        certificate_request: str | None = None,
        encryption_key: PublicJwk | None = None,
    ) -> CredentialRecord:
        """Register a new key, authorised by the current one; the old key ends after the grace. ``encryption_key``
        (gm): the bank's new SM2 encryption public key, replacing the one the centre seals to."""
        rotation = Rotation(
            public_key=public_key, grace_seconds=grace_seconds, label=label, certificate_request=certificate_request,
            encryption_key=encryption_key,
        )  # fmt: skip
        return self._client.run(ep.rotate_credential(rotation, idempotency_key))

    def revoke(
        self, key_id: str, *, reason: str = "revoked by the institution", idempotency_key: str | None = None
    ) -> CredentialRecord:
        return self._client.run(ep.revoke_credential(key_id, Revocation(reason=reason), idempotency_key))


# --------------------------------------------------------------------------------- async
