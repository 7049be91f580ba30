"""Attacks on the registration API (the sandbox centre): each is refused, and none leaves a trace in the register.

Every attempt is a real HTTP request on loopback, signed (or not) the way an attacker could: a
body changed after signing, a replayed request, a ``created`` far in the past or the future,
another key under our key id, a key id nobody issued, no signature, a signature that leaves the
body out, a revoked key, a suspended channel. The centre must answer 401/403 with the code that
names the reason, and the number of applications it holds must not move.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from sdk.signing import KeySigner, generate_private_key, sign_request
from tests import factories as f
from tests import proof
from tests.sandbox.conftest import Bank, Running


@dataclass
class Attack:
    name: str
    status: int
    code: str
    request: Callable[[], httpx.Request]


def _create(sandbox: Running, reference: str) -> httpx.Request:
    body = json.dumps(f.application_dict("mortgage_first", reference, n=3, complete=True), ensure_ascii=False)
    return httpx.Request(
        "POST",
        f"{sandbox.url}/v1/applications",
        content=body.encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": f"idem-{reference}-{time.time_ns()}"},
    )


def _signed(request: httpx.Request, signer: KeySigner, **kw: object) -> httpx.Request:
    sign_request(request, signer, **kw)  # type: ignore[arg-type]
    return request


def _count(sandbox: Running) -> int:
    return int(sandbox.store.all("SELECT COUNT(*) AS n FROM applications")[0]["n"])


def test_every_attack_on_the_api_is_refused_and_leaves_no_trace(sandbox: Running, bank: Bank) -> None:
    me = KeySigner(bank.key_id, bank.key)
    now = dt.datetime.now(dt.UTC)

    def tampered() -> httpx.Request:
        request = _signed(_create(sandbox, "ATK-TAMPER"), me)
        body = request.content.replace(b"ATK-TAMPER", b"ATK-TAMPEX")
        return httpx.Request(request.method, request.url, content=body, headers=request.headers)

    def body_not_covered() -> httpx.Request:
        request = _signed(_create(sandbox, "ATK-NODIGEST"), me)
        del request.headers["Content-Digest"]
        return request

    attacks = [
        Attack("body changed after signing", 401, "digest_mismatch", tampered),
        Attack("Content-Digest left out", 401, "digest_mismatch", body_not_covered),
        Attack("created 10 minutes ago", 401, "clock_skew",
               lambda: _signed(_create(sandbox, "ATK-STALE"), me, now=now - dt.timedelta(minutes=10))),
        Attack("created 10 minutes ahead", 401, "clock_skew",
               lambda: _signed(_create(sandbox, "ATK-FUTURE"), me, now=now + dt.timedelta(minutes=10))),
        Attack("another key under our key id", 401, "signature_invalid",
               lambda: _signed(_create(sandbox, "ATK-WRONGKEY"), KeySigner(bank.key_id, generate_private_key()))),
        Attack("a key id nobody issued", 401, "unknown_key",
               lambda: _signed(_create(sandbox, "ATK-NOKEY"), KeySigner("key_0000000000000000", generate_private_key()))),  # noqa: E501
        Attack("no signature at all", 401, "signature_missing", lambda: _create(sandbox, "ATK-UNSIGNED")),
    ]  # fmt: skip
    refused = _run(sandbox, attacks)

    # a replay: the genuine request once (accepted), the same bytes again (refused)
    genuine = _signed(_create(sandbox, "ATK-REPLAY"), me)
    with httpx.Client() as http:
        assert http.send(genuine).status_code == 201
        before = _count(sandbox)
        again = http.send(httpx.Request(genuine.method, genuine.url, content=genuine.content, headers=genuine.headers))
    refused += _check(sandbox, "the same signed request replayed", again, 401, "replayed_nonce", before)

    # a suspended channel: a perfectly signed request is refused until the centre reopens it
    sandbox.centre.set_channel(bank.institution_id, "suspended", "整改")
    refused += _run(sandbox, [Attack("a suspended channel", 403, "channel_suspended",
                                     lambda: _signed(_create(sandbox, "ATK-SUSPENDED"), me))])  # fmt: skip
    sandbox.centre.set_channel(bank.institution_id, "open", None)

    # a revoked key, last: it is our own
    sandbox.centre.revoke(bank.institution_id, bank.key_id, "leaked")
    refused += _run(sandbox, [Attack("a revoked key", 401, "key_revoked",
                                     lambda: _signed(_create(sandbox, "ATK-REVOKED"), me))])  # fmt: skip

    expected = len(attacks) + 3
    refs = [r["client_reference"] for r in sandbox.store.all("SELECT client_reference FROM applications")]
    proof.record(
        proof.Result("attacks on the centre's API (signatures, replay, clock, keys, channel)", runs=1,
                     applications=expected, lost=0, duplicated=len(refs) - 1, refused=refused,
                     expected_refusals=expected)
    )  # fmt: skip
    assert refs == ["ATK-REPLAY"], f"an attack left an application behind: {refs}"
    assert refused == expected


def _run(sandbox: Running, attacks: list[Attack]) -> int:
    refused = 0
    with httpx.Client() as http:
        for attack in attacks:
            before = _count(sandbox)
            refused += _check(sandbox, attack.name, http.send(attack.request()), attack.status, attack.code, before)
    return refused


def _check(sandbox: Running, name: str, response: httpx.Response, status: int, code: str, before: int) -> int:
    body = response.json() if response.content else {}
    assert (response.status_code, body.get("code")) == (status, code), f"{name}: {response.status_code} {body}"
    assert _count(sandbox) == before, f"{name}: the centre stored something"
    return 1
