"""SM2 keys (GB/T 32918, GM/T 0003): signatures with SM3 and the signer's user id, key wrapping.

Signing and verifying follow GM/T 0009 §8: the signed value is SM3(Z_A ‖ M), where
Z_A = SM3(ENTL ‖ ID ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A) binds the signer's user id (``ID``, default
``1234567812345678``) and public key; signatures are DER ``SEQUENCE { r INTEGER, s INTEGER }``.
Encryption (used only to wrap a per-request SM4 key) answers the GM/T 0009 §7.2 ASN.1 layout
``SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING(32), ciphertext OCTET STRING }`` (C1C3C2) and
decrypts that layout or the raw ``04 ‖ x ‖ y ‖ C3 ‖ C2`` one (:func:`ciphertext_layout` says which).

The curve arithmetic is GmSSL's (``gmssl_pyx``, a C extension bundling GmSSL 3.1, the
``regbridge[gm]`` extra); keys in files are PKCS#8 / SubjectPublicKeyInfo with the SM2 curve OID
``1.2.156.10197.1.301``, as OpenSSL 3 writes them (``openssl genpkey -algorithm SM2``).
Importing this module does not need the extra; using a key does.
"""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

__all__ = [
    "DEFAULT_USER_ID",
    "SM2_CURVE_OID",
    "GmUnavailable",
    "Sm2PrivateKey",
    "Sm2PublicKey",
    "ciphertext_layout",
    "load_pem_private_key",
    "load_pem_public_key",
    "to_c1c3c2",
]

#: GM/T 0009 §10: the user id when none is agreed
DEFAULT_USER_ID = b"1234567812345678"
SM2_CURVE_OID = "1.2.156.10197.1.301"
#: the curve's order n (GB/T 32918.5)
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_A = _P - 3
_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
#: PBES2 iterations for an SM2 key kept encrypted (the agent secret is already 256 random bits)
PBKDF2_ITERATIONS = 100_000


class GmUnavailable(ImportError):
    """The 国密 library is not installed: ``pip install 'regbridge[gm]'``."""


def _gmssl() -> Any:
    try:
        import gmssl_pyx
    except ImportError:
        raise GmUnavailable("SM2 needs the gm extra: pip install 'regbridge[gm]' (gmssl-pyx)") from None
    return gmssl_pyx


@functools.cache
def _keys() -> Any:
    """asn1crypto's key types, with the SM2 curve registered (its key length: 32 bytes)."""
    from asn1crypto import keys

    if SM2_CURVE_OID not in keys.NamedCurve._key_sizes:
        keys.NamedCurve.register("sm2p256v1", SM2_CURVE_OID, 32)
    return keys


def _sm3(data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def _check_point(raw: bytes) -> bytes:
    """``raw`` as x‖y (64 bytes), refusing a point that is not on the curve (or is not canonical)."""
    if len(raw) == 65 and raw[0] == 4:
        raw = raw[1:]
    if len(raw) != 64:
        raise ValueError(f"an SM2 public key is 64 bytes x‖y (or 65 with 04), not {len(raw)}")
    x, y = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if x >= _P or y >= _P or (y * y - (x**3 + _A * x + _B)) % _P:
        raise ValueError("the SM2 public key is not a point of the curve")
    return raw


@dataclass(frozen=True)
class Sm2PublicKey:
    """An SM2 public key (x‖y, 64 bytes) and the user id its signatures are made with.

    ``verify`` has the shape of ``cryptography``'s public keys: it raises
    :class:`cryptography.exceptions.InvalidSignature` or answers ``None``.
    """

    raw: bytes
    user_id: bytes = DEFAULT_USER_ID

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw", _check_point(bytes(self.raw)))
        # GM/T 0009 fixes no minimum; an empty id is what OpenSSL 3 uses where it cannot be given
        # one (CA certificates and CRLs in ``openssl verify``): :mod:`sdk.gm.x509`
        if len(self.user_id) >= 8192:
            raise ValueError("the SM2 user id is at most 8191 bytes")

    @property
    def x(self) -> int:
        return int.from_bytes(self.raw[:32], "big")

    @property
    def y(self) -> int:
        return int.from_bytes(self.raw[32:], "big")

    def with_user_id(self, user_id: bytes) -> Sm2PublicKey:
        return Sm2PublicKey(self.raw, user_id)

    @functools.cached_property
    def z(self) -> bytes:
        """Z_A = SM3(ENTL ‖ ID ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A) (GM/T 0009 §8.1; GB/T 32918.2 §5.5)."""
        entl = (len(self.user_id) * 8).to_bytes(2, "big")
        curve = b"".join(v.to_bytes(32, "big") for v in (_A, _B, *_G))
        return _sm3(entl + self.user_id + curve + self.raw)

    def digest(self, data: bytes) -> bytes:
        """e = SM3(Z_A ‖ data): what an SM2 signature of ``data`` by this key signs."""
        return _sm3(self.z + bytes(data))

    def verify(self, signature: bytes, data: bytes) -> None:
        """Check a DER SM2 signature of ``data`` (SM3 with Z_A of this key and user id).

        Raises:
            InvalidSignature: the signature is malformed or does not verify.
        """
        try:
            r, s = decode_dss_signature(bytes(signature))
            canonical = encode_dss_signature(r, s) == bytes(signature)
        except Exception:
            raise InvalidSignature("the SM2 signature is not DER SEQUENCE { r, s }") from None
        if not (canonical and 0 < r < _N and 0 < s < _N):
            raise InvalidSignature("the SM2 signature is not canonical DER with 0 < r, s < n")
        try:
            ok = _gmssl().sm2_verify_sm3_digest(self.raw, self.digest(data), bytes(signature))
        except GmUnavailable:
            raise
        except Exception:
            ok = False
        if not ok:
            raise InvalidSignature("the SM2 signature does not verify")

    def encrypt(self, plaintext: bytes) -> bytes:
        """SM2-encrypt ``plaintext`` (1…255 bytes: a key to wrap) to this key: GM/T 0009 ASN.1 C1C3C2."""
        if not 0 < len(plaintext) <= 255:
            raise ValueError("SM2 wraps 1 to 255 bytes (a key), not bulk data")
        return bytes(_gmssl().sm2_encrypt(self.raw, bytes(plaintext)))

    # --- encodings -------------------------------------------------------------------------

    def spki_der(self) -> bytes:
        """SubjectPublicKeyInfo (id-ecPublicKey, SM2 curve), as ``openssl pkey -pubout -outform DER``."""
        keys = _keys()
        info = keys.PublicKeyInfo(
            {
                "algorithm": keys.PublicKeyAlgorithm(
                    {"algorithm": "ec", "parameters": keys.ECDomainParameters(name="named", value=SM2_CURVE_OID)}
                ),
                "public_key": b"\x04" + self.raw,
            }
        )
        return bytes(info.dump())

    def to_pem(self) -> bytes:
        from asn1crypto import pem

        return bytes(pem.armor("PUBLIC KEY", self.spki_der()))


@dataclass(frozen=True)
class Sm2PrivateKey:
    """An SM2 private key (d, 32 bytes) with its public key; signs with the user id it carries."""

    secret: bytes = field(repr=False)
    public: Sm2PublicKey

    @classmethod
    def generate(cls, user_id: bytes = DEFAULT_USER_ID) -> Sm2PrivateKey:
        public, private = _gmssl().sm2_key_generate()
        return cls(bytes(private), Sm2PublicKey(bytes(public), user_id))

    @classmethod
    def from_secret(cls, d: int | bytes, user_id: bytes = DEFAULT_USER_ID) -> Sm2PrivateKey:
        """The key with private scalar ``d`` (a PKCS#8 file's); its public key d·G is computed here
        (GmSSL's Python API has no point multiplication)."""
        value = int.from_bytes(d, "big") if isinstance(d, bytes) else d
        if not 0 < value < _N - 1:
            raise ValueError("the SM2 private key is outside 1 … n-2")
        return cls(value.to_bytes(32, "big"), Sm2PublicKey(_scalar_base(value), user_id))

    def public_key(self) -> Sm2PublicKey:
        return self.public

    def with_user_id(self, user_id: bytes) -> Sm2PrivateKey:
        return Sm2PrivateKey(self.secret, self.public.with_user_id(user_id))

    def sign(self, data: bytes) -> bytes:
        """The DER SM2 signature of ``data`` (SM3 of Z_A ‖ data, Z_A with this key's user id)."""
        # GmSSL signs the digest; Z_A is computed (and kept) here: gmssl_pyx's sm2_sign recomputes the
        # key on every call, ten times the cost (bench/gm.py)
        return bytes(_gmssl().sm2_sign_sm3_digest(self.secret, self.public.digest(data)))

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Unwrap an SM2 ciphertext in either layout peers send (GM/T 0009 ASN.1, or raw C1C3C2).

        Raises:
            ValueError: not an SM2 ciphertext for this key (wrong key, altered, or another layout).
        """
        layout = ciphertext_layout(ciphertext)
        der = ciphertext if layout == "asn1" else _raw_to_asn1(ciphertext)
        try:
            return bytes(_gmssl().sm2_decrypt(self.secret, der))
        except GmUnavailable:
            raise
        except Exception:
            raise ValueError("the SM2 ciphertext does not decrypt with this key (altered, or another key's)") from None

    # --- encodings -------------------------------------------------------------------------

    def pkcs8_der(self) -> bytes:
        """PKCS#8 PrivateKeyInfo, as ``openssl genpkey -algorithm SM2`` writes it."""
        keys = _keys()
        ec_key = keys.ECPrivateKey(
            {
                "version": "ecPrivkeyVer1",
                "private_key": int.from_bytes(self.secret, "big"),
                "public_key": b"\x04" + self.public.raw,
            }
        )
        info = keys.PrivateKeyInfo(
            {
                "version": 0,
                "private_key_algorithm": keys.PrivateKeyAlgorithm(
                    {"algorithm": "ec", "parameters": keys.ECDomainParameters(name="named", value=SM2_CURVE_OID)}
                ),
                "private_key": ec_key,
            }
        )
        return bytes(info.dump())

    def to_pem(self, password: bytes | None = None) -> bytes:
        """PEM PKCS#8; with ``password``, encrypted (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC; OpenSSL reads it)."""
        from asn1crypto import pem

        if password is None:
            return bytes(pem.armor("PRIVATE KEY", self.pkcs8_der()))
        return bytes(pem.armor("ENCRYPTED PRIVATE KEY", _pbes2_encrypt(self.pkcs8_der(), password)))


def load_pem_public_key(data: bytes, user_id: bytes = DEFAULT_USER_ID) -> Sm2PublicKey:
    """An SM2 public key from PEM or DER SubjectPublicKeyInfo.

    Raises:
        ValueError: not an SM2 public key.
    """
    from asn1crypto import pem

    keys = _keys()
    der = pem.unarmor(data)[2] if pem.detect(data) else data
    try:
        info = keys.PublicKeyInfo.load(der)
        algorithm = info["algorithm"]
        if algorithm["algorithm"].native != "ec" or algorithm["parameters"].chosen.dotted != SM2_CURVE_OID:
            raise ValueError("not an SM2 key")
        return Sm2PublicKey(bytes(info["public_key"].native), user_id)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"not an SM2 SubjectPublicKeyInfo: {e}") from None


def load_pem_private_key(data: bytes, password: bytes | None = None, user_id: bytes = DEFAULT_USER_ID) -> Sm2PrivateKey:
    """An SM2 private key from PEM PKCS#8 (plain, or PBES2-encrypted with ``password``).

    Raises:
        ValueError: not an SM2 private key, or the password does not open it.
    """
    from asn1crypto import pem

    keys = _keys()
    try:
        name, _headers, der = pem.unarmor(data)
    except Exception:
        raise ValueError("not a PEM private key") from None
    if name == "ENCRYPTED PRIVATE KEY":
        if not password:
            raise ValueError("the SM2 key is encrypted: a password is needed")
        der = _pbes2_decrypt(der, password)
    elif name != "PRIVATE KEY":
        raise ValueError(f"not a PKCS#8 key (PEM {name!r})")
    try:
        info = keys.PrivateKeyInfo.load(der)
        algorithm = info["private_key_algorithm"]
        is_sm2 = algorithm["algorithm"].native == "ec" and algorithm["parameters"].chosen.dotted == SM2_CURVE_OID
        if is_sm2:
            ec_key = info["private_key"].parsed
            d = int(ec_key["private_key"].native)
            public = ec_key["public_key"].native
    except Exception as e:  # asn1crypto raises ValueError (and others) on DER it cannot parse
        if name == "ENCRYPTED PRIVATE KEY":
            # a wrong password leaves a valid PKCS#7 padding about once in 256 tries: the garbage then
            # fails here, as DER, and is the same wrong password
            raise ValueError(f"the encrypted SM2 key cannot be opened (wrong password, or altered): {e}") from None
        raise ValueError(f"not an SM2 PKCS#8 key: {e}") from None
    if not is_sm2:
        raise ValueError("not an SM2 key")
    key = Sm2PrivateKey.from_secret(d, user_id)
    if public and _check_point(bytes(public)) != key.public.raw:
        raise ValueError("the SM2 key's public part does not belong to its private part")
    return key


# --- ciphertext layouts -------------------------------------------------------------------------


def ciphertext_layout(ciphertext: bytes) -> Literal["asn1", "c1c3c2"]:
    """Which SM2 ciphertext layout ``ciphertext`` is in: GM/T 0009 ASN.1 or raw ``04‖x‖y‖C3‖C2``.

    Raises:
        ValueError: neither.
    """
    from asn1crypto import core

    data = bytes(ciphertext)
    if data[:1] == b"\x30":
        try:
            seq = core.load(data)
            if (
                isinstance(seq, core.Sequence)
                and seq.dump(force=True) == data
                and len(seq) == 4
                and len(seq[2].native) == 32
            ):
                return "asn1"
        except Exception:
            pass
    if data[:1] == b"\x04" and len(data) > 97:
        _check_point(data[1:65])
        return "c1c3c2"
    raise ValueError("not an SM2 ciphertext (neither GM/T 0009 ASN.1 nor raw C1C3C2)")


@functools.cache
def _sm2_cipher() -> Any:
    """GM/T 0009 §7.2 SM2Cipher as an asn1crypto type."""
    from asn1crypto import core

    class Sm2Cipher(core.Sequence):  # type: ignore[misc]
        _fields = [  # noqa: RUF012 - asn1crypto's declaration
            ("x", core.Integer),
            ("y", core.Integer),
            ("hash", core.OctetString),
            ("ciphertext", core.OctetString),
        ]

    return Sm2Cipher


def _raw_to_asn1(data: bytes) -> bytes:
    x, y = int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:65], "big")
    return bytes(_sm2_cipher()({"x": x, "y": y, "hash": data[65:97], "ciphertext": data[97:]}).dump())


def to_c1c3c2(ciphertext: bytes) -> bytes:
    """The raw ``04‖x‖y‖C3‖C2`` form of an ASN.1 SM2 ciphertext (what many peers send)."""
    seq = _sm2_cipher().load(bytes(ciphertext))
    x, y = int(seq["x"].native), int(seq["y"].native)
    return (
        b"\x04"
        + x.to_bytes(32, "big")
        + y.to_bytes(32, "big")
        + bytes(seq["hash"].native)
        + bytes(seq["ciphertext"].native)
    )


# --- d·G (only to recover a public key from a PKCS#8 file without one) ----------------------------

_G = (
    0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)


def _scalar_base(d: int) -> bytes:
    result: tuple[int, int] | None = None
    addend: tuple[int, int] | None = _G
    while d:
        if d & 1:
            result = _ec_add(result, addend)
        addend = _ec_add(addend, addend)
        d >>= 1
    assert result is not None
    return result[0].to_bytes(32, "big") + result[1].to_bytes(32, "big")


def _ec_add(p: tuple[int, int] | None, q: tuple[int, int] | None) -> tuple[int, int] | None:
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % _P == 0:
        return None
    if p == q:
        slope = (3 * p[0] * p[0] + _A) * pow(2 * p[1], -1, _P) % _P
    else:
        slope = (q[1] - p[1]) * pow(q[0] - p[0], -1, _P) % _P
    x = (slope * slope - p[0] - q[0]) % _P
    return x, (slope * (p[0] - x) - p[1]) % _P


# --- PBES2 (RFC 8018) for encrypted PKCS#8 ---------------------------------------------------------


def _pbes2_encrypt(der: bytes, password: bytes) -> bytes:
    from asn1crypto import algos, core

    keys = _keys()
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    salt, iv = secrets.token_bytes(16), os.urandom(16)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, PBKDF2_ITERATIONS).derive(password)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = encryptor.update(padder.update(der) + padder.finalize()) + encryptor.finalize()
    algorithm = algos.EncryptionAlgorithm(
        {
            "algorithm": "pbes2",
            "parameters": {
                "key_derivation_func": {
                    "algorithm": "pbkdf2",
                    "parameters": {
                        "salt": algos.Pbkdf2Salt(name="specified", value=salt),
                        "iteration_count": PBKDF2_ITERATIONS,
                        "prf": {"algorithm": "sha256", "parameters": core.Null()},
                    },
                },
                "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": core.OctetString(iv)},
            },
        }
    )
    return bytes(keys.EncryptedPrivateKeyInfo({"encryption_algorithm": algorithm, "encrypted_data": body}).dump())


def _pbes2_decrypt(der: bytes, password: bytes) -> bytes:
    keys = _keys()
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    try:
        info = keys.EncryptedPrivateKeyInfo.load(der)
        algorithm = info["encryption_algorithm"]
        if algorithm["algorithm"].native != "pbes2":
            raise ValueError("only PBES2 encrypted keys are read")
        params = algorithm["parameters"]
        kdf, scheme = params["key_derivation_func"], params["encryption_scheme"]
        if kdf["algorithm"].native != "pbkdf2" or scheme["algorithm"].native != "aes256_cbc":
            raise ValueError("only PBKDF2 with AES-256-CBC is read")
        kdf_params = kdf["parameters"]
        prf = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[kdf_params["prf"]["algorithm"].native]
        key = PBKDF2HMAC(prf, 32, kdf_params["salt"].native, kdf_params["iteration_count"].native).derive(password)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(scheme["parameters"].native)).decryptor()
        padded = decryptor.update(info["encrypted_data"].native) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return bytes(unpadder.update(padded) + unpadder.finalize())
    except ValueError as e:
        raise ValueError(f"the encrypted SM2 key cannot be opened (wrong password, or altered): {e}") from None
    except Exception as e:
        raise ValueError(f"the encrypted SM2 key cannot be read: {e}") from None
