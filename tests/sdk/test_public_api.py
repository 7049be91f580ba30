"""The SDK's public face is pinned, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import sdk

PUBLIC = {
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
    "RotatingSigner",
    "NotFound",
    "OperatorNotAuthorised",
    "PayloadMismatch",
    "PermissionDenied",
    "RateLimited",
    "RegBridgeError",
    "RetryBudget",
    "RetryBudgetExhausted",
    "RetryPolicy",
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
}


def test_public_names_are_pinned() -> None:
    assert set(sdk.__all__) == PUBLIC
    for name in sdk.__all__:
        assert hasattr(sdk, name), name


def test_every_error_is_a_regbridge_error() -> None:
    for name in sdk.errors.__all__:
        obj = getattr(sdk.errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, sdk.RegBridgeError), name
            assert name in sdk.errors.__doc__, f"{name} is missing from the drawn tree"


def test_models_all_is_complete() -> None:
    import sdk.models as models

    exported = set(models.__all__)
    for name in (
        "Application",
        "ApplicationRecord",
        "MortgageFirstRegistration",
        "Event",
        "FeeNotice",
        "CertificateMetadata",
        "PropertyQuery",
        "Problem",
        "Supplement",
        "PublicJwk",
    ):
        assert name in exported


def test_import_sdk_pulls_in_no_agent_or_sandbox_dependency() -> None:
    code = (
        "import sys, sdk, sdk.models, sdk.webhooks;"
        "heavy = {'watchdog', 'apscheduler', 'fastapi', 'keyring', 'uvicorn', 'typer', 'openpyxl', 'pyhanko',"
        " 'agent', 'sandbox', 'connectors'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sdk_imports_nothing_from_the_rest_of_the_project() -> None:
    import pathlib
    import re

    root = pathlib.Path(sdk.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+(agent|sandbox|connectors|installer)\b", text, re.M), path


def test_credential_hides_its_private_key() -> None:
    from sdk.signing import generate_private_key

    credential = sdk.Credential("bank-key-1", generate_private_key())
    assert repr(credential) == "Credential(key_id='bank-key-1')"
    assert credential.signer().key_id == "bank-key-1"
