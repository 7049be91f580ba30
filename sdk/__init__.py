"""RegBridge SDK: the typed client of the registration API (互联网+不动产抵押登记).

    import sdk
    client = sdk.Client("https://centre.example", sdk.Credential(key_id, private_key))
    record = client.applications.create(application, idempotency_key=key)

Only httpx, pydantic, tenacity, cryptography and http-message-signatures are needed.
"""

from . import codes, errors, identifiers, models, money, privacy, retries, signing, webhooks
from ._client import (
    DEFAULT_TIMEOUT,
    ApplicationPoller,
    AsyncApplicationPoller,
    AsyncClient,
    AsyncEventPager,
    Client,
    Credential,
    EventPager,
    FieldEncryption,
)
from ._operations import new_idempotency_key
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationFailed,
    ChannelSuspended,
    ClockSkew,
    Conflict,
    ContinuationTokenError,
    DigestMismatch,
    EsignatureRefused,
    FeeNotDue,
    FilingExpired,
    FilingRequired,
    IdempotencyConflict,
    NotFound,
    OperatorNotAuthorised,
    PayloadMismatch,
    PermissionDenied,
    RateLimited,
    RegBridgeError,
    RetryBudgetExhausted,
    ServerError,
    SignatureError,
    TimeoutError,
    TransportError,
    ValidationFailed,
)
from .retries import RetryBudget, RetryPolicy
from .signing import KeySigner, RotatingSigner, Signer
from .webhooks import verify_webhook

__all__ = [
    "DEFAULT_TIMEOUT",
    "APIError",
    "ApplicationPoller",
    "AsyncApplicationPoller",
    "AsyncClient",
    "AsyncEventPager",
    "AuthenticationFailed",
    "ChannelSuspended",
    "Client",
    "ClockSkew",
    "Conflict",
    "ContinuationTokenError",
    "Credential",
    "DigestMismatch",
    "EsignatureRefused",
    "EventPager",
    "FeeNotDue",
    "FieldEncryption",
    "FilingExpired",
    "FilingRequired",
    "IdempotencyConflict",
    "KeySigner",
    "NotFound",
    "OperatorNotAuthorised",
    "PayloadMismatch",
    "PermissionDenied",
    "RateLimited",
    "RegBridgeError",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryPolicy",
    "RotatingSigner",
    "ServerError",
    "SignatureError",
    "Signer",
    "TimeoutError",
    "TransportError",
    "ValidationFailed",
    "__version__",
    "codes",
    "errors",
    "identifiers",
    "models",
    "money",
    "new_idempotency_key",
    "privacy",
    "retries",
    "signing",
    "verify_webhook",
    "webhooks",
]
