"""The personal-field envelope on the wire (issue 19; seed 002 §5.1 加密传输): a gm centre that asks
for it (``suite.envelope``) gets each party's name, ID number and phone SM4-encrypted under a key
wrapped to its SM2 encryption key, opens them before any route reads the body, and refuses them
in the clear; GCM and CBC, ASN.1 and raw C1C3C2 key layouts. The lifecycle suite
(tests/sandbox/test_lifecycle.py) runs every business type with the envelope on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from pydantic import TypeAdapter

import sdk
from sandbox.local import LocalCentre
from sdk.gm.envelope import ENVELOPE_MEMBER
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.models import Application
from sdk.signing import generate_private_key, jwk_from_public_key, public_key_from_jwk
from sdk.suites import suite_named
from tests import factories as f

_APP: TypeAdapter[Application] = TypeAdapter(Application)


class Recording(httpx.HTTPTransport):
    """The real transport, keeping each request body as it went on the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.read())
        return super().handle_request(request)


@pytest.fixture(params=["SM4-GCM", "SM4-CBC"])
def centre(request: pytest.FixtureRequest) -> Iterator[LocalCentre]:
    with LocalCentre(suite=suite_named("gm", envelope=request.param)) as running:
        yield running


def _client(centre: LocalCentre, *, layout: str = "asn1", encrypt: bool = True,
            recipient: object = None) -> tuple[sdk.Client, Recording]:  # fmt: skip
    _, bundle = centre.bank()
    b = bundle["bundle"]
    key = centre.centre.suite.adopt(generate_private_key("sm2-sm3"))
    with sdk.Client(centre.url) as anon:
        enrolled = anon.credentials.enroll(b["token"], jwk_from_public_key(key.public_key()))
    envelope = None
    if encrypt:
        target = recipient or public_key_from_jwk(b["trust"]["centre_encryption_key"])
        envelope = sdk.FieldEncryption(target, b["suite"]["envelope"], key_layout=layout)  # type: ignore[arg-type]
    wire = Recording()
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
