"""The agent's webhook receiver takes what an honest centre may send (issue 17 item 7).

Before the fix a delivery whose ``Content-Digest`` carried both sha-256 and sha-512, or that was
sent chunked (no Content-Length), was refused as "digest does not match". Now the digest is read as
the RFC 9530 dictionary it is (every known algorithm must match, unknown ones are ignored) and a
chunked body is read whole — within the same limit; a delivery whose sha-512 is wrong is still
refused, and a chunked body over the limit is answered 413.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import httpx

from agent.daemon.webhook import MAX_BODY, WebhookReceiver
from sdk.signing import KeySigner, sign_request
from tests.agent.conftest import Branch


def _digest(body: bytes, sha512: bytes | None = None) -> str:
    return (f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:, "
            f"sha-512=:{base64.b64encode(sha512 or hashlib.sha512(body).digest()).decode()}:")  # fmt: skip


def test_multi_algorithm_digests_and_chunked_deliveries_are_accepted(branch: Branch) -> None:
    agent = branch.agent()
    receiver = WebhookReceiver(agent.context).start()
    keys = branch.centre.centre.keys
    signer = KeySigner(keys.centre_key_id, keys.centre_key)

    def delivery(n: int) -> httpx.Request:
        event = {"event_id": f"evt_hook_{n}", "sequence": n, "type": "fee.assessed",
                 "occurred_at": "2026-11-22T00:00:00Z", "data": {}}  # fmt: skip
        body = json.dumps(event).encode()
        request = httpx.Request("POST", receiver.url, content=body, headers={"Content-Type": "application/json"})
        sign_request(request, signer)
        return request

    try:
        with httpx.Client() as http:
            both = delivery(1)
            both.headers["Content-Digest"] = _digest(both.content)
            sign_request_keep_digest(both, signer)
            assert http.send(both).status_code == 204, "sha-256 and sha-512 together"

            chunked = delivery(2)

            def pieces() -> Iterator[bytes]:
                yield chunked.content[:10]
                yield chunked.content[10:]

            headers = {k: v for k, v in chunked.headers.items() if k.lower() != "content-length"}
            assert http.post(receiver.url, content=pieces(), headers=headers).status_code == 204, "chunked"

            wrong = delivery(3)
            wrong.headers["Content-Digest"] = _digest(wrong.content, sha512=bytes(64))
            sign_request_keep_digest(wrong, signer)
            assert http.send(wrong).status_code == 401, "a wrong sha-512 beside a right sha-256"

            def huge() -> Iterator[bytes]:
                for _ in range(MAX_BODY // 65536 + 2):
                    yield b" " * 65536

            try:
                status = http.post(receiver.url, content=huge(), headers=headers).status_code
            except httpx.HTTPError:
                status = 413  # answered and closed while the rest was being sent
            assert status == 413
        assert agent.store.event_seen("evt_hook_1") and agent.store.event_seen("evt_hook_2")
        assert not agent.store.event_seen("evt_hook_3")
    finally:
        receiver.stop()
        agent.close()


def sign_request_keep_digest(request: httpx.Request, signer: KeySigner) -> None:
    """Sign as a centre that sends several digests does: over its own Content-Digest dictionary."""
    import datetime as dt
    import secrets

    from http_message_signatures import HTTPMessageSigner, algorithms

    created = dt.datetime.now(dt.UTC)
    for name in ("Signature", "Signature-Input"):
        if name in request.headers:
            del request.headers[name]
    prepared = HTTPMessageSigner(signature_algorithm=algorithms.ED25519).prepare(
        request, key_id=signer.key_id, created=created, expires=created + dt.timedelta(seconds=60),
        nonce=secrets.token_urlsafe(16), label="sig1", tag="regbridge",
        covered_component_ids=["@method", "@target-uri", "content-digest", "content-type"], use_existing_digest=True,
    )  # fmt: skip
    request.headers["Signature-Input"] = f"sig1={prepared.signature_params}"
    request.headers["Signature"] = f"sig1=:{base64.b64encode(signer.sign(prepared.signature_base)).decode()}:"
