"""The envelope of a provincial 总对总 platform: SM4-CBC body, SM2-wrapped key, SM2 signature (``gm`` extra).

Every request (bank → platform) and every callback (platform → bank) is one envelope:

- HTTP headers ``appId`` (the sender's registration at the platform), ``timestamp`` (milliseconds
  since the Unix epoch, as text) and ``nonce`` (32 hex digits, random for every message — never
  configured, never reused);
- a JSON body ``{"encData", "encKey", "iv", "signature"}`` (each base64): ``encData`` is the
  message's JSON (UTF-8) under SM4-CBC (PKCS#7) with a fresh 16-byte key and the fresh 16-byte
  ``iv``; ``encKey`` is that key SM2-encrypted to the recipient's encryption key (GM/T 0009 §7,
  ASN.1 C1C3C2; the raw C1C3C2 layout is read too); ``signature`` is the sender's SM2 signature
  (GM/T 0009 §8: SM3 with Z_A of the sender's key and user id, DER ``SEQUENCE {r, s}``) over the
  text ``encData + timestamp + nonce``.

An answer is ``{"head": {"code": "0000", "msg": "成功"}, "data": …}``; ``data`` of a successful
answer is an envelope too (its ``appId``, ``timestamp`` and ``nonce`` as members beside the four),
sealed by the platform to the caller. A refused request answers another ``code`` (:data:`CODES`)
and ``data: null``.

What a receiver checks (:func:`open_envelope`), in this order, each refusal an
:class:`EnvelopeRefused` with its :data:`CODES` code:

1. the headers and body have their shape (``4001``);
2. ``appId`` is enrolled: the sender's public key comes from the receiver's enrolment records
   (:class:`PeerDirectory`), **never from the message** — a key sent inside a message is ignored
   (``4010``);
3. ``timestamp`` is within ``max_skew`` seconds of the receiver's clock (``4012``);
4. the signature verifies with the enrolled key (``4011``: signed by another key, or ``encData``,
   ``timestamp`` or ``nonce`` altered);
5. ``encKey`` unwraps with the receiver's key and ``encData`` decrypts and parses (``4014``: a
   swapped ``encKey`` gives garbage that fails here);
6. the plaintext is bound to its headers (``4015``). The vendor format signs neither ``iv`` nor
   ``encKey``, and a changed ``iv`` changes the first block of a CBC plaintext at will; so
   RegBridge's plaintext is ``{"nonce": …, "timestamp": …, "appId": …, "data": <message>}`` and a
   receiver requires the three to equal the headers — an altered ``iv`` or a swapped ``encKey``
   cannot keep them;
7. the nonce was not seen from this ``appId`` within the window (:class:`NonceWindow`, ``4013``).
   It is remembered only once everything else held, so neither a forgery nor a copy of a genuine
   message with a swapped ``encKey`` or ``iv`` (which the signature does not cover) can burn it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature

from sdk.gm.sm2 import Sm2PrivateKey, Sm2PublicKey
from sdk.gm.sm4 import sm4_cbc_decrypt, sm4_cbc_encrypt

__all__ = [
    "APP_ID_PATTERN",
    "BODY_MEMBERS",
    "CODES",
    "DEFAULT_MAX_SKEW",
    "HEADER_APP_ID",
    "HEADER_NONCE",
    "HEADER_TIMESTAMP",
    "SUCCESS",
    "EnvelopeRefused",
    "EnvelopeSigner",
    "NonceWindow",
    "Opened",
    "PeerDirectory",
    "PlatformAnswerError",
    "PlatformClient",
    "Sealed",
    "StaticPeers",
    "answer",
    "open_answer",
    "open_envelope",
    "parse_json",
    "seal",
    "signed_text",
]

HEADER_APP_ID = "appId"
HEADER_TIMESTAMP = "timestamp"
HEADER_NONCE = "nonce"
BODY_MEMBERS = ("encData", "encKey", "iv", "signature")
SUCCESS = "0000"
#: seconds a timestamp may differ from the receiver's clock (either way); the nonce window is as long
DEFAULT_MAX_SKEW = 300.0

#: the answer codes (``head.code``) of the dialect and what each means
CODES: dict[str, str] = {
    SUCCESS: "成功",
    "4001": "报文格式错误",
    "4010": "appId 未注册",
    "4011": "签名验证失败",
    "4012": "时间戳超出允许范围",
    "4013": "nonce 重复（重放）",
    "4014": "报文解密失败",
    "4015": "报文与报文头不一致",
    "4030": "无权办理",
    "4031": "经办人不是该机构在登记中心的有效账号",
    "4040": "记录不存在",
    "4090": "重复提交",
    "4220": "业务数据校验不通过",
    "5000": "平台内部错误",
    "5030": "平台暂停服务",
}

_NONCE = re.compile(r"[0-9A-Za-z]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{10,16}")
_APP_ID = re.compile(r"[0-9A-Za-z_.\-]{1,64}")
#: what an ``appId`` header may be (1-64 letters, digits, ``_.-``): a desk registers no other
APP_ID_PATTERN = _APP_ID


class EnvelopeRefused(ValueError):
    """A message the receiver refuses; ``code`` is its :data:`CODES` answer code, ``reason`` why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code} {CODES.get(code, '')}: {reason}")
        self.code = code
        self.reason = reason


class PlatformAnswerError(Exception):
    """An answer whose ``head.code`` is not ``0000``: ``code`` and ``msg`` as the platform gave them,
    ``data`` its (unsealed) details if any."""

    def __init__(self, code: str, msg: str, data: Any = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.data = data


class EnvelopeSigner(Protocol):
    """What signs an envelope: ``sign(data)`` answers the DER SM2 signature (GM/T 0009: SM3 with Z_A of the
    signer's public key and user id ``1234567812345678``) of ``data`` — an :class:`~sdk.gm.sm2.Sm2PrivateKey`,
    or a key that never leaves a PKCS#11 token (the agent's ``agent.credentials.pkcs11.Pkcs11Signer``)."""

    def sign(self, data: bytes, /) -> bytes: ...


class PeerDirectory(Protocol):
    """Who may send: the public key enrolled for an ``appId`` (exchanged at enrolment), or ``None``."""

    def peer_key(self, app_id: str) -> Sm2PublicKey | None: ...


@dataclass
class StaticPeers:
    """A :class:`PeerDirectory` over a fixed mapping (configuration: ``appId`` → the key enrolled)."""

    keys: dict[str, Sm2PublicKey] = field(default_factory=dict)

    def peer_key(self, app_id: str) -> Sm2PublicKey | None:
        return self.keys.get(app_id)


class NonceWindow:
    """The replay window: each ``(appId, nonce)`` is accepted once within ``seconds`` (thread-safe).

    Entries older than the window are forgotten; a message that old is refused by its timestamp
    anyway, so the window's memory is bounded by the traffic of ``2 × seconds``.
    """

    def __init__(self, seconds: float = DEFAULT_MAX_SKEW) -> None:
        self.seconds = seconds
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def admit(self, app_id: str, nonce: str, *, now: float | None = None) -> bool:
        """``True`` the first time ``nonce`` is seen from ``app_id`` in the window, ``False`` after."""
        now = time.time() if now is None else now
        with self._lock:
            horizon = now - 2 * self.seconds
            if len(self._seen) > 1024:
                self._seen = {k: t for k, t in self._seen.items() if t >= horizon}
            seen = self._seen.get((app_id, nonce))
            if seen is not None and seen >= horizon:
                return False
            self._seen[(app_id, nonce)] = now
            return True


@dataclass(frozen=True)
class Sealed:
    """One envelope: its three ``headers`` and its four-member ``body``."""

    headers: dict[str, str]
    body: dict[str, str]

    def members(self) -> dict[str, str]:
        """Headers and body as one object (how an answer's ``data`` carries an envelope)."""
        return {**self.headers, **self.body}

    @classmethod
    def from_members(cls, members: Mapping[str, Any]) -> Sealed:
        heads = (HEADER_APP_ID, HEADER_TIMESTAMP, HEADER_NONCE)
        return cls(
            {k: members[k] for k in heads if k in members}, {k: members[k] for k in BODY_MEMBERS if k in members}
        )


@dataclass(frozen=True)
class Opened:
    """A message that passed every check: who sent it, when, its nonce and its JSON ``data``; an answer
    also the nonce of the request it answers (``reply_to``, None in a request or a push)."""

    app_id: str
    timestamp_ms: int
    nonce: str
    data: Any
    reply_to: str | None = None


def signed_text(enc_data: str, timestamp: str, nonce: str) -> bytes:
    """What ``signature`` signs: the UTF-8 text ``encData + timestamp + nonce``."""
    return (enc_data + timestamp + nonce).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seal(
    data: Any,
    *,
    app_id: str,
    signer: EnvelopeSigner,
    recipient: Sm2PublicKey,
    now: float | None = None,
    reply_to: str | None = None,
) -> Sealed:
    """Seal ``data`` (any JSON value) from ``app_id`` (signed with ``signer``: an SM2 private key, or any
    :class:`EnvelopeSigner`) to ``recipient``.

    The SM4 key, the iv and the nonce are fresh random values for every call (``os.urandom``,
    ``secrets``); there is no way to give a nonce. ``now`` (seconds since the epoch) is for tests
    of the timestamp window. An answer gives ``reply_to``, the nonce of the request it answers: it
    travels inside the encrypted, bound plaintext (``replyTo``), so an answer cannot be passed off as
    another request's (:func:`open_answer`).

    Raises:
        ValueError: ``app_id`` is not 1–64 letters, digits, ``_.-``.
    """
    if not _APP_ID.fullmatch(app_id):
        raise ValueError(f"appId {app_id!r} is not 1-64 letters, digits, '_', '.', '-'")
    timestamp = str(int((time.time() if now is None else now) * 1000))
    nonce = secrets.token_hex(16)
    inner: dict[str, Any] = {"nonce": nonce, "timestamp": timestamp, "appId": app_id, "data": data}
    if reply_to is not None:
        inner["replyTo"] = reply_to
    plaintext = json.dumps(
        inner,
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    key, iv = os.urandom(16), os.urandom(16)
    enc_data = _b64(sm4_cbc_encrypt(key, plaintext, iv=iv)[16:])
    signature = _b64(signer.sign(signed_text(enc_data, timestamp, nonce)))
    return Sealed(
        {HEADER_APP_ID: app_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce},
        {"encData": enc_data, "encKey": _b64(recipient.encrypt(key)), "iv": _b64(iv), "signature": signature},
    )


def _unb64(body: Mapping[str, Any], name: str) -> bytes:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise EnvelopeRefused("4001", f"body member {name!r} is missing or not text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeRefused("4001", f"body member {name!r} is not base64") from None


def open_envelope(
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    *,
    recipient: Sm2PrivateKey,
    peers: PeerDirectory,
    window: NonceWindow,
    max_skew: float = DEFAULT_MAX_SKEW,
    now: float | None = None,
) -> Opened:
    """Check and open one envelope addressed to ``recipient`` (the module docstring lists the checks).

    ``headers`` may be an HTTP header mapping (looked up by exact and lower-case name). Any member a
    message adds (a ``publicKey``, a certificate) is ignored: the sender's key is ``peers``'.

    Raises:
        EnvelopeRefused: with the answer code of the first check that failed.
    """
    now = time.time() if now is None else now

    def header(name: str) -> str:
        value = headers.get(name) or headers.get(name.lower())
        if not isinstance(value, str) or not value:
            raise EnvelopeRefused("4001", f"header {name!r} is missing")
        return value

    app_id, timestamp, nonce = header(HEADER_APP_ID), header(HEADER_TIMESTAMP), header(HEADER_NONCE)
    if not _APP_ID.fullmatch(app_id):
        raise EnvelopeRefused("4001", "appId is not 1-64 letters, digits, '_', '.', '-'")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise EnvelopeRefused("4001", "timestamp is not milliseconds since the epoch")
    if not _NONCE.fullmatch(nonce):
        raise EnvelopeRefused("4001", "nonce is not 16-64 letters and digits")
    if not isinstance(body, Mapping):
        raise EnvelopeRefused("4001", "the body is not a JSON object")
    enc_data_text = body.get("encData")
    blobs = {name: _unb64(body, name) for name in BODY_MEMBERS}
    assert isinstance(enc_data_text, str)
    sender = peers.peer_key(app_id)
    if sender is None:
        raise EnvelopeRefused("4010", f"appId {app_id} is not enrolled")
    sent_at = int(timestamp) / 1000
    if abs(now - sent_at) > max_skew:
        off = now - sent_at
        raise EnvelopeRefused("4012", f"timestamp is {off:+.0f} s from the receiver's clock (±{max_skew:.0f} s)")
    try:
        sender.verify(blobs["signature"], signed_text(enc_data_text, timestamp, nonce))
    except InvalidSignature:
        raise EnvelopeRefused("4011", f"the signature does not verify with the key enrolled for {app_id}") from None
    if len(blobs["iv"]) != 16:
        raise EnvelopeRefused("4001", "iv is not 16 bytes")
    try:
        key = recipient.decrypt(blobs["encKey"])
        if len(key) != 16:
            raise ValueError("not an SM4 key")
        plaintext = sm4_cbc_decrypt(key, blobs["iv"] + blobs["encData"])
        inner = parse_json(plaintext.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeRefused("4014", "encKey does not unwrap to this receiver, or encData does not decrypt") from None
    if not (
        isinstance(inner, dict)
        and inner.get("nonce") == nonce
        and inner.get("timestamp") == timestamp
        and inner.get("appId") == app_id
        and "data" in inner
    ):
        raise EnvelopeRefused("4015", "the decrypted message does not name its own appId, timestamp and nonce")
    # remembered last, once everything else holds: a copy with a swapped encKey or iv (which the signature
    # does not cover) must not burn the genuine message's nonce
    if not window.admit(app_id, nonce, now=now):
        raise EnvelopeRefused("4013", f"nonce already seen from {app_id}")
    reply_to = inner.get("replyTo")
    return Opened(app_id, int(timestamp), nonce, inner["data"], reply_to if isinstance(reply_to, str) else None)


def parse_json(text: bytes | str) -> Any:
    """A message or answer body as JSON, from anyone: ``json.loads``, with a body nested too deep for the parser
    (``[[[[…``, which ``json.loads`` answers with :class:`RecursionError`) refused as bad JSON too.

    Raises:
        ValueError: not UTF-8 JSON, or nested deeper than the parser goes.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deep") from None


def answer(code: str, msg: str | None = None, data: Sealed | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The answer object ``{"head": {"code", "msg"}, "data"}``; a :class:`Sealed` ``data`` as its members."""
    payload = data.members() if isinstance(data, Sealed) else (dict(data) if data is not None else None)
    return {"head": {"code": code, "msg": msg if msg is not None else CODES.get(code, "")}, "data": payload}


def open_answer(
    document: Any,
    *,
    recipient: Sm2PrivateKey,
    peers: PeerDirectory,
    window: NonceWindow,
    max_skew: float = DEFAULT_MAX_SKEW,
    now: float | None = None,
    reply_to: str | None = None,
) -> Any:
    """The ``data`` of a successful answer, its envelope opened and checked as :func:`open_envelope` does;
    with ``reply_to`` (the request's nonce) it must also be the answer to that request (its ``replyTo``):
    a genuine answer to another request, withheld and replayed within the window, is refused.

    Raises:
        PlatformAnswerError: ``head.code`` is not ``0000``.
        EnvelopeRefused: the answer is malformed, fails a check (``4015``: not the answer to ``reply_to``).
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("head"), Mapping):
        raise EnvelopeRefused("4001", "the answer has no head")
    head = document["head"]
    code, msg = str(head.get("code", "")), str(head.get("msg", ""))
    if code != SUCCESS:
        raise PlatformAnswerError(code, msg, document.get("data"))
    data = document.get("data")
    if not isinstance(data, Mapping):
        raise EnvelopeRefused("4001", "a successful answer's data is not an envelope")
    sealed = Sealed.from_members(data)
    opened = open_envelope(
        sealed.headers, sealed.body, recipient=recipient, peers=peers, window=window, max_skew=max_skew, now=now
    )
    if reply_to is not None and opened.reply_to != reply_to:
        raise EnvelopeRefused("4015", "the answer is not to this request (its replyTo is not the request's nonce)")
    return opened.data


class PlatformClient:
    """Calls a platform's services in its envelope: ``call("create", data)`` seals ``data`` to the
    platform, POSTs it to ``{url}/api/{service}``, and answers the opened ``data`` of its answer.

    Args:
        url: the platform's base URL.
        app_id: this bank's ``appId`` at the platform (its registration).
        signer: this bank's SM2 signing key (the one whose public half the platform enrolled), or an
            :class:`EnvelopeSigner` over a key kept in a token.
        decryption_key: this bank's SM2 encryption key (answers are sealed to its public half).
        platform_app_id: the platform's own ``appId``; ``platform_key`` its signing key and
            ``platform_encryption_key`` the key requests are sealed to — both from the enrolment,
            never from a message.
        window: the replay window answers are checked against (a fresh one when omitted).
        http: an ``httpx.Client`` to send with (tests, proxies); one of its own when omitted.
        transport: the ``httpx`` transport of the client of its own (the agent's times and counts requests and
            tells whether the platform could be reached); httpx's default when omitted.

    Raises (from :meth:`call`):
        PlatformAnswerError: the platform refused (``head.code`` not ``0000``).
        EnvelopeRefused: the answer failed a check.
        httpx.HTTPError: the platform could not be reached.
    """

    def __init__(
        self,
        url: str,
        *,
        app_id: str,
        signer: EnvelopeSigner,
        decryption_key: Sm2PrivateKey,
        platform_app_id: str,
        platform_key: Sm2PublicKey,
        platform_encryption_key: Sm2PublicKey,
        window: NonceWindow | None = None,
        http: Any = None,
        timeout: float = 30.0,
        transport: Any = None,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.app_id = app_id
        self._signer = signer
        self._decryption_key = decryption_key
        self._peers = StaticPeers({platform_app_id: platform_key})
        self._recipient = platform_encryption_key
        self._window = window or NonceWindow()
        self._http: httpx.Client = http or httpx.Client(timeout=timeout, transport=transport)
        self._own_http = http is None

    def call(self, service: str, data: Any) -> Any:
        """One request: ``data`` sealed, sent to ``service``, the answer checked and opened."""
        sealed = seal(data, app_id=self.app_id, signer=self._signer, recipient=self._recipient)
        response = self._http.post(f"{self.url}/api/{service}", headers=sealed.headers, json=sealed.body)
        try:
            document = parse_json(response.content)
        except ValueError:
            raise EnvelopeRefused("4001", f"HTTP {response.status_code}: the answer is not JSON") from None
        return open_answer(document, recipient=self._decryption_key, peers=self._peers, window=self._window,
                           reply_to=sealed.headers[HEADER_NONCE])  # fmt: skip

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> PlatformClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
