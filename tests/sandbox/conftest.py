from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

import sdk
from sandbox.app import create_app
from sandbox.centre import Centre
from sandbox.store import Store
from sdk.signing import generate_private_key, jwk_from_public_key
from tests import factories as f


@dataclass
class Running:
    url: str
    centre: Centre
    store: Store


@pytest.fixture
def sandbox(tmp_path: object) -> Iterator[Running]:
    """The sandbox centre on a loopback port, served by uvicorn in a thread."""
    store = Store()
    app = create_app(store)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
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
    key: object
    client: sdk.Client


@pytest.fixture
def bank(sandbox: Running) -> Iterator[Bank]:
    """A bank branch with an account at the centre and an enrolled key."""
    iid = sandbox.centre.create_institution(
        name="中国示例银行股份有限公司合肥分行", uscc=f.BANK_USCC, licence_no="B0001H234010001", district="340121"
    )
    token = sandbox.centre.issue_enrolment_token(iid)
    key = generate_private_key()
    with sdk.Client(sandbox.url) as anon:
        enrolled = anon.credentials.enroll(token, jwk_from_public_key(key.public_key()))
    client = sdk.Client(sandbox.url, sdk.Credential(enrolled.key_id, key))
    try:
        yield Bank(iid, enrolled.key_id, key, client)
    finally:
        client.close()
