"""The provincial platform's envelope (issue 21, "Envelope tests"): round trip and every refusal.

A replayed nonce, a stale timestamp, a message signed by another key, a tampered encData, a swapped
encKey and an altered iv are each refused with their own code; the sender's key comes from the
receiver's enrolment records, never from the message; the nonce is fresh for every message.
"""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from sdk.dialects.province import (
    EnvelopeRefused,
    NonceWindow,
    PlatformAnswerError,
    Sealed,
    StaticPeers,
    answer,
    open_answer,
    open_envelope,
    seal,
    signed_text,
)
from sdk.gm.sm2 import Sm2PrivateKey, to_c1c3c2

BANK = Sm2PrivateKey.generate()
PLATFORM = Sm2PrivateKey.generate()
MESSAGE: dict[str, Any] = {"BDCDYH": "340121001001GB00001F00010001", "BDBZZQSE": "150.5", "DYFS": "1"}


def _peers() -> StaticPeers:
    return StaticPeers({"BANK-AH-001": BANK.public})


def _open(sealed: Sealed, window: NonceWindow | None = None, **kw: Any) -> Any:
    return open_envelope(
        sealed.headers, sealed.body, recipient=PLATFORM, peers=_peers(), window=window or NonceWindow(), **kw
    )


def _sealed(**kw: Any) -> Sealed:
    return seal(MESSAGE, app_id="BANK-AH-001", signer=BANK, recipient=PLATFORM.public, **kw)


def _refused(code: str, sealed: Sealed, window: NonceWindow | None = None, **kw: Any) -> EnvelopeRefused:
    with pytest.raises(EnvelopeRefused) as caught:
        _open(sealed, window, **kw)
    assert caught.value.code == code, caught.value
    return caught.value


def test_round_trip_and_the_wire_shape() -> None:
    sealed = _sealed()
    assert set(sealed.headers) == {"appId", "timestamp", "nonce"}
    assert set(sealed.body) == {"encData", "encKey", "iv", "signature"}
    assert "340121001001GB00001F00010001" not in json.dumps(sealed.body)  # no business data in clear
    opened = _open(sealed)
    assert opened.data == MESSAGE and opened.app_id == "BANK-AH-001" and opened.nonce == sealed.headers["nonce"]
    assert abs(opened.timestamp_ms / 1000 - time.time()) < 5
    # the signature is SM2 (GM/T 0009 user id) over encData + timestamp + nonce
    BANK.public.verify(
        base64.b64decode(sealed.body["signature"]),
        signed_text(sealed.body["encData"], sealed.headers["timestamp"], sealed.headers["nonce"]),
    )


def test_the_nonce_and_key_are_fresh_for_every_message() -> None:
    a, b = _sealed(), _sealed()
    assert a.headers["nonce"] != b.headers["nonce"] and len(a.headers["nonce"]) == 32
    assert a.body["encKey"] != b.body["encKey"] and a.body["iv"] != b.body["iv"]
    assert a.body["encData"] != b.body["encData"]


def test_a_replayed_nonce_is_refused() -> None:
    window = NonceWindow()
    sealed = _sealed()
    _open(sealed, window)
    _refused("4013", sealed, window)
    _open(_sealed(), window)  # the next message has its own nonce


def test_a_forged_message_does_not_burn_the_nonce() -> None:
    window = NonceWindow()
    sealed = _sealed()
    forged = Sealed(sealed.headers, {**sealed.body, "signature": _sealed().body["signature"]})
    _refused("4011", forged, window)
    # nor does a copy with a swapped encKey or altered iv (neither is signed: it passes the signature check)
    _refused("4014", Sealed(sealed.headers, {**sealed.body, "encKey": _sealed().body["encKey"]}), window)
    _open(sealed, window)  # the genuine message with that nonce still passes


def test_a_stale_or_future_timestamp_is_refused() -> None:
    _refused("4012", _sealed(now=time.time() - 301))
    _refused("4012", _sealed(now=time.time() + 301))
    _open(_sealed(now=time.time() - 200))
    _refused("4012", _sealed(now=time.time() - 200), max_skew=60)


def test_a_message_signed_by_another_key_is_refused_even_when_it_brings_that_key() -> None:
    intruder = Sm2PrivateKey.generate()
    forged = seal(MESSAGE, app_id="BANK-AH-001", signer=intruder, recipient=PLATFORM.public)
    _refused("4011", forged)
    # the vendor code trusted a public key sent inside the message: here it is ignored
    carrying = Sealed(
        {**forged.headers, "publicKey": intruder.public.to_pem().decode()},
        {**forged.body, "publicKey": base64.b64encode(intruder.public.raw).decode()},
    )
    _refused("4011", carrying)


def test_an_unenrolled_app_id_is_refused() -> None:
    stranger = seal(MESSAGE, app_id="BANK-XX-999", signer=BANK, recipient=PLATFORM.public)
    _refused("4010", stranger)


def test_tampered_enc_data_is_refused() -> None:
    sealed = _sealed()
    raw = bytearray(base64.b64decode(sealed.body["encData"]))
    raw[-1] ^= 0x01
    _refused("4011", Sealed(sealed.headers, {**sealed.body, "encData": base64.b64encode(bytes(raw)).decode()}))
    # encData of another message (same sender, same key) does not fit this one's signature either
    _refused("4011", Sealed(sealed.headers, {**sealed.body, "encData": _sealed().body["encData"]}))


def test_a_swapped_enc_key_is_refused() -> None:
    sealed = _sealed()
    other = _sealed()  # another message to the same recipient: its encKey unwraps, to another SM4 key
    _refused("4014", Sealed(sealed.headers, {**sealed.body, "encKey": other.body["encKey"]}))
    # a key wrapped to someone else does not unwrap at all
    elsewhere = seal(MESSAGE, app_id="BANK-AH-001", signer=BANK, recipient=Sm2PrivateKey.generate().public)
    _refused("4014", Sealed(sealed.headers, {**sealed.body, "encKey": elsewhere.body["encKey"]}))


def test_an_altered_iv_is_refused() -> None:
    # the vendor format does not sign the iv; changing it rewrites the first plaintext block at will,
    # so the plaintext names its own nonce, timestamp and appId and the receiver holds them to the headers
    sealed = _sealed()
    iv = bytearray(base64.b64decode(sealed.body["iv"]))
    iv[4] ^= ord("n") ^ ord("N")  # '{"nonce"' → '{"noNce"': still JSON, no longer bound
    with pytest.raises(EnvelopeRefused) as caught:
        _open(Sealed(sealed.headers, {**sealed.body, "iv": base64.b64encode(bytes(iv)).decode()}))
    assert caught.value.code in ("4014", "4015")


def test_malformed_envelopes_are_refused_with_4001() -> None:
    sealed = _sealed()
    _refused("4001", Sealed({k: v for k, v in sealed.headers.items() if k != "nonce"}, sealed.body))
    _refused("4001", Sealed({**sealed.headers, "nonce": "short"}, sealed.body))
    _refused("4001", Sealed({**sealed.headers, "timestamp": "yesterday"}, sealed.body))
    _refused("4001", Sealed(sealed.headers, {k: v for k, v in sealed.body.items() if k != "iv"}))
    _refused("4001", Sealed(sealed.headers, {**sealed.body, "encKey": "not base64!"}))


def test_headers_are_read_case_insensitively_as_http_lowercases_them() -> None:
    sealed = _sealed()
    lowered = {k.lower(): v for k, v in sealed.headers.items()}
    assert _open(Sealed(lowered, sealed.body)).data == MESSAGE


def test_a_raw_c1c3c2_enc_key_opens_too() -> None:
    sealed = _sealed()
    raw_key = to_c1c3c2(base64.b64decode(sealed.body["encKey"]))
    assert _open(Sealed(sealed.headers, {**sealed.body, "encKey": base64.b64encode(raw_key).decode()})).data == MESSAGE


def test_answers_carry_a_sealed_data_or_a_refusal_code() -> None:
    platform_peers = StaticPeers({"PLATFORM-AH": PLATFORM.public})
    reply = seal({"YWH": "2026-0001", "amount": str(Decimal("150.50"))}, app_id="PLATFORM-AH", signer=PLATFORM,
                 recipient=BANK.public)
    doc = json.loads(json.dumps(answer("0000", data=reply)))
    assert doc["head"] == {"code": "0000", "msg": "成功"}
    assert open_answer(doc, recipient=BANK, peers=platform_peers, window=NonceWindow()) == {
        "YWH": "2026-0001", "amount": "150.50"
    }
    with pytest.raises(PlatformAnswerError) as caught:
        open_answer(answer("4220", "BDCDYH 格式错误"), recipient=BANK, peers=platform_peers, window=NonceWindow())
    assert (caught.value.code, caught.value.msg) == ("4220", "BDCDYH 格式错误")
    # an answer names the request it answers: a genuine answer to another request (withheld, then replayed in
    # the window as this one's answer) is refused, and so is one naming none when the request's nonce is given
    to_a = seal({"YWH": "A"}, app_id="PLATFORM-AH", signer=PLATFORM, recipient=BANK.public, reply_to="a" * 32)
    doc_a = answer("0000", data=to_a)
    for wrong in (doc_a, doc):
        with pytest.raises(EnvelopeRefused) as swapped:
            open_answer(wrong, recipient=BANK, peers=platform_peers, window=NonceWindow(), reply_to="b" * 32)
        assert swapped.value.code == "4015"
    assert open_answer(doc_a, recipient=BANK, peers=platform_peers, window=NonceWindow(), reply_to="a" * 32) == {
        "YWH": "A"
    }
    # an answer signed by the bank's own key (or anyone but the enrolled platform) is refused
    with pytest.raises(EnvelopeRefused):
        open_answer(answer("0000", data=_sealed()), recipient=BANK, peers=platform_peers, window=NonceWindow())
