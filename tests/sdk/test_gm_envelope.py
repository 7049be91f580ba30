"""SM4 encryption of a body's personal fields under a per-body key wrapped with SM2 (issue 19 item 1).

Round trips in SM4-GCM and SM4-CBC with the key in either SM2 layout peers send, the envelope a
peer made with OpenSSL (its SM2 encryption, its SM4) opened by the SDK, and tampering refused.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sdk.gm.envelope import open_fields, personal_pointers, seal_fields
from sdk.gm.sm2 import Sm2PrivateKey, ciphertext_layout
from tests import factories as f


def _application() -> dict[str, Any]:
    return f.application_dict("mortgage_first", "LN-ENV-1", complete=True)


def test_personal_fields_are_found_in_every_party() -> None:
    doc = _application()
    pointers = list(personal_pointers(doc))
    assert pointers and all(p.rsplit("/", 1)[1] in ("name", "id_number", "phone") for p in pointers)
    assert any(p.endswith("/id_number") for p in pointers) and any(p.endswith("/name") for p in pointers)


@pytest.mark.parametrize("mode", ["SM4-GCM", "SM4-CBC"])
@pytest.mark.parametrize("layout", ["asn1", "c1c3c2"])
def test_round_trip_in_each_mode_and_key_layout(mode: Any, layout: Any) -> None:
    centre = Sm2PrivateKey.generate()
    doc = _application()
    sealed = seal_fields(doc, centre.public, mode=mode, key_layout=layout)
    text = json.dumps(sealed, ensure_ascii=False)
    for pointer in personal_pointers(doc):  # no personal value left in clear
        node: Any = doc
        for token in pointer[1:].split("/"):
            node = node[int(token)] if isinstance(node, list) else node[token]
        assert json.dumps(node, ensure_ascii=False)[1:-1] not in text
    assert ciphertext_layout(base64.b64decode(sealed["encryption"]["key"])) == layout
    assert open_fields(sealed, centre) == doc
    with pytest.raises(ValueError):
        open_fields(sealed, Sm2PrivateKey.generate())  # not the recipient


def test_gcm_refuses_an_altered_or_moved_field() -> None:
    centre = Sm2PrivateKey.generate()
    sealed = seal_fields(_application(), centre.public)
    first, second = sealed["encryption"]["fields"][:2]
    moved = json.loads(json.dumps(sealed))
    a = moved
    for token in first[1:].split("/")[:-1]:
        a = a[int(token)] if isinstance(a, list) else a[token]
    b = moved
    for token in second[1:].split("/")[:-1]:
        b = b[int(token)] if isinstance(b, list) else b[token]
    a[first.rsplit("/", 1)[1]], b[second.rsplit("/", 1)[1]] = b[second.rsplit("/", 1)[1]], a[first.rsplit("/", 1)[1]]
    with pytest.raises(ValueError, match="tag"):
        open_fields(moved, centre)


def test_an_envelope_made_with_openssl_opens_in_the_sdk(tmp_path: Path) -> None:
    """A peer's envelope: the SM4 key wrapped by ``openssl pkeyutl -encrypt``, a field by ``openssl enc -sm4-cbc``."""
    openssl = shutil.which("openssl")
    assert openssl
    centre = Sm2PrivateKey.generate()
    (tmp_path / "pub.pem").write_bytes(centre.public.to_pem())
    key, iv = bytes(range(16)), bytes(range(16, 32))
    wrapped = subprocess.run([openssl, "pkeyutl", "-encrypt", "-pubin", "-inkey", str(tmp_path / "pub.pem")],
                             input=key, capture_output=True, check=True).stdout  # fmt: skip
    name = json.dumps("张三").encode()
    field = subprocess.run([openssl, "enc", "-sm4-cbc", "-K", key.hex(), "-iv", iv.hex()],
                           input=name, capture_output=True, check=True).stdout  # fmt: skip
    doc = {
        "obligors": [{"name": {"sm4": base64.b64encode(iv + field).decode()}, "id_number": "x"}],
        "encryption": {"alg": "SM4-CBC", "key": base64.b64encode(wrapped).decode(), "fields": ["/obligors/0/name"]},
    }
    assert open_fields(doc, centre) == {"obligors": [{"name": "张三", "id_number": "x"}]}
