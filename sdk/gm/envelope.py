"""SM4 encryption of the personal fields of a JSON body (seed 002 §5.1 "加密传输"), the key wrapped with SM2.

A body (an application, a webhook event, certificate metadata) keeps its shape; each personal
field — the ``name``, ``id_number`` and ``phone`` of every party (any object carrying an
``id_number``), and each name of a ``right_holders``/``obligors`` list of strings (certificate
metadata) — is replaced by ``{"sm4": "<base64>"}``, and the body gains one member::

    "encryption": {
      "alg": "SM4-GCM" | "SM4-CBC",
      "key": "<base64 SM2 ciphertext of the 16-byte SM4 key>",
      "key_layout": "asn1" | "c1c3c2",   # informative: the reader recognises either
      "fields": ["/obligors/0/name", "/obligors/0/id_number", …]   # JSON pointers (RFC 6901)
    }

The SM4 key is fresh for each body and wrapped to the recipient's SM2 encryption key (GM/T 0009
§7: ASN.1 ``SM2Cipher`` by default, raw C1C3C2 as many peers send it). SM4-GCM (default) gives each
field a fresh 96-bit nonce and binds it to its pointer as associated data, so a value moved to
another field fails; SM4-CBC (for a centre that asks for it) has a fresh iv per field and no
integrity of its own — the RFC 9421 signature over the body's digest provides it.
Fields are encrypted over their JSON text, so a value of any JSON type comes back as it was.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Iterator
from typing import Any, Literal

from .sm2 import Sm2PrivateKey, Sm2PublicKey, ciphertext_layout, to_c1c3c2
from .sm4 import sm4_cbc_decrypt, sm4_cbc_encrypt, sm4_gcm_decrypt, sm4_gcm_encrypt

__all__ = [
    "ENVELOPE_MEMBER", "PERSONAL_FIELDS", "PERSONAL_NAME_LISTS", "open_fields", "personal_pointers", "seal_fields",
]

ENVELOPE_MEMBER = "encryption"
#: the members of a party object (one carrying an ``id_number``) that are personal data
PERSONAL_FIELDS = ("name", "id_number", "phone")
#: lists of parties' names as plain strings (certificate metadata: 权利人, 义务人): each item is personal data
PERSONAL_NAME_LISTS = ("right_holders", "obligors")
Mode = Literal["SM4-GCM", "SM4-CBC"]


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def personal_pointers(document: Any, _path: str = "") -> Iterator[str]:
    """JSON pointers of every personal field present (not null) in ``document``, in document order: the
    :data:`PERSONAL_FIELDS` of a party object, and each name in a :data:`PERSONAL_NAME_LISTS` list of strings."""
    if isinstance(document, dict):
        if "id_number" in document:
            for name in PERSONAL_FIELDS:
                if document.get(name) is not None:
                    yield f"{_path}/{name}"
        for key, value in document.items():
            if key in PERSONAL_NAME_LISTS and isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, str):
                        yield f"{_path}/{_escape(str(key))}/{i}"
            if key != ENVELOPE_MEMBER and isinstance(value, dict | list):
                yield from personal_pointers(value, f"{_path}/{_escape(str(key))}")
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield from personal_pointers(value, f"{_path}/{i}")


def _parent(document: Any, pointer: str) -> tuple[Any, str | int]:
    if not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON pointer")
    tokens = [_unescape(t) for t in pointer[1:].split("/")]
    node = document
    for token in tokens[:-1]:
        node = node[int(token)] if isinstance(node, list) else node[token]
    last = tokens[-1]
    return node, (int(last) if isinstance(node, list) else last)


def seal_fields(
    document: dict[str, Any],
    recipient: Sm2PublicKey,
    *,
    pointers: list[str] | None = None,
    mode: Mode = "SM4-GCM",
    key_layout: Literal["asn1", "c1c3c2"] = "asn1",
) -> dict[str, Any]:
    """A copy of ``document`` with its personal fields (or ``pointers``) SM4-encrypted for ``recipient``.

    Raises:
        ValueError: the document already carries an envelope, or a pointer names nothing.
    """
    if ENVELOPE_MEMBER in document:
        raise ValueError(f"the document already has an {ENVELOPE_MEMBER!r} member")
    out = copy.deepcopy(document)
    fields = list(personal_pointers(out)) if pointers is None else list(pointers)
    key = os.urandom(16)
    for pointer in fields:
        parent, name = _parent(out, pointer)
        plain = json.dumps(parent[name], ensure_ascii=False, separators=(",", ":")).encode()
        if mode == "SM4-GCM":
            sealed = sm4_gcm_encrypt(key, plain, pointer.encode())
        elif mode == "SM4-CBC":
            sealed = sm4_cbc_encrypt(key, plain)
        else:
            raise ValueError(f"unknown mode {mode!r}; SM4-GCM or SM4-CBC")
        parent[name] = {"sm4": base64.b64encode(sealed).decode()}
    wrapped = recipient.encrypt(key)
    if key_layout == "c1c3c2":
        wrapped = to_c1c3c2(wrapped)
    out[ENVELOPE_MEMBER] = {
        "alg": mode,
        "key": base64.b64encode(wrapped).decode(),
        "key_layout": key_layout,
        "fields": fields,
    }
    return out


def open_fields(document: dict[str, Any], key: Sm2PrivateKey) -> dict[str, Any]:
    """``document`` with its encrypted fields restored and the envelope removed (a document without
    one is returned as it is).

    Raises:
        ValueError: the envelope is malformed, the key is not the recipient's, or a field was altered
            (SM4-GCM) or does not decrypt.
    """
    envelope = document.get(ENVELOPE_MEMBER)
    if envelope is None:
        return copy.deepcopy(document)
    try:
        mode, wrapped, fields = envelope["alg"], base64.b64decode(envelope["key"], validate=True), envelope["fields"]
    except (KeyError, TypeError, ValueError):
        raise ValueError("the encryption envelope is malformed") from None
    if mode not in ("SM4-GCM", "SM4-CBC") or not isinstance(fields, list):
        raise ValueError(f"the encryption envelope's alg {mode!r} is not SM4-GCM or SM4-CBC")
    ciphertext_layout(wrapped)  # either layout; anything else is refused here
    sm4_key = key.decrypt(wrapped)
    if len(sm4_key) != 16:
        raise ValueError("the wrapped key is not an SM4 key")
    out = {k: v for k, v in copy.deepcopy(document).items() if k != ENVELOPE_MEMBER}
    for pointer in fields:
        try:
            parent, name = _parent(out, str(pointer))
            sealed = base64.b64decode(parent[name]["sm4"], validate=True)
        except (KeyError, IndexError, TypeError, ValueError):
            raise ValueError(f"the encrypted field {pointer} is missing or malformed") from None
        plain = (
            sm4_gcm_decrypt(sm4_key, sealed, str(pointer).encode())
            if mode == "SM4-GCM"
            else sm4_cbc_decrypt(sm4_key, sealed)
        )
        try:
            parent[name] = json.loads(plain)
        except ValueError:
            raise ValueError(f"the field {pointer} does not decrypt to JSON (wrong key, or altered)") from None
    return out
