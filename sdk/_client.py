"""``Client`` and ``AsyncClient``: the same logic, only the I/O differs.

The shared base turns responses into results or errors and decides about retries; each
subclass sends with its own httpx client. Resource groups (``client.applications`` …) build
:class:`~sdk._operations.Operation` objects from :mod:`sdk._endpoints` and run them.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
import platform
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, TypeVar

import httpx
import tenacity

from . import _endpoints as ep
from ._operations import Operation
from ._version import __version__
from .errors import (
    APIError,
    DigestMismatch,
    RetryBudgetExhausted,
    TimeoutError,
    TransportError,
    error_from_response,
)
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
    Supplement,
    VerificationResult,
    WebhookSubscription,
    Withdrawal,
)
from .retries import RetryPolicy, is_testing, parse_retry_after
from .signing import KeySigner, PrivateKey, RequestSigningAuth, Signer
from .waiters import WaitState

__all__ = ["DEFAULT_TIMEOUT", "AsyncClient", "Client", "Credential"]

T = TypeVar("T")
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_MAX_REDIRECTS = 3


class Credential:
    """A key id and its private key: the simplest way to give a client its identity."""

    def __init__(self, key_id: str, private_key: PrivateKey) -> None:
        self.key_id = key_id
        self.private_key = private_key

    def __repr__(self) -> str:
        return f"Credential(key_id={self.key_id!r})"

    def signer(self) -> Signer:
        return KeySigner(self.key_id, self.private_key)


def _signer_of(credential: Credential | Signer | None) -> Signer | None:
    if credential is None:
        return None
    if isinstance(credential, Credential):
        return credential.signer()
    return credential


class _BaseClient:
    """What the sync and async clients share: configuration, results, errors, retries."""

    def __init__(
        self,
        base_url: str,
        credential: Credential | Signer | None,
        retry: RetryPolicy | None,
        user_agent: str | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = _signer_of(credential)
        self.retry = retry if retry is not None else RetryPolicy()
        self._auth = RequestSigningAuth(self.signer) if self.signer else None
        self.user_agent = user_agent or (f"regbridge-sdk/{__version__} python/{platform.python_version()}")

    def _headers(self) -> dict[str, str]:
        return {"User-Agent": self.user_agent}

    def _result(self, op: Operation[T], response: httpx.Response) -> T:
        if 200 <= response.status_code < 300:
            if self.retry.budget is not None:
                self.retry.budget.refund()
            return op.parse(response)
        if response.status_code == 404 and op.none_on_404:
            return None  # type: ignore[return-value]
        raise self._error(response)

    @staticmethod
    def _error(response: httpx.Response) -> APIError:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        return error_from_response(
            response.status_code,
            body,
            request_id=response.headers.get("X-Request-Id"),
            retry_after=parse_retry_after(response.headers.get_list("Retry-After")),
        )

    def _should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, TransportError):
            return True
        if isinstance(exc, APIError) and exc.retryable:
            return exc.retry_after is None or exc.retry_after <= self.retry.max_retry_after
        return False

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, APIError) else None
        return self.retry.backoff(state.attempt_number, retry_after)

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        budget = self.retry.budget
        if budget is not None and not budget.acquire(timeout=isinstance(exc, TimeoutError)):
            raise RetryBudgetExhausted(
                "retry budget exhausted: the centre is failing; not retrying to spare it", last_error=exc
            ) from exc

    def _tenacity_args(self) -> dict[str, Any]:
        return {
            "stop": tenacity.stop_after_attempt(self.retry.max_attempts),
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(self._should_retry),
            "before_sleep": self._before_sleep,
            "reraise": True,
        }

    @staticmethod
    def _check_download(response: httpx.Response, expected_sha256: str | None) -> bytes:
        content = response.content
        digest = hashlib.sha256(content).digest()
        declared = response.headers.get("Content-Digest")
        if declared:
            expected_field = "sha-256=:" + base64.b64encode(digest).decode() + ":"
            if expected_field not in [part.strip() for part in declared.split(",")]:
                raise DigestMismatch("downloaded content does not match its Content-Digest")
        if expected_sha256 is not None and digest.hex() != expected_sha256.lower():
            raise DigestMismatch(
                f"downloaded content has sha256 {digest.hex()[:16]}…, expected {expected_sha256[:16]}…"
            )
        return content

    @staticmethod
    def _transport_error(exc: httpx.TransportError) -> TransportError:
        if isinstance(exc, httpx.TimeoutException):
            return TimeoutError(f"timed out: {type(exc).__name__}")
        return TransportError(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------- sync


class Client(_BaseClient):
    """The registration API, synchronously.

    Args:
        base_url: the centre's API root, e.g. ``https://centre.example/`` (paths start ``/v1``).
        credential: ``sdk.Credential(key_id, private_key)`` or any :class:`~sdk.signing.Signer`;
            ``None`` for the unauthenticated calls (enrolment, online verification).
        retry: the retry policy; one :class:`~sdk.retries.RetryBudget` per client.
        timeout: httpx timeout.
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
        verify: TLS verification, as httpx takes it (a CA bundle path, an SSLContext, a bool).
    """

    def __init__(
        self,
        base_url: str,
        credential: Credential | Signer | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        verify: Any = True,
        user_agent: str | None = None,
    ) -> None:
        super().__init__(base_url, credential, retry, user_agent)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=self._headers(),
            timeout=timeout,
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )
        self.applications = Applications(self)
        self.events = Events(self)
        self.certificates = Certificates(self)
        self.fees = Fees(self)
        self.properties = Properties(self)
        self.institution = Institution(self)
        self.credentials = Credentials(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _sleep(self, seconds: float) -> None:
        if self.retry.sleep is not None:
            self.retry.sleep(seconds)
        elif not is_testing() and seconds > 0:
            time.sleep(seconds)

    def _send(self, request: httpx.Request, signed: bool) -> httpx.Response:
        try:
            return self._http.send(request, auth=self._auth if signed and self._auth else None)
        except httpx.TransportError as e:
            raise self._transport_error(e) from e

    def run(self, op: Operation[T]) -> T:
        """Send one operation, retrying what may succeed later, and return its result."""
        request = op.build(self._http)
        for attempt in tenacity.Retrying(sleep=self._sleep, **self._tenacity_args()):
            with attempt:
                return self._result(op, self._send(request, op.signed))
        raise AssertionError("unreachable")  # pragma: no cover

    def download(self, path: str, expected_sha256: str | None = None) -> bytes:
        """GET ``path``, follow its redirect to the content, check the digests, return the bytes."""

        def once() -> bytes:
            response = self._send(self._http.build_request("GET", path), True)
            hops = 0
            while response.is_redirect and hops < _MAX_REDIRECTS:
                location = response.headers["Location"]
                response = self._send(self._http.build_request("GET", location), False)
                hops += 1
            if response.status_code != 200:
                raise self._error(response)
            return self._check_download(response, expected_sha256)

        for attempt in tenacity.Retrying(sleep=self._sleep, **self._tenacity_args()):
            with attempt:
                return once()
        raise AssertionError("unreachable")  # pragma: no cover


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
    def enroll(self, token: str, public_key: PublicJwk, *, label: str = "agent") -> EnrolmentResult:
        """Register a public key with a one-time enrolment token (no credential needed)."""
        return self._client.run(ep.enroll(token, public_key, label))

    def list(self) -> builtins.list[CredentialRecord]:
        return self._client.run(ep.list_credentials())

    def rotate(
        self,
        public_key: PublicJwk,
        *,
        grace_seconds: int = 86400,
        label: str = "agent",
        idempotency_key: str | None = None,
    ) -> CredentialRecord:
        """Register a new key, authorised by the current one; the old key ends after the grace."""
        rotation = Rotation(public_key=public_key, grace_seconds=grace_seconds, label=label)
        return self._client.run(ep.rotate_credential(rotation, idempotency_key))

    def revoke(
        self, key_id: str, *, reason: str = "revoked by the institution", idempotency_key: str | None = None
    ) -> CredentialRecord:
        return self._client.run(ep.revoke_credential(key_id, Revocation(reason=reason), idempotency_key))


# --------------------------------------------------------------------------------- async


class AsyncClient(_BaseClient):
    """The registration API, asynchronously; the same resource groups with ``await``."""

    def __init__(
        self,
        base_url: str,
        credential: Credential | Signer | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: Any = True,
        user_agent: str | None = None,
    ) -> None:
        super().__init__(base_url, credential, retry, user_agent)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers(),
            timeout=timeout,
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )
        self.applications = AsyncApplications(self)
        self.events = AsyncEvents(self)
        self.certificates = AsyncCertificates(self)
        self.fees = AsyncFees(self)
        self.properties = AsyncProperties(self)
        self.institution = AsyncInstitution(self)
        self.credentials = AsyncCredentials(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _sleep(self, seconds: float) -> None:
        if self.retry.sleep is not None:
            self.retry.sleep(seconds)
        elif not is_testing() and seconds > 0:
            await asyncio.sleep(seconds)

    async def _send(self, request: httpx.Request, signed: bool) -> httpx.Response:
        try:
            return await self._http.send(request, auth=self._auth if signed and self._auth else None)
        except httpx.TransportError as e:
            raise self._transport_error(e) from e

    async def run(self, op: Operation[T]) -> T:
        request = op.build(self._http)
        async for attempt in tenacity.AsyncRetrying(sleep=self._sleep, **self._tenacity_args()):
            with attempt:
                return self._result(op, await self._send(request, op.signed))
        raise AssertionError("unreachable")  # pragma: no cover

    async def download(self, path: str, expected_sha256: str | None = None) -> bytes:
        async def once() -> bytes:
            response = await self._send(self._http.build_request("GET", path), True)
            hops = 0
            while response.is_redirect and hops < _MAX_REDIRECTS:
                location = response.headers["Location"]
                response = await self._send(self._http.build_request("GET", location), False)
                hops += 1
            if response.status_code != 200:
                raise self._error(response)
            return self._check_download(response, expected_sha256)

        async for attempt in tenacity.AsyncRetrying(sleep=self._sleep, **self._tenacity_args()):
            with attempt:
                return await once()
        raise AssertionError("unreachable")  # pragma: no cover


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
    async def enroll(self, token: str, public_key: PublicJwk, *, label: str = "agent") -> EnrolmentResult:
        return await self._client.run(ep.enroll(token, public_key, label))

    async def list(self) -> builtins.list[CredentialRecord]:
        return await self._client.run(ep.list_credentials())

    async def rotate(
        self,
        public_key: PublicJwk,
        *,
        grace_seconds: int = 86400,
        label: str = "agent",
        idempotency_key: str | None = None,
    ) -> CredentialRecord:
        rotation = Rotation(public_key=public_key, grace_seconds=grace_seconds, label=label)
        return await self._client.run(ep.rotate_credential(rotation, idempotency_key))

    async def revoke(
        self, key_id: str, *, reason: str = "revoked by the institution", idempotency_key: str | None = None
    ) -> CredentialRecord:
        return await self._client.run(ep.revoke_credential(key_id, Revocation(reason=reason), idempotency_key))
