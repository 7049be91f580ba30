from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
import uvicorn
from pydantic import TypeAdapter

import sdk
from sandbox.app import create_app
from sandbox.centre import Centre
from sandbox.store import Store
from sandbox.workflow import Timing
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.models import Application, ApplicationRecord, Payment
from sdk.signing import PrivateKey, generate_private_key, jwk_from_public_key
from sdk.suites import INTL, Suite, suite_named
from tests import factories as f


@dataclass
class Running:
    url: str
    centre: Centre
    store: Store


@pytest.fixture
def suite() -> Suite:
    """The centre's crypto suite; a module runs against both by overriding this fixture with :func:`both_suites`."""
    return INTL


def both_suites(request: pytest.FixtureRequest) -> Suite:
    """Body of a ``suite`` fixture parametrised over ``intl`` and ``gm`` (params=["intl", "gm"]);
    ``gm+SM4-GCM`` / ``gm+SM4-CBC``: a gm centre asking for the personal-field envelope."""
    name, _, envelope = str(request.param).partition("+")
    return suite_named(name, envelope=envelope or None)


@pytest.fixture
def sandbox(tmp_path: object, suite: Suite) -> Iterator[Running]:
    """The sandbox centre on a loopback port, served by uvicorn in a thread (in ``suite``)."""
    store = Store()
    app = create_app(store, timing=Timing(step_seconds=0.0, correction_days=1.0), suite=suite)
    sock = socket.socket()
    # accepted connections inherit it; without it, Nagle + delayed ACK add ~40 ms to every exchange
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", date_header=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("sandbox did not start")
        time.sleep(0.01)
    try:
        yield Running(f"http://127.0.0.1:{port}", app.state.centre, store)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class Bank:
    institution_id: str
    key_id: str
    key: PrivateKey
    client: sdk.Client


@pytest.fixture
def bank(sandbox: Running) -> Iterator[Bank]:
    """A bank branch with an account at the centre and an enrolled key (of the centre's suite)."""
    iid = sandbox.centre.create_institution(
        name="中国示例银行股份有限公司合肥分行", uscc=f.BANK_USCC, licence_no="B0001H234010001", district="340121"
    )
    sandbox.centre.create_operator(iid, "李经办", operator_id="op-001")
    token = sandbox.centre.issue_enrolment_token(iid)
    key = generate_private_key(sandbox.centre.suite.default_algorithm)  # type: ignore[arg-type]
    # the centre asks for the personal-field envelope: wrap to its key, and register the bank's own
    # SM2 encryption key, to which it seals the personal fields of its answers (opened by the client)
    mine = Sm2PrivateKey.generate() if sandbox.centre.suite.envelope else None
    with sdk.Client(sandbox.url) as anon:
        enrolled = anon.credentials.enroll(
            token, jwk_from_public_key(key.public_key()),
            encryption_key=jwk_from_public_key(mine.public) if mine else None,
        )  # fmt: skip
    envelope = None
    if sandbox.centre.suite.envelope:
        recipient = sandbox.centre.keys.encryption_key(sandbox.store).public
        envelope = sdk.FieldEncryption(recipient, sandbox.centre.suite.envelope, decryption_key=mine)
    client = sdk.Client(sandbox.url, sdk.Credential(enrolled.key_id, key), envelope=envelope)
    file_documents(client)
    try:
        yield Bank(iid, enrolled.key_id, key, client)
    finally:
        client.close()


def file_documents(
    client: sdk.Client, uscc: str = f.BANK_USCC, licence_no: str = f.BANK_LICENCE_NO, valid_until: date | None = None
) -> sdk.models.InstitutionProfile:
    """The bank's 银行信息备案 through the API, once (seed 001 §5.2): its 营业执照 and 金融许可证 declared,
    then uploaded (the 金融许可证 valid until ``valid_until``, 长期 when none)."""
    filing, contents = f.filing(uscc, licence_no, valid_until=valid_until)
    profile = client.institution.file(
        filing, idempotency_key=f"filing-{hashlib.sha256(filing.model_dump_json().encode()).hexdigest()[:16]}"
    )
    for doc in filing.documents:
        profile = client.institution.upload_document(doc, contents[doc.id])
    return profile


def settle(client: sdk.Client, application_id: str, *until: str, timeout: float = 30.0) -> sdk.models.ApplicationRecord:
    """Poll (quickly: the test centre is instant) until the application reaches one of ``until`` or a final status."""
    deadline = time.monotonic() + timeout
    while True:
        record = client.applications.get(application_id)
        if record.status.value in until or record.is_final:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"{application_id} stuck in {record.status.value}, wanted {until}")
        time.sleep(0.02)


_APP: TypeAdapter[Application] = TypeAdapter(Application)


def lodge(bank: Bank, data: dict[str, Any], *, upload: bool = True) -> ApplicationRecord:
    """Create, upload every declared material, submit: what the agent does for one loan operation (through
    the SDK; tests/agent/centre/test_port.py runs the lifecycle scenarios through the centre port)."""
    app = _APP.validate_python(data)
    ref = app.client_reference
    draft = bank.client.applications.create(app, idempotency_key=f"{ref}:create")
    if upload:
        for m in app.materials:
            content = f.sample_content(m, ref)
            bank.client.applications.upload_material(draft.application_id, m, content)
    return bank.client.applications.submit(draft.application_id, idempotency_key=f"{ref}:submit")


def pay_and_finish(bank: Bank, record: ApplicationRecord) -> ApplicationRecord:
    """Pay the fee notice when there is one to pay (the same key twice: one payment), then wait for 办结."""
    record = settle(bank.client, record.application_id, "recorded")
    if record.fee_status == "unpaid":
        notice = bank.client.fees.get(record.application_id)
        assert notice.total > 0 and notice.total == sum(i.amount for i in notice.items)
        key = f"{record.client_reference}:pay"
        receipt = bank.client.fees.pay(record.application_id, Payment(amount=notice.total), idempotency_key=key)
        again = bank.client.fees.pay(record.application_id, Payment(amount=notice.total), idempotency_key=key)
        assert again.payment_id == receipt.payment_id and again.receipt_number == receipt.receipt_number
        assert bank.client.fees.receipt(receipt.payment_id) == receipt
    return settle(bank.client, record.application_id)
