"""``Retry-After`` as servers really send it (issue 17 item 10): the SDK waits what the centre asked.

A real HTTP server on loopback answers 429/503 with ``Retry-After`` in each form RFC 9110 allows
and the ones seen in practice — delta-seconds, a fraction, the three HTTP-date forms, the field
repeated on two lines or joined by a proxy with a comma — then 200. The client records each wait
instead of sleeping; before the fix a fraction or a repeated field was ignored and the client
retried after its own half-second backoff.
"""

from __future__ import annotations

import email.utils
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import sdk
from sdk.retries import RetryPolicy, parse_retry_after
from sdk.signing import generate_private_key

PROFILE: dict[str, Any] = {
    "institution_id": "inst_1",
    "name": "中国示例银行股份有限公司合肥分行",
    "uscc": "91340100781081199K",
    "financial_licence_number": "B0001H234010001",
    "district": "340121",
    "channel": {"status": "open", "reason": None, "since": "2026-01-01T00:00:00Z"},
    "filing": [],
    "webhook_url": None,
}


class _Server(ThreadingHTTPServer):
    answers: list[list[tuple[str, str]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.answers:
            headers = self.server.answers.pop(0)
            body = json.dumps({"type": "urn:regbridge:error:rate_limited", "title": "slow down", "status": 429,
                               "code": "rate_limited", "detail": ""}).encode()  # fmt: skip
            self.send_response(429)
            for name, value in headers:
                self.send_header(name, value)
        else:
            body = json.dumps(PROFILE).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.answers = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _http_date(seconds: float, form: str) -> str:
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    if form == "imf":
        return email.utils.format_datetime(when, usegmt=True)
    if form == "rfc850":
        return when.strftime("%A, %d-%b-%y %H:%M:%S GMT")
    return when.strftime("%a %b %d %H:%M:%S %Y").replace(" 0", "  ", 1) if when.day < 10 else when.strftime(
        "%a %b %d %H:%M:%S %Y"
    )


CASES: dict[str, tuple[Callable[[], list[tuple[str, str]]], float, float]] = {
    "delta-seconds": (lambda: [("Retry-After", "7")], 7, 7),
    "a fraction": (lambda: [("Retry-After", "1.5")], 1.5, 1.5),
    "repeated on two lines": (lambda: [("Retry-After", "4"), ("Retry-After", "4")], 4, 4),
    "joined by a proxy": (lambda: [("Retry-After", "3, 6")], 6, 6),
    "IMF-fixdate": (lambda: [("Retry-After", _http_date(40, "imf"))], 35, 40),
    "RFC 850 date": (lambda: [("Retry-After", _http_date(40, "rfc850"))], 35, 40),
    "asctime date": (lambda: [("Retry-After", _http_date(40, "asctime"))], 35, 40),
    "quoted, with spaces": (lambda: [("Retry-After", ' "9" ')], 9, 9),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_form_of_retry_after_is_honoured(server: _Server, case: str) -> None:
    headers, low, high = CASES[case]
    server.answers = [headers()]
    waits: list[float] = []
    url = f"http://127.0.0.1:{server.server_address[1]}"
    policy = RetryPolicy(sleep=waits.append)
    with sdk.Client(url, sdk.Credential("key_1", generate_private_key()), retry=policy) as client:
        assert client.institution.get().institution_id == "inst_1"
    assert len(waits) == 1 and low <= waits[0] <= high, f"{case}: waited {waits}"


def test_what_cannot_be_read_falls_back_to_the_clients_own_backoff() -> None:
    for nonsense in ("soon", "-5", "1e400", "", "Sun, 99 Foo 1994 08:49:37 GMT"):
        assert parse_retry_after(nonsense) is None, nonsense
    assert parse_retry_after(email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)) == 0
