"""Every error the SDK raises, in one tree.

    RegBridgeError
    ├── TransportError                  the request may not have reached the centre
    │   └── TimeoutError                (connect, read, write or pool timeout)
    ├── APIError                        the centre answered with an error (status, code, request id, errors)
    │   ├── ValidationFailed            400/422  the body breaks the contract; ``errors`` lists all
    │   │   └── EsignatureRefused       422      an applicant's e-signature failed the centre's check
    │   ├── AuthenticationFailed        401      signature, key, digest, replay, clock
    │   │   └── ClockSkew               401      ``created`` outside the centre's window
    │   ├── PermissionDenied            403      the credential may not do this
    │   │   ├── ChannelSuspended        403      the centre closed the institution's channel (关闭端口)
    │   │   ├── OperatorNotAuthorised   403      the operator is unknown, deactivated or another institution's
    │   │   └── FilingRequired          403      no complete 银行信息备案 (营业执照, 金融许可证) at the centre
    │   │       └── FilingExpired       403      a filed document is past its validity
    │   ├── NotFound                    404
    │   ├── Conflict                    409      the state does not allow it (e.g. submit twice)
    │   │   ├── IdempotencyConflict     409      same Idempotency-Key, different body
    │   │   └── FeeNotDue               409      no fee is due (not recorded yet, refused, voided, cancelled)
    │   ├── PayloadMismatch             422      an upload's digest or size differs from its declaration
    │   ├── RateLimited                 429      ``retry_after`` seconds
    │   └── ServerError                 5xx
    ├── SignatureError                  a webhook delivery or signed document did not verify
    ├── DigestMismatch                  downloaded content differs from its declared digest
    ├── RetryBudgetExhausted            retries were refused to protect the centre
    └── ContinuationTokenError          a waiter's token is malformed or of another version

``APIError.retryable`` says whether the same request may succeed later. Messages never contain
personal data: the centre's detail texts are masked before they are stored here.
"""

from __future__ import annotations

from typing import Any

from .models.problems import ErrorDetail, Problem
from .privacy import mask_text

__all__ = [
    "APIError",
    "AuthenticationFailed",
    "ChannelSuspended",
    "ClockSkew",
    "Conflict",
    "ContinuationTokenError",
    "DigestMismatch",
    "EsignatureRefused",
    "FeeNotDue",
    "FilingExpired",
    "FilingRequired",
    "IdempotencyConflict",
    "NotFound",
    "OperatorNotAuthorised",
    "PayloadMismatch",
    "PermissionDenied",
    "RateLimited",
    "RegBridgeError",
    "RetryBudgetExhausted",
    "ServerError",
    "SignatureError",
    "TimeoutError",
    "TransportError",
    "ValidationFailed",
    "error_from_response",
]


class RegBridgeError(Exception):
    """The base of every error raised by the SDK."""


class TransportError(RegBridgeError):
    """The request failed on the way; it may or may not have reached the centre."""


class TimeoutError(TransportError):
    """A connect, read, write or pool timeout."""


class SignatureError(RegBridgeError):
    """A signature from the centre (webhook, metadata) did not verify."""


class DigestMismatch(RegBridgeError):
    """Downloaded content does not match the digest the centre declared."""


class RetryBudgetExhausted(RegBridgeError):
    """The client's retry budget is spent: retrying now would add to an outage."""

    def __init__(self, message: str, *, last_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_error = last_error


class ContinuationTokenError(RegBridgeError):
    """A waiter's continuation token cannot be read."""


class APIError(RegBridgeError):
    """The centre answered with an error."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        request_id: str | None = None,
        errors: list[ErrorDetail] | None = None,
        retry_after: float | None = None,
        problem: Problem | None = None,
    ) -> None:
        super().__init__(mask_text(message))
        self.status = status
        self.code = code
        self.request_id = request_id
        self.errors = [ErrorDetail(code=e.code, detail=mask_text(e.detail), pointer=e.pointer) for e in errors or []]
        self.retry_after = retry_after
        self.problem = problem

    def __str__(self) -> str:
        text = f"{self.args[0]} (HTTP {self.status}, code {self.code}"
        if self.request_id:
            text += f", request {self.request_id}"
        text += ")"
        for e in self.errors:
            text += f"\n  - {e.pointer or '(body)'}: {e.code}: {e.detail}"
        return text


class ValidationFailed(APIError):
    """The request breaks the contract; ``errors`` lists every problem with a JSON pointer."""


class AuthenticationFailed(APIError):
    """The centre did not accept the request's signature or credential."""


class ClockSkew(AuthenticationFailed):
    """The signature's ``created`` time is outside the centre's window: fix the clock."""


class PermissionDenied(APIError):
    """The credential is valid but may not do this."""


class ChannelSuspended(PermissionDenied):
    """The centre has closed this institution's channel; submissions must wait."""


class OperatorNotAuthorised(PermissionDenied):
    """The declaration's ``operator_id`` is not an active 业务办理人员 account of this institution
    (seed 001 §4.2). Refused before 受理: no notice number is spent; fix the operator and submit again."""


class EsignatureRefused(ValidationFailed):
    """An applicant's e-signature failed the centre's check on receipt (seed 003 细则 (四)): signed by a CA the
    centre does not trust, altered after signing, over another document than the one referenced, or by someone
    other than the applicant named. ``errors`` has one entry per failed check (``code`` from
    :data:`sdk.esign.ESIGNATURE_CODES`, pointer ``/declaration/signatures/N``); refused before 受理."""


class FilingRequired(PermissionDenied):
    """The centre holds no complete 银行信息备案 for this institution (seed 001 §5.2): its 营业执照 or
    金融许可证 is not filed or not uploaded. Refused before 受理; file them once (``institution.file``)."""


class FilingExpired(FilingRequired):
    """A document of the institution's 银行信息备案 is past its ``valid_until``: file the renewed one."""


class NotFound(APIError):
    pass


class Conflict(APIError):
    """The application's state does not allow this operation."""


class IdempotencyConflict(Conflict):
    """The Idempotency-Key was used before with a different request."""


class FeeNotDue(Conflict):
    """No fee is due for this application: not recorded (登簿) yet, refused, withdrawn, or voided (seed 001 §3)."""


class PayloadMismatch(APIError):
    """An upload's SHA-256 or size differs from what its material declared."""


class RateLimited(APIError):
    retryable = True


class ServerError(APIError):
    retryable = True


_BY_CODE: dict[str, type[APIError]] = {
    "channel_suspended": ChannelSuspended,
    "idempotency_conflict": IdempotencyConflict,
    "clock_skew": ClockSkew,
    "signature_expired": ClockSkew,
    "payload_mismatch": PayloadMismatch,
    "operator_not_authorised": OperatorNotAuthorised,
    "esignature_refused": EsignatureRefused,
    "filing_required": FilingRequired,
    "filing_expired": FilingExpired,
    "fee_not_due": FeeNotDue,
}
# a 409 that clears by itself: the first request with the same key is still being processed
_RETRYABLE_CODES = frozenset({"idempotency_in_progress"})
_BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationFailed,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
}


def error_from_response(
    status: int, body: Any, *, request_id: str | None = None, retry_after: float | None = None
) -> APIError:
    """Map an error response to the most specific ``APIError``.

    The stable ``code`` of the problem body wins over the status; an unknown code falls back
    to the status class, so a centre adding codes does not break the SDK.
    """
    problem: Problem | None = None
    if isinstance(body, dict):
        try:
            problem = Problem.model_validate(body)
        except ValueError:
            problem = None
    code = problem.code if problem else f"http_{status}"
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    message = (problem.detail or problem.title) if problem else f"HTTP {status}"
    err = cls(
        message,
        status=status,
        code=code,
        request_id=(problem.request_id if problem and problem.request_id else request_id),
        errors=problem.errors if problem else None,
        retry_after=retry_after,
        problem=problem,
    )
    if status in (408, 425) or status >= 500 or code in _RETRYABLE_CODES:
        err.retryable = True
    return err
