"""国密 (the Chinese national algorithms): SM2 keys, SM3 digests, SM4 encryption.

:mod:`sdk.gm.sm2` needs the ``regbridge[gm]`` extra (``gmssl-pyx``) once a key is used;
:mod:`sdk.gm.sm4` and the SM3 digest need only ``cryptography``. ``import sdk`` never needs
the extra. The crypto suite that selects them is :mod:`sdk.suites`.
"""

from __future__ import annotations

from .sm2 import DEFAULT_USER_ID, GmUnavailable, Sm2PrivateKey, Sm2PublicKey
from .sm4 import sm4_cbc_decrypt, sm4_cbc_encrypt, sm4_gcm_decrypt, sm4_gcm_encrypt

__all__ = [
    "DEFAULT_USER_ID",
    "GmUnavailable",
    "Sm2PrivateKey",
    "Sm2PublicKey",
    "sm3",
    "sm4_cbc_decrypt",
    "sm4_cbc_encrypt",
    "sm4_gcm_decrypt",
    "sm4_gcm_encrypt",
]


def sm3(data: bytes) -> bytes:
    """The SM3 digest (GB/T 32905) of ``data``, 32 bytes."""
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()
