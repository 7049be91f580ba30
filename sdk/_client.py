"""``Client`` and ``AsyncClient``: the same logic, only the I/O differs.

The shared base turns responses into results or errors and decides about retries; each
subclass sends with its own httpx client. Resource groups (``client.applications`` …, in
:mod:`sdk._resources` and :mod:`sdk._async_resources`) build :class:`~sdk._operations.Operation`
objects from :mod:`sdk._endpoints` and run them.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
import tenacity

from ._async_resources import AsyncApplicationPoller as AsyncApplicationPoller
from ._async_resources import (
    AsyncApplications,
    AsyncCertificates,
    AsyncCredentials,
    AsyncEvents,
    AsyncFees,
    AsyncInstitution,
    AsyncProperties,
)
from ._async_resources import AsyncEventPager as AsyncEventPager
from ._operations import Operation
from ._resources import ApplicationPoller as ApplicationPoller
from ._resources import Applications, Certificates, Credentials, Events, Fees, Institution, Properties
from ._resources import EventPager as EventPager
from ._version import __version__
from .errors import (
    APIError,
    DigestMismatch,
    RetryBudgetExhausted,
    SignatureError,
    TimeoutError,
    TransportError,
    error_from_response,
)
from .gm.sm2 import Sm2PrivateKey, Sm2PublicKey
from .retries import RetryPolicy, is_testing, parse_retry_after
from .signing import KeySigner, PrivateKey, RequestSigningAuth, Signer

__all__ = ["DEFAULT_TIMEOUT", "AsyncClient", "Client", "Credential", "FieldEncryption"]

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


@dataclass(frozen=True)
class FieldEncryption:
    """The personal-field envelope a gm centre asks for (its bundle's ``suite.envelope``): each party's
    name, ID number and phone in a JSON body SM4-encrypted under a fresh key wrapped with SM2 to the
    centre's encryption key (``trust.centre_encryption_key``; :mod:`sdk.gm.envelope`).

    Args:
        recipient: the centre's SM2 encryption public key.
        mode: ``SM4-GCM`` (default) or ``SM4-CBC`` where the centre needs it.
        key_layout: how the wrapped key is sent: GM/T 0009 ASN.1 (default) or raw C1C3C2.
        decryption_key: the bank's own SM2 encryption key (registered at enrolment as
            ``encryption_key``): the centre seals the personal fields of its JSON answers to it, and
            the client opens them before parsing; an answer whose envelope does not open raises
            :class:`~sdk.errors.SignatureError`.
    """

    recipient: Sm2PublicKey
    mode: Literal["SM4-GCM", "SM4-CBC"] = "SM4-GCM"
    key_layout: Literal["asn1", "c1c3c2"] = "asn1"
    decryption_key: Sm2PrivateKey | Sequence[Sm2PrivateKey] | None = field(default=None, repr=False)

    def open(self, content: bytes) -> bytes:
        """A JSON answer with its personal-field envelope opened (as it is without one).

        Raises:
            SignatureError: it carries an envelope and no ``decryption_key`` is set, or it does not open
                (sealed to another key, altered, malformed).
        """
        return open_answer(content, self.decryption_key)

    def seal(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with its personal fields encrypted (as it is when it has none)."""
        from .gm.envelope import ENVELOPE_MEMBER, personal_pointers, seal_fields

        if ENVELOPE_MEMBER in body or next(personal_pointers(body), None) is None:
            return body
        return seal_fields(body, self.recipient, mode=self.mode, key_layout=self.key_layout)


def open_answer(content: bytes, key: Sm2PrivateKey | Sequence[Sm2PrivateKey] | None) -> bytes:
    """``content`` (a JSON answer or webhook body) with its personal-field envelope opened with ``key``;
    the same bytes object when it carries none (:mod:`sdk.gm.envelope`).

    Raises:
        SignatureError: it carries an envelope and ``key`` is None, or the envelope does not open.
    """
    from .gm.envelope import ENVELOPE_MEMBER, open_fields

    try:
        document = json.loads(content)
    except ValueError:
        return content
    if not isinstance(document, dict) or not isinstance(document.get(ENVELOPE_MEMBER), dict):
        return content
    keys = [key] if isinstance(key, Sm2PrivateKey) else list(key or ())
    if not keys:
        raise SignatureError(
            "the centre sealed the personal fields to this bank's encryption key, but no decryption key is"
            " configured (FieldEncryption.decryption_key)"
        )
    refusal: Exception | None = None
    for one in keys:  # the current key first; a rotated-out one while answers sealed before the switch arrive
        try:
            opened = open_fields(document, one)
        except (ValueError, KeyError, TypeError) as e:
            refusal = refusal or e
            continue
        return json.dumps(opened, ensure_ascii=False).encode()
    raise SignatureError(f"the personal-field envelope from the centre does not open: {refusal}")


class _BaseClient:
    """What the sync and async clients share: configuration, results, errors, retries."""

    def __init__(
        self,
        base_url: str,
        credential: Credential | Signer | None,
        retry: RetryPolicy | None,
        user_agent: str | None,
        envelope: FieldEncryption | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: the personal fields of JSON bodies are SM4-encrypted to the centre with it (gm centres that ask)
        self.envelope = envelope
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
            if response.content[:1] == b"{" and b'"encryption"' in response.content:
                opened = open_answer(response.content, self.envelope.decryption_key if self.envelope else None)
                if opened is not response.content:
                    response = httpx.Response(
                        response.status_code, headers=response.headers, content=opened, request=response.request
                    )
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

    def _before_sleep(self, state: tenacity.RetryCallState, *, priority: bool = False) -> None:
        exc = state.outcome.exception() if state.outcome else None
        budget = self.retry.budget
        if budget is not None and not budget.acquire(timeout=isinstance(exc, TimeoutError), priority=priority):
            raise RetryBudgetExhausted(
                "retry budget exhausted: the centre is failing; not retrying to spare it", last_error=exc
            ) from exc

    def _tenacity_args(self, *, priority: bool = False) -> dict[str, Any]:
        return {
            "stop": tenacity.stop_after_attempt(self.retry.max_attempts),
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(self._should_retry),
            "before_sleep": functools.partial(self._before_sleep, priority=priority),
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
        envelope: FieldEncryption | None = None,
    ) -> None:
        super().__init__(base_url, credential, retry, user_agent, envelope)
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
        request = op.build(self._http, self.envelope.seal if self.envelope else None)
        for attempt in tenacity.Retrying(sleep=self._sleep, **self._tenacity_args(priority=op.priority)):
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
        envelope: FieldEncryption | None = None,
    ) -> None:
        super().__init__(base_url, credential, retry, user_agent, envelope)
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
        request = op.build(self._http, self.envelope.seal if self.envelope else None)
        async for attempt in tenacity.AsyncRetrying(sleep=self._sleep, **self._tenacity_args(priority=op.priority)):
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
