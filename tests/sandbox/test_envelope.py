"""The personal-field envelope on the wire (issue 19; seed 002 §5.1 加密传输): a gm centre that asks
for it (``suite.envelope``) gets each party's name, ID number and phone SM4-encrypted under a key
wrapped to its SM2 encryption key, opens them before any route reads the body, and refuses them
in the clear; GCM and CBC, ASN.1 and raw C1C3C2 key layouts. The other way, a bank that registered
its own SM2 encryption key at enrolment gets the personal fields of the centre's JSON answers
(application reads, certificate metadata) and webhooks sealed to it, opened by the SDK; one that
does not open is refused. The lifecycle scenarios (tests/agent/centre/test_port.py, side ``api-gm``) run every business
type with the envelope on both ways.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import TypeAdapter

import sdk
from sandbox.local import LocalCentre
from sandbox.webhooks import Webhooks
from sdk._operations import encode_json
from sdk.gm.envelope import ENVELOPE_MEMBER
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.models import Application
from sdk.signing import generate_private_key, jwk_from_public_key, public_key_from_jwk
from sdk.suites import suite_named
from tests import factories as f

from .conftest import Bank

_APP: TypeAdapter[Application] = TypeAdapter(Application)


class Recording(httpx.HTTPTransport):
    """The real transport, keeping each request body as it went on the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

        self.answers: list[bytes] = []
        self.iid = ""  # the institution the client is enrolled for

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.read())
        response = super().handle_request(request)
        content = response.read()
        self.answers.append(content)
        return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)


@pytest.fixture(params=["SM4-GCM", "SM4-CBC"])
def centre(request: pytest.FixtureRequest) -> Iterator[LocalCentre]:
    with LocalCentre(suite=suite_named("gm", envelope=request.param)) as running:
        yield running


def _client(centre: LocalCentre, *, layout: str = "asn1", encrypt: bool = True, recipient: object = None,
            mine: Sm2PrivateKey | None = None, opener: object = "mine") -> tuple[sdk.Client, Recording]:  # fmt: skip
    """A bank enrolled with the centre (registering ``mine`` as its encryption key), its client opening
    answers with ``opener`` (default: ``mine``; None: no decryption key)."""
    iid, bundle = centre.bank()
    b = bundle["bundle"]
    key = centre.centre.suite.adopt(generate_private_key("sm2-sm3"))
    with sdk.Client(centre.url) as anon:
        enrolled = anon.credentials.enroll(
            b["token"], jwk_from_public_key(key.public_key()),
            encryption_key=jwk_from_public_key(mine.public) if mine else None,
        )  # fmt: skip
    envelope = None
    if encrypt:
        target = recipient or public_key_from_jwk(b["trust"]["centre_encryption_key"])
        envelope = sdk.FieldEncryption(
            target, b["suite"]["envelope"], key_layout=layout,  # type: ignore[arg-type]
            decryption_key=mine if opener == "mine" else opener,  # type: ignore[arg-type]
        )  # fmt: skip
    wire = Recording()
    wire.iid = iid
    return sdk.Client(centre.url, sdk.Credential(enrolled.key_id, key), envelope=envelope, transport=wire), wire


@pytest.mark.parametrize("layout", ["asn1", "c1c3c2"])
def test_personal_fields_travel_encrypted_and_the_centre_reads_them(centre: LocalCentre, layout: str) -> None:
    client, wire = _client(centre, layout=layout)
    data = f.application_dict("mortgage_first", f"LN-ENV-{layout}", complete=True)
    names = [p["name"] for p in data["mortgagors"]] + [p["id_number"] for p in data["mortgagors"]]
    with client:
        draft = client.applications.create(_APP.validate_python(data))
        sent = json.loads(wire.bodies[-1])
        kept = client.applications.get(draft.application_id).application  # the centre opened them
    envelope = sent[ENVELOPE_MEMBER]
    assert envelope["alg"] == centre.centre.suite.envelope and envelope["key_layout"] == layout
    assert "/mortgagors/0/id_number" in envelope["fields"]
    assert not any(value.encode() in wire.bodies[-1] for value in names)  # nothing personal in the clear
    assert [p["id_number"] for p in kept.model_dump()["mortgagors"]] == [p["id_number"] for p in data["mortgagors"]]


def test_personal_fields_in_the_clear_are_refused(centre: LocalCentre) -> None:
    client, _ = _client(centre, encrypt=False)
    data = f.application_dict("mortgage_first", "LN-CLEAR", complete=True)
    with client, pytest.raises(sdk.ValidationFailed) as refused:
        client.applications.create(_APP.validate_python(data))
    assert refused.value.code == "encryption_required"
    assert "clear" in str(refused.value) and data["mortgagors"][0]["id_number"] not in str(refused.value)


def test_an_envelope_for_another_key_is_refused(centre: LocalCentre) -> None:
    client, _ = _client(centre, recipient=Sm2PrivateKey.generate().public)
    with client, pytest.raises(sdk.ValidationFailed) as refused:
        client.applications.create(
            _APP.validate_python(f.application_dict("mortgage_first", "LN-OTHER", complete=True))
        )
    assert refused.value.code == "envelope_invalid"


def _personal(data: dict[str, object]) -> list[str]:
    parties = [p for k in ("mortgagors", "obligors") for p in data.get(k, []) or []]  # type: ignore[attr-defined]
    return [v for p in parties for v in (p["name"], p["id_number"]) if v]


def test_answers_come_sealed_to_the_banks_key_and_the_client_opens_them(centre: LocalCentre) -> None:
    mine = Sm2PrivateKey.generate()
    client, wire = _client(centre, mine=mine)
    data = f.application_dict("mortgage_first", "LN-ANSWER", complete=True)
    personal = _personal(data)
    with client:
        draft = client.applications.create(_APP.validate_python(data))
        kept = client.applications.get(draft.application_id).application
        raw = wire.answers[-1]
    assert personal and not any(v.encode() in raw for v in personal)  # nothing personal on the wire back
    answer = json.loads(raw)
    assert answer[ENVELOPE_MEMBER]["alg"] == centre.centre.suite.envelope
    assert any(p.startswith("/application/mortgagors/0/") for p in answer[ENVELOPE_MEMBER]["fields"])
    assert [p["id_number"] for p in kept.model_dump()["mortgagors"]] == [p["id_number"] for p in data["mortgagors"]]


@pytest.mark.parametrize("opener", ["none", "another"])
def test_an_answer_that_does_not_open_is_refused(centre: LocalCentre, opener: str) -> None:
    client, _ = _client(centre, mine=Sm2PrivateKey.generate(),
                        opener=None if opener == "none" else Sm2PrivateKey.generate())  # fmt: skip
    data = f.application_dict("mortgage_first", f"LN-SHUT-{opener}", complete=True)
    with client, pytest.raises(sdk.SignatureError) as refused:
        client.applications.create(_APP.validate_python(data))
    reason = str(refused.value)
    assert ("no decryption key" in reason) if opener == "none" else ("does not open" in reason)
    assert not any(v in reason for v in _personal(data))


def test_a_bank_without_an_encryption_key_gets_its_answers_as_before(centre: LocalCentre) -> None:
    client, wire = _client(centre, mine=None)
    data = f.application_dict("mortgage_first", "LN-NOKEY", complete=True)
    with client:
        draft = client.applications.create(_APP.validate_python(data))
    assert ENVELOPE_MEMBER not in json.loads(wire.answers[-1]) and draft.application_id


def test_an_encryption_key_that_is_not_sm2_is_refused_at_enrolment(centre: LocalCentre) -> None:
    _, bundle = centre.bank()
    key = centre.centre.suite.adopt(generate_private_key("sm2-sm3"))
    other = generate_private_key("ed25519")
    with sdk.Client(centre.url) as anon, pytest.raises(sdk.ValidationFailed) as refused:
        anon.credentials.enroll(bundle["bundle"]["token"], jwk_from_public_key(key.public_key()),
                                encryption_key=jwk_from_public_key(other.public_key()))  # fmt: skip
    assert "SM2" in str(refused.value)


def test_certificate_metadata_comes_sealed_and_its_signature_verifies_once_opened(centre: LocalCentre) -> None:
    from .conftest import lodge, pay_and_finish

    mine = Sm2PrivateKey.generate()
    client, wire = _client(centre, mine=mine)
    data = f.application_dict("mortgage_first", "LN-CERT-ENV", complete=True)
    with client:
        bank = Bank(wire.iid, "", None, client)  # type: ignore[arg-type]
        done = pay_and_finish(bank, lodge(bank, data))
        signed = client.certificates.get(done.certificate_ids[0])
        raw = wire.answers[-1]
    assert signed.metadata.obligors and not any(name.encode() in raw for name in signed.metadata.obligors)
    sealed = json.loads(raw)[ENVELOPE_MEMBER]["fields"]
    assert "/metadata/obligors/0" in sealed
    key = public_key_from_jwk(centre.centre.keys.centre_jwk)
    key.verify(  # type: ignore[call-arg]
        base64.b64decode(signed.signature.value), encode_json(signed.metadata.model_dump(mode="json"))
    )


def test_webhooks_come_sealed_to_the_banks_key(centre: LocalCentre) -> None:
    mine = Sm2PrivateKey.generate()
    client, wire = _client(centre, mine=mine)
    client.close()
    iid = wire.iid
    party = {"name": "张三丰", "id_number": "110101199003074514", "role": "mortgagor"}
    centre.store.execute("UPDATE institutions SET webhook_url = ? WHERE id = ?", "http://127.0.0.1:9/hook", iid)
    centre.centre.emit(iid, "application.status_changed", None, data={"party": party})
    received: list[httpx.Request] = []

    def bank_endpoint(request: httpx.Request) -> httpx.Response:  # the bank's receiver, on the far side
        received.append(request)
        return httpx.Response(204)

    hooks = Webhooks(centre.store, centre.centre.keys, development=True)
    with httpx.Client(transport=httpx.MockTransport(bank_endpoint)) as to_bank:
        assert hooks.deliver_due(to_bank) >= 1
    delivery = received[-1]
    body = delivery.read()
    assert b"110101199003074514" not in body and "张三丰".encode() not in body
    args = {"method": "POST", "url": "http://127.0.0.1:9/hook", "headers": list(delivery.headers.items()),
            "body": body, "centre_keys": {centre.centre.keys.centre_key_id: public_key_from_jwk(
                centre.centre.keys.centre_jwk)}}  # fmt: skip
    event = sdk.verify_webhook(**args, decryption_key=mine)  # type: ignore[arg-type]
    assert event.data["party"]["id_number"] == "110101199003074514"
    with pytest.raises(sdk.SignatureError, match="does not open"):
        sdk.verify_webhook(**args, decryption_key=Sm2PrivateKey.generate())  # type: ignore[arg-type]
    with pytest.raises(sdk.SignatureError, match="no decryption key"):
        sdk.verify_webhook(**args)  # type: ignore[arg-type]


def test_an_envelope_that_leaves_fields_out_or_changes_the_mode_is_refused(centre: LocalCentre) -> None:
    """break19 finding 3: an ``encryption`` member with an empty or partial field list let every other name
    and ID number through in the clear, and a centre asking for SM4-GCM took SM4-CBC (no integrity of its own)."""
    from sdk.gm.envelope import personal_pointers, seal_fields

    asked = centre.centre.suite.envelope
    other = "SM4-CBC" if asked == "SM4-GCM" else "SM4-GCM"

    class Sealing(sdk.FieldEncryption):
        how: ClassVar[dict[str, Any]] = {}

        def seal(self, body: dict[str, Any]) -> dict[str, Any]:
            pointers = list(personal_pointers(body))
            return seal_fields(body, self.recipient, mode=self.how["mode"], pointers=self.how["pick"](pointers))

    client, _ = _client(centre)
    assert client.envelope is not None
    sealing = Sealing(client.envelope.recipient, asked)  # type: ignore[arg-type]
    client.envelope = sealing
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("none", {"mode": asked, "pick": lambda ps: []}, "encryption_required"),
        ("some", {"mode": asked, "pick": lambda ps: ps[:1]}, "encryption_required"),
        ("mode", {"mode": other, "pick": lambda ps: ps}, "envelope_invalid"),
    ]
    with client:
        for name, how, code in cases:
            Sealing.how = how
            data = f.application_dict("mortgage_first", f"LN-ENV-{name}", complete=True)
            with pytest.raises(sdk.ValidationFailed) as refused:
                client.applications.create(_APP.validate_python(data))
            assert refused.value.code == code, name
        Sealing.how = {"mode": asked, "pick": lambda ps: ps}  # all of them, in the centre's mode: taken
        client.applications.create(
            _APP.validate_python(f.application_dict("mortgage_first", "LN-ENV-all", complete=True))
        )
