"""The lifecycle scenarios through the centre port, against both adapters (issue 21, "Must show").

``ApiCentre`` speaks RegBridge's contract to one sandbox centre; ``ProvinceCentre`` speaks the
provincial platform's envelope to a platform before two county centres. The same scenarios — an
application to its certificate (fee paid, metadata signature and file digest checked), the same
idempotency key answering the same record, a 补正 answered by a supplement, a 不予受理, refusals as
``sdk`` errors — run unchanged over :class:`agent.centre.port.CentrePort`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import TypeAdapter

import sdk
from agent.centre.api import ApiCentre
from agent.centre.port import CentrePort
from agent.centre.province import ProvinceCentre
from config import load_dialect, load_districts
from sandbox.local import LocalCentre
from sandbox.platform import ProvincePlatform
from sandbox.register import CHANGFENG, FEIXI, County, location, title_certificate, unit_id
from sdk._operations import encode_json
from sdk.dialects.province import PlatformClient
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.models import Application, ApplicationRecord, ApplicationStatus, Material, Payment, Supplement
from sdk.signing import generate_private_key, jwk_from_public_key, public_key_from_jwk
from tests import factories as f

S = ApplicationStatus
_APP: TypeAdapter[Application] = TypeAdapter(Application)


@dataclass
class Side:
    name: str
    port: CentrePort
    county: County  # where this side's applications go
    centre_key: dict[str, Any]  # the JWK the certificates' metadata is signed with (the trust anchor)


def _api_side() -> Iterator[Side]:
    with LocalCentre() as local:
        iid, _ = local.bank()
        token = local.centre.issue_enrolment_token(iid)
        key = generate_private_key(local.centre.suite.default_algorithm)  # type: ignore[arg-type]
        with sdk.Client(local.url) as anon:
            enrolled = anon.credentials.enroll(token, jwk_from_public_key(key.public_key()))
        port = ApiCentre(sdk.Client(local.url, sdk.Credential(enrolled.key_id, key)))
        try:
            yield Side("api", port, CHANGFENG, dict(local.centre.keys.centre_jwk))
        finally:
            port.close()


def _province_side() -> Iterator[Side]:
    signer, decryption = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    with ProvincePlatform() as platform:
        enrolment = platform.enrol("BANK-AH-PORT", signing_key=signer.public, encryption_key=decryption.public)
        client = PlatformClient(
            enrolment.url, app_id="BANK-AH-PORT", signer=signer, decryption_key=decryption,
            platform_app_id=enrolment.platform_app_id, platform_key=enrolment.platform_signing_key,
            platform_encryption_key=enrolment.platform_encryption_key,
        )  # fmt: skip
        port = ProvinceCentre(client, load_dialect("province"), tuple(load_districts("province")))
        try:
            yield Side("province", port, FEIXI, enrolment.centre_keys[FEIXI.district]["jwk"])
        finally:
            port.close()


@pytest.fixture(scope="module", params=["api", "province"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    yield from (_api_side() if request.param == "api" else _province_side())


def _data(side: Side, ref: str, n: int, kind: str = "mortgage_first") -> dict[str, Any]:
    data = f.application_dict(kind, ref, n, complete=True)
    county = side.county
    data["properties"][0].update(
        unit_id=unit_id(n, county), location=location(n, county), title_certificate=title_certificate(n, county)
    )
    return data


def _lodge(port: CentrePort, data: dict[str, Any]) -> ApplicationRecord:
    app = _APP.validate_python(data)
    ref = app.client_reference
    draft = port.create(app, idempotency_key=f"{ref}:create")
    for m in app.materials:
        port.upload_material(draft.application_id, m, f.sample_content(m, ref))
    return port.submit(draft.application_id, idempotency_key=f"{ref}:submit")


def _settle(port: CentrePort, application_id: str, *until: str) -> ApplicationRecord:
    deadline = time.monotonic() + 30
    paid = False
    while True:
        record = port.application(application_id)
        if record.status.value in until or record.is_final:
            return record
        if record.status is S.RECORDED and record.fee_status == "unpaid" and not paid:
            notice = port.fee_notice(application_id)
            port.pay(application_id, Payment(amount=notice.total), idempotency_key=f"{application_id}:pay")
            paid = True
        assert time.monotonic() < deadline, f"{application_id} stuck in {record.status.value}"
        time.sleep(0.03)


def test_an_application_to_its_verified_certificate(side: Side) -> None:
    record = _lodge(side.port, _data(side, f"LN-PORT-{side.name}", 31))
    done = _settle(side.port, record.application_id)
    assert done.status is S.COMPLETED, (done.decision, done.correction)
    assert done.application.properties[0].unit_id.startswith(side.county.district)
    assert side.port.fee_notice(done.application_id).status == "paid"
    (cid,) = done.certificate_ids
    signed = side.port.certificate(cid)
    key = public_key_from_jwk(side.centre_key)  # the trust anchor from enrolment, not from the answer
    key.verify(base64.b64decode(signed.signature.value), encode_json(signed.metadata.model_dump(mode="json")))  # type: ignore[call-arg]
    assert f"{side.county.name}不动产证明第" in signed.metadata.certificate_number
    content = side.port.download_certificate(cid, expected_sha256=signed.metadata.sha256)
    assert content.startswith(b"%PDF")
    with pytest.raises(sdk.DigestMismatch):
        side.port.download_certificate(cid, expected_sha256="0" * 64)
    # 在线核验 (issue 20: checked online before use), relayed by the platform to the county centre that issued it
    online = side.port.verify_certificate(signed.metadata.licence_id)
    assert online.result == "valid" and online.certificate_number == signed.metadata.certificate_number
    assert side.port.verify_certificate("1.2.156.3005.2.nobody").result == "unknown"


def test_the_same_key_answers_the_same_record_and_find_knows_it(side: Side) -> None:
    app = _APP.validate_python(_data(side, f"LN-PORT-IDEM-{side.name}", 32))
    first = side.port.create(app, idempotency_key="idem-1")
    again = side.port.create(app, idempotency_key="idem-1")
    assert again.application_id == first.application_id and first.status is S.DRAFT
    found = side.port.find(app.client_reference)
    assert found is not None and found.application_id == first.application_id
    assert side.port.find("LN-NOBODY") is None
    with pytest.raises(sdk.NotFound):
        side.port.application("app-does-not-exist")


def test_a_correction_answered_by_a_supplement(side: Side) -> None:
    ref = f"LN-PORT-FIX-{side.name}"
    data = _data(side, ref, 33)
    complete = data["materials"]
    data["materials"] = [m for m in complete if m["code"] != "main_contract"]
    record = _settle(side.port, _lodge(side.port, data).application_id, "correction_required")
    assert record.status is S.CORRECTION_REQUIRED and record.correction is not None
    missing = next(Material.model_validate(m) for m in complete if m["code"] == "main_contract")
    side.port.supplement(
        record.application_id, Supplement(materials=[missing], note="补交主债权合同"), idempotency_key=f"{ref}:sup"
    )
    side.port.upload_material(record.application_id, missing, f.material_content("main_contract", ref))
    side.port.submit(record.application_id, idempotency_key=f"{ref}:submit2")
    assert _settle(side.port, record.application_id).status is S.COMPLETED


def test_refusals_come_back_as_sdk_errors_and_decisions(side: Side) -> None:
    data = _data(side, f"LN-PORT-NO-{side.name}", 34)
    data["properties"][0]["unit_id"] = f"{side.county.district}261006GB00014F99999999"  # not in the register
    record = _settle(side.port, _lodge(side.port, data).application_id)
    assert record.status is S.NOT_ACCEPTED and record.decision is not None
    assert "op-001" in {op.operator_id for op in side.port.operators()}
    assert side.port.channel_open()
