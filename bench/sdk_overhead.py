"""SDK overhead: one signed, validated request through ``sdk.Client`` against a raw httpx request.

Both go to the same loopback server, which answers ``GET /v1/institution`` with the same body
at once (no signature check on its side, so that only the client's work differs): the SDK signs
(RFC 9421 with Content-Digest and a nonce), sends, checks and parses the answer into its model;
the raw client sends and reads the bytes. Blocks of each alternate, and the medians are compared.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from typing import Any

import httpx
import uvicorn

import sdk
from bench.common import Result
from sandbox.local import LocalCentre
from sdk.signing import generate_private_key

__all__ = ["run"]


def _profile_body() -> bytes:
    """A genuine ``GET /v1/institution`` answer, from a sandbox centre."""
    with LocalCentre() as centre:
        iid = centre.centre.create_institution(name="中国示例银行股份有限公司合肥分行", uscc="91340100781081199K",
                                               licence_no="B0001H234010001", district="340121")  # fmt: skip
        token = centre.centre.issue_enrolment_token(iid)
        key = generate_private_key()
        with sdk.Client(centre.url) as anon:
            enrolled = anon.credentials.enroll(token, sdk.signing.jwk_from_public_key(key.public_key()))
        with sdk.Client(centre.url, sdk.Credential(enrolled.key_id, key)) as client:
            return client.institution.get().model_dump_json().encode()


class _Fixed:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def run(requests: int = 3000, block: int = 250) -> Result:
    body = _profile_body()
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(_Fixed(body), log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        client = sdk.Client(url, sdk.Credential("key_bench", generate_private_key()))
        raw = httpx.Client(base_url=url)
        for _ in range(100):  # warm both: connections, imports, caches
            client.institution.get()
            raw.get("/v1/institution").read()
        sdk_blocks, raw_blocks = [], []
        for _ in range(max(1, requests // block)):
            started = time.perf_counter()
            for _ in range(block):
                raw.get("/v1/institution").read()
            raw_blocks.append((time.perf_counter() - started) / block)
            started = time.perf_counter()
            for _ in range(block):
                client.institution.get()
            sdk_blocks.append((time.perf_counter() - started) / block)
        client.close()
        raw.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    sdk_t, raw_t = statistics.median(sdk_blocks), statistics.median(raw_blocks)
    ratio = sdk_t / raw_t
    return Result(
        "SDK overhead (signed, validated request vs raw httpx, loopback)",
        f"{sdk_t * 1e3:.2f} ms/request",
        f"{raw_t * 1e3:.2f} ms/request",
        ratio,
        "≤ 1.25×",
        ratio <= 1.25,
        [
            f"{requests} requests each, alternating blocks of {block}; the difference, "
            f"{(sdk_t - raw_t) * 1e6:.0f} µs, is signing, the checks and the model."
        ],
    )
