from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import httpx
import pytest

import sdk
from sdk.models import EventType
from sdk.signing import KeySigner, PublicKey, generate_private_key, sign_request

EVENT = (
    b'{"event_id":"e1","sequence":1,"type":"certificate.issued",'
    b'"occurred_at":"2026-03-05T10:00:00Z","application_id":"A-1"}'
)
URL = "http://127.0.0.1:9100/hooks/regbridge"


def _delivery(key: object, body: bytes = EVENT, **kw: object) -> httpx.Request:
    request = httpx.Request("POST", URL, headers={"Content-Type": "application/json", "Webhook-Id": "e1"}, content=body)
    sign_request(request, KeySigner("centre-webhook-1", key), **kw)  # type: ignore[arg-type]
    return request


def _verify(request: httpx.Request, keys: Mapping[str, PublicKey], body: bytes | None = None) -> sdk.models.Event:
    return sdk.verify_webhook(
        method="POST",
        url=URL,
        headers=request.headers.items(),
        body=request.content if body is None else body,
        centre_keys=keys,
    )


def test_a_genuine_delivery_verifies_and_parses() -> None:
    key = generate_private_key()
    event = _verify(_delivery(key), {"centre-webhook-1": key.public_key()})
    assert event.event_id == "e1" and event.type is EventType.CERTIFICATE_ISSUED


def test_forged_tampered_and_stale_deliveries_are_refused() -> None:
    key, other = generate_private_key(), generate_private_key()
    keys = {"centre-webhook-1": key.public_key()}
    with pytest.raises(sdk.SignatureError):
        _verify(_delivery(other), keys)  # signed by someone else
    with pytest.raises(sdk.SignatureError):
        _verify(_delivery(key), keys, body=EVENT.replace(b"A-1", b"A-2"))  # body changed in transit
    with pytest.raises(sdk.SignatureError):
        _verify(_delivery(key, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), lifetime=7200), keys)
    with pytest.raises(sdk.SignatureError, match="not an event"):
        _verify(_delivery(key, body=b'{"hello":1}'), keys)
