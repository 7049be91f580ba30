"""SM4 (GB/T 32907) data encryption: GCM by default, CBC where a centre needs it.

Built on ``cryptography`` (OpenSSL's SM4), so it needs no extra. Layouts, the ones GmSSL and
most peers use:

* GCM: ``nonce (12) ‖ ciphertext ‖ tag (16)``, with optional associated data;
* CBC: ``iv (16) ‖ ciphertext`` with PKCS#7 padding. CBC has no integrity of its own: use it only
  inside something signed (a signed request or webhook body), never alone at rest.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["KEY_SIZE", "sm4_cbc_decrypt", "sm4_cbc_encrypt", "sm4_gcm_decrypt", "sm4_gcm_encrypt"]

KEY_SIZE = 16
_NONCE, _TAG, _BLOCK = 12, 16, 16


def _key(key: bytes) -> algorithms.SM4:
    if len(key) != KEY_SIZE:
        raise ValueError(f"an SM4 key is 16 bytes, not {len(key)}")
    return algorithms.SM4(bytes(key))


def sm4_gcm_encrypt(key: bytes, plaintext: bytes, aad: bytes = b"", *, nonce: bytes | None = None) -> bytes:
    """``nonce ‖ ciphertext ‖ tag`` of ``plaintext`` under ``key`` (a fresh random 96-bit nonce)."""
    nonce = os.urandom(_NONCE) if nonce is None else nonce
    if len(nonce) != _NONCE:
        raise ValueError("an SM4-GCM nonce is 12 bytes")
    encryptor = Cipher(_key(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    body = encryptor.update(plaintext) + encryptor.finalize()
    return nonce + body + encryptor.tag


def sm4_gcm_decrypt(key: bytes, data: bytes, aad: bytes = b"") -> bytes:
    """The plaintext of ``nonce ‖ ciphertext ‖ tag``.

    Raises:
        ValueError: too short, or the tag does not verify (wrong key, altered, other associated data).
    """
    if len(data) < _NONCE + _TAG:
        raise ValueError("an SM4-GCM message is at least 28 bytes")
    nonce, body, tag = data[:_NONCE], data[_NONCE:-_TAG], data[-_TAG:]
    decryptor = Cipher(_key(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    try:
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag:
        raise ValueError("SM4-GCM: the tag does not verify (wrong key, or the data was altered)") from None


def sm4_cbc_encrypt(key: bytes, plaintext: bytes, *, iv: bytes | None = None) -> bytes:
    """``iv ‖ ciphertext`` (PKCS#7 padded) of ``plaintext`` under ``key``."""
    iv = os.urandom(_BLOCK) if iv is None else iv
    if len(iv) != _BLOCK:
        raise ValueError("an SM4-CBC iv is 16 bytes")
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(_key(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()


def sm4_cbc_decrypt(key: bytes, data: bytes) -> bytes:
    """The plaintext of ``iv ‖ ciphertext``.

    Raises:
        ValueError: not whole blocks, or the padding is wrong (wrong key or altered).
    """
    if len(data) < 2 * _BLOCK or len(data) % _BLOCK:
        raise ValueError("an SM4-CBC message is an iv and whole 16-byte blocks")
    decryptor = Cipher(_key(key), modes.CBC(data[:_BLOCK])).decryptor()
    padded = decryptor.update(data[_BLOCK:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ValueError("SM4-CBC: bad padding (wrong key, or the data was altered)") from None
