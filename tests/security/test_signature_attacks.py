"""Attacks on how the centre reads a signature (issue 17 items 1, 6 and 9): one parsed signature, once.

- the split-header replay, reproduced exactly: a request is captured, sent, refused when sent
  again as a replay, then sent again with its ``Signature-Input`` split over two field lines (an
  untagged member naming the bank's key id and a signature by another bank's revoked key with a
  fresh nonce first, the captured one second). Before the fix the key lookup read the first line,
  the time window and identity the last, and the nonce remembered was the attacker's: the replay
  was accepted as the original bank.
- repeated fields and ambiguous signatures are refused, not resolved by whichever reader looks.
- ``expires`` has the same ±300 s tolerance as ``created`` (requests and webhooks).
- the signature must cover ``content-type`` and ``idempotency-key`` when the request has them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import HTTPMessageSigner, algorithms

import sdk
from sdk.errors import SignatureError
from sdk.identifiers import uscc_check_char
from sdk.signing import KeySigner, generate_private_key, jwk_from_public_key, sign_request
from sdk.webhooks import verify_webhook
from tests import factories as f
from tests import proof
from tests.sandbox.conftest import Bank, Running

OTHER_USCC = "91340100MA2N0000X"[:17]
OTHER_USCC += uscc_check_char(OTHER_USCC)


def _create(sandbox: Running, reference: str) -> httpx.Request:
    body = json.dumps(f.application_dict("mortgage_first", reference, n=3, complete=True), ensure_ascii=False)
    return httpx.Request(
        "POST",
        f"{sandbox.url}/v1/applications",
        content=body.encode(),
        headers={"Content-Type": "application/json", "Idempotency-Key": f"idem-{reference}-{time.time_ns()}"},
    )


def _count(sandbox: Running) -> int:
    return int(sandbox.store.all("SELECT COUNT(*) AS n FROM applications")[0]["n"])


def _other_bank_revoked_key(sandbox: Running) -> KeySigner:
    """Another bank's key, enrolled and then revoked (an attacker holds it: it leaked, so it was revoked)."""
    iid = sandbox.centre.create_institution(name="另一家银行", uscc=OTHER_USCC, licence_no="B9", district="340121")
    key = generate_private_key()
    with sdk.Client(sandbox.url) as anon:
        token = sandbox.centre.issue_enrolment_token(iid)
        enrolled = anon.credentials.enroll(token, jwk_from_public_key(key.public_key()))
    sandbox.centre.revoke(iid, enrolled.key_id, "leaked")
    return KeySigner(enrolled.key_id, key)


def _resend(request: httpx.Request, headers: list[tuple[str, str]]) -> httpx.Response:
    with httpx.Client() as http:
        return http.send(httpx.Request(request.method, request.url, content=request.content, headers=headers))


def _answer(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, (response.json().get("code") if response.content else None)


def test_a_replay_split_over_two_signature_input_lines_is_refused(sandbox: Running, bank: Bank) -> None:
    me = KeySigner(bank.key_id, bank.key)
    captured = _create(sandbox, "ATK-SPLIT")
    sign_request(captured, me)
    plain = [(k, v) for k, v in captured.headers.multi_items()]
    assert _answer(_resend(captured, plain)) == (201, None)
    assert _answer(_resend(captured, plain)) == (401, "replayed_nonce")
    before = _count(sandbox)

    # the attacker's own signature (another bank's revoked key, a fresh nonce) over the same request
    theirs = httpx.Request(captured.method, captured.url, content=captured.content, headers=captured.headers)
    sign_request(theirs, _other_bank_revoked_key(sandbox))
    their_input = theirs.headers["Signature-Input"].replace("sig1=", "sig0=", 1)
    their_sig = theirs.headers["Signature"].replace("sig1=", "sig0=", 1)
    rest = [(k, v) for k, v in plain if k.lower() not in ("signature-input", "signature")]
    # line one: an untagged member naming the bank's key id (so its key is looked up) and the attacker's
    # signature; line two: the captured signature. Each reader of the old code took a different part.
    lure = f'x=("@method");keyid="{bank.key_id}"'
    split = [
        *rest,
        ("Signature-Input", f"{lure}, {their_input}"),
        ("Signature-Input", captured.headers["Signature-Input"]),
        ("Signature", f"x=:AAAA:, {their_sig}, {captured.headers['Signature']}"),
    ]
    response = _resend(captured, split)
    assert response.status_code == 401, f"the split replay was accepted: {response.status_code}"
    assert _count(sandbox) == before

    # the same, with both signatures in one Signature-Input line: two regbridge signatures are ambiguous
    joined = [*rest, ("Signature-Input", f"{their_input}, {captured.headers['Signature-Input']}"),
              ("Signature", f"{their_sig}, {captured.headers['Signature']}")]  # fmt: skip
    assert _answer(_resend(captured, joined)) == (401, "signature_invalid")
    assert _count(sandbox) == before
    proof.record(proof.Result("split Signature-Input replay (captured, refused, resent split / joined)", runs=1,
                              applications=1, lost=0, duplicated=0, refused=3, expected_refusals=3))  # fmt: skip


def test_repeated_fields_and_ambiguous_signatures_are_refused(sandbox: Running, bank: Bank) -> None:
    me = KeySigner(bank.key_id, bank.key)

    def fresh(reference: str) -> tuple[httpx.Request, list[tuple[str, str]]]:
        request = _create(sandbox, reference)
        sign_request(request, me)
        return request, [(k, v) for k, v in request.headers.multi_items()]

    def without(headers: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
        return [(k, v) for k, v in headers if k.lower() not in names]

    cases: dict[str, tuple[httpx.Request, list[tuple[str, str]]]] = {}
    r, h = fresh("ATK-DUP1")
    cases["the same Signature-Input line twice"] = (r, [*h, ("Signature-Input", r.headers["Signature-Input"])])
    r, h = fresh("ATK-DUP2")
    si = r.headers["Signature-Input"]
    cases["the label sig1 twice in one line"] = (r, [*without(h, "signature-input"), ("Signature-Input", f"{si},{si}")])
    r, h = fresh("ATK-DUP3")
    twice = r.headers["Signature-Input"] + ';nonce="AAAAAAAAAAAAAAAAAAAAAA"'
    cases["a parameter given twice"] = (r, [*without(h, "signature-input"), ("Signature-Input", twice)])
    r, h = fresh("ATK-DUP4")
    cases["Idempotency-Key sent twice"] = (r, [*h, ("Idempotency-Key", "another-key-entirely")])
    r, h = fresh("ATK-DUP5")
    cases["Content-Type sent twice"] = (r, [*h, ("Content-Type", "text/plain")])
    r, h = fresh("ATK-DUP6")
    signature_fields = ("signature-input", "signature")
    relabelled = [(k, v.replace("sig1=", "mine=", 1) if k.lower() in signature_fields else v) for k, v in h]
    cases["no signature with the label the centre asks for"] = (r, relabelled)
    before = _count(sandbox)
    for name, (request, headers) in cases.items():
        status, code = _answer(_resend(request, headers))
        assert (status, code) == (401, "signature_invalid"), f"{name}: {status} {code}"
    assert _count(sandbox) == before
    proof.record(proof.Result("ambiguous signatures (repeated fields, labels, parameters; no sig1)", runs=1,
                              applications=0, lost=0, duplicated=0, refused=len(cases),
                              expected_refusals=len(cases)))  # fmt: skip


def _sign_covering(request: httpx.Request, signer: KeySigner, covered: list[str]) -> None:
    """Sign as a careless client would: covering only ``covered``."""
    created = dt.datetime.now(dt.UTC)
    prepared = HTTPMessageSigner(signature_algorithm=algorithms.ED25519).prepare(
        request, key_id=signer.key_id, created=created, expires=created + dt.timedelta(seconds=60),
        nonce=base64.urlsafe_b64encode(bytes(16)).decode() + str(time.time_ns()), label="sig1", tag="regbridge",
        covered_component_ids=covered, body=request.content,
    )  # fmt: skip
    request.headers["Signature-Input"] = f"sig1={prepared.signature_params}"
    request.headers["Signature"] = f"sig1=:{base64.b64encode(signer.sign(prepared.signature_base)).decode()}:"


def test_the_signature_must_cover_content_type_and_idempotency_key(sandbox: Running, bank: Bank) -> None:
    me = KeySigner(bank.key_id, bank.key)
    before = _count(sandbox)
    for covered, missing in (
        (["@method", "@target-uri", "content-digest", "idempotency-key"], "content-type"),
        (["@method", "@target-uri", "content-digest", "content-type"], "idempotency-key"),
    ):
        request = _create(sandbox, f"ATK-COVER-{missing}")
        _sign_covering(request, me, covered)
        with httpx.Client() as http:
            response = http.send(request)
        assert _answer(response) == (401, "signature_invalid"), f"{missing} left out: {response.status_code}"
        assert missing in response.json()["detail"]
    assert _count(sandbox) == before


def test_expires_has_the_same_tolerance_as_created(sandbox: Running, bank: Bank) -> None:
    """A bank clock 100 s slow: ``expires`` (created + 60 s) is 40 s past on the centre's clock — within ±300 s."""
    me = KeySigner(bank.key_id, bank.key)
    slow = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=100)
    request = _create(sandbox, "ATK-SLOWCLOCK")
    sign_request(request, me, now=slow)
    with httpx.Client() as http:
        assert _answer(http.send(request)) == (201, None)
    too_slow = _create(sandbox, "ATK-SLOWCLOCK2")
    sign_request(too_slow, me, now=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=400))
    with httpx.Client() as http:
        assert _answer(http.send(too_slow))[0] == 401


def test_a_webhook_signed_by_a_slow_clock_is_accepted_within_the_window() -> None:
    centre_key = ed25519.Ed25519PrivateKey.generate()
    url = "http://127.0.0.1:9/hooks/regbridge"
    event = {"event_id": "evt_1", "type": "application.status_changed", "sequence": 1,
             "occurred_at": "2026-01-01T00:00:00Z", "data": {}}  # fmt: skip
    json_type = {"Content-Type": "application/json"}
    delivery = httpx.Request("POST", url, content=json.dumps(event).encode(), headers=json_type)
    sign_request(delivery, KeySigner("centre-1", centre_key), now=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=100))
    keys = {"centre-1": centre_key.public_key()}
    got = verify_webhook(method="POST", url=url, headers=delivery.headers.multi_items(), body=delivery.content,
                         centre_keys=keys)  # fmt: skip
    assert got.event_id == "evt_1"
    stale = httpx.Request("POST", url, content=delivery.content, headers={"Content-Type": "application/json"})
    sign_request(stale, KeySigner("centre-1", centre_key), now=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=400))
    with pytest.raises(SignatureError):
        verify_webhook(method="POST", url=url, headers=stale.headers.multi_items(), body=stale.content,
                       centre_keys=keys)  # fmt: skip


def test_a_request_signed_for_another_host_is_refused(sandbox: Running, bank: Bank) -> None:
    """``@target-uri`` is the centre's own authority, not one rebuilt from a Host header the bank did not sign."""
    me = KeySigner(bank.key_id, bank.key)
    port = httpx.URL(sandbox.url).port
    elsewhere = httpx.Request(
        "POST", f"http://centre.elsewhere.example:{port}/v1/applications",
        content=_create(sandbox, "ATK-HOST").content,
        headers={"Content-Type": "application/json", "Idempotency-Key": f"idem-host-{time.time_ns()}"},
    )  # fmt: skip
    sign_request(elsewhere, me)  # signed for another centre; Host is not a covered component
    headers = [(k, v) for k, v in elsewhere.headers.multi_items()]
    before = _count(sandbox)
    with httpx.Client() as http:
        response = http.send(httpx.Request("POST", f"{sandbox.url}/v1/applications", content=elsewhere.content,
                                           headers=headers))  # fmt: skip
    assert _answer(response) == (401, "signature_invalid"), response.status_code
    assert _count(sandbox) == before
