"""Every input is bounded before work (issue 17 item 2), and authentication comes before parsing.

- an unsigned 256 MiB upload streamed chunked is answered 401 from its headers alone: the
  centre reads (almost) none of it, at once, and its memory does not grow. Before the fix the
  whole body was read before the 401 (1 GiB: 88 s, +1.5 GiB).
- a signed 7 MiB application (docs/api.md §11: 1 MiB) is refused 413, by its Content-Length
  and, sent chunked without one, while streaming.
- a material is bounded by the size its declaration gave: more bytes are refused 413.
- an unsigned request with a body that is not even JSON gets 401, not a validation error; the
  same for an admin route without its token.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import TypeAdapter

from sdk.models import Application
from sdk.signing import KeySigner, sign_request
from tests import factories as f
from tests import proof
from tests.sandbox.conftest import Bank, Running

MiB = 1024 * 1024


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _stream_unsigned(url: str, total: int) -> tuple[int, float, bytes]:
    """POST ``total`` bytes chunked without a signature; stop sending once the centre answers.

    Answers the bytes sent before the answer, the seconds it took, and the status line.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.settimeout(0.0)
    head = (f"POST /v1/applications HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()  # fmt: skip
    chunk = b"%x\r\n" % MiB + b"x" * MiB + b"\r\n"
    started = time.monotonic()
    sent = 0
    answer = b""
    sock.setblocking(True)
    sock.sendall(head)
    sock.settimeout(0.05)
    try:
        while sent < total and time.monotonic() - started < 120:
            with contextlib.suppress(TimeoutError):
                answer += sock.recv(65536)
            if answer:
                break
            sock.sendall(chunk)
            sent += MiB
        deadline = time.monotonic() + 30
        while b"\r\n" not in answer and time.monotonic() < deadline:
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        elapsed = time.monotonic() - started
        sock.close()
    return sent, elapsed, answer.split(b"\r\n", 1)[0]


def test_an_unsigned_huge_streamed_body_is_refused_before_it_is_read(sandbox: Running) -> None:
    before = _rss()
    sent, elapsed, status = _stream_unsigned(sandbox.url, 256 * MiB)
    grown = _rss() - before
    proof.record(proof.Result(f"unsigned 256 MiB chunked upload: 401 after {sent // MiB} MiB sent, {elapsed:.2f} s, "
                              f"+{max(grown, 0) // MiB} MiB", runs=1, applications=0, lost=0, duplicated=0, refused=1,
                              expected_refusals=1, seconds=elapsed))  # fmt: skip
    assert status.startswith(b"HTTP/1.1 401"), status
    assert sent <= 16 * MiB, f"the centre read {sent // MiB} MiB before answering"
    assert elapsed < 5, f"{elapsed:.1f} s to refuse an unsigned request"
    assert grown < 64 * MiB, f"memory grew by {grown // MiB} MiB"


def _signed_create(sandbox: Running, bank: Bank, body: bytes, *, chunked: bool = False) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"idem-{time.time_ns()}"}
    request = httpx.Request("POST", f"{sandbox.url}/v1/applications", content=body, headers=headers)
    sign_request(request, KeySigner(bank.key_id, bank.key))
    with httpx.Client(timeout=60) as http:
        if not chunked:
            return http.send(request)

        def pieces() -> Iterator[bytes]:
            for i in range(0, len(body), MiB):
                yield body[i : i + MiB]

        signed = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        try:
            return http.post(request.url, content=pieces(), headers=signed)
        except httpx.HTTPError:  # the centre answered and closed while the rest was being sent
            return httpx.Response(413, json={"code": "payload_too_large"})


def _padded_application(size: int) -> bytes:
    doc = json.dumps(f.application_dict("mortgage_first", "ATK-BIG", n=5, complete=True), ensure_ascii=False)
    return (doc[:-1] + " " * (size - len(doc.encode())) + "}").encode()


def test_a_signed_application_over_one_mebibyte_is_refused(sandbox: Running, bank: Bank) -> None:
    big = _padded_application(7 * MiB)
    json.loads(big)  # valid JSON: only its size is wrong
    for chunked in (False, True):
        response = _signed_create(sandbox, bank, big, chunked=chunked)
        assert (response.status_code, response.json().get("code")) == (413, "payload_too_large"), chunked
    assert sandbox.store.all("SELECT COUNT(*) AS n FROM applications")[0]["n"] == 0
    small = _padded_application(MiB - 4096)
    assert _signed_create(sandbox, bank, small).status_code == 201


def test_a_material_is_bounded_by_its_declared_size(sandbox: Running, bank: Bank) -> None:
    doc = f.application_dict("mortgage_first", "ATK-MAT", n=6, complete=True)
    record = bank.client.applications.create(TypeAdapter(Application).validate_python(doc))
    material = doc["materials"][0]
    url = f"{sandbox.url}/v1/applications/{record.application_id}/materials/{material['id']}"
    too_long = b"%" * (material["size"] + 1)
    request = httpx.Request("PUT", url, content=too_long, headers={"Content-Type": "application/pdf"})
    sign_request(request, KeySigner(bank.key_id, bank.key))
    with httpx.Client() as http:
        response = http.send(request)
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")


def test_authentication_comes_before_the_body_is_parsed(sandbox: Running) -> None:
    with httpx.Client(base_url=sandbox.url) as http:
        unsigned = http.post("/v1/applications", content=b"{not json", headers={"Content-Type": "application/json"})
        assert (unsigned.status_code, unsigned.json()["code"]) == (401, "signature_missing")
        admin = http.post("/admin/v1/institutions", content=b"{not json", headers={"Content-Type": "application/json"})
        assert (admin.status_code, admin.json()["code"]) == (401, "admin_unauthorised")
