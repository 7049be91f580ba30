"""Keys kept in a PKCS#11 token (an HSM, a smart card, SoftHSM2): made there, used there, never out.

A key pair is generated inside the token with ``CKA_TOKEN`` true, ``CKA_SENSITIVE`` true and
``CKA_EXTRACTABLE`` false (the token refuses to reveal the private key), found again by its
``CKA_ID``, and every signature is the token's:

* ``ed25519``: ``CKM_EC_EDWARDS_KEY_PAIR_GEN`` / ``CKM_EDDSA`` (PKCS#11 3.0), 64-byte signatures;
* ``ecdsa-p256-sha256``: ``CKM_EC_KEY_PAIR_GEN`` / ``CKM_ECDSA`` over the SHA-256 digest
  (hashed here; many tokens, SoftHSM2 among them, have no ``CKM_ECDSA_SHA256``), r‖s as RFC 9421
  wants;
* ``sm2-sm3``: only with a token whose vendor codes are named in the configuration
  (``[centre.pkcs11.mechanisms]``, by xipki's names — each vendor numbers them differently:
  ``CKK_VENDOR_SM2`` the key type (else ``CKK_EC`` with the SM2 curve OID),
  ``CKM_VENDOR_SM2_KEY_PAIR_GEN``, and ``CKM_VENDOR_SM2`` — the SM3(Z_A ‖ M) digest computed here,
  with the suite's user id, and signed by the token — or ``CKM_VENDOR_SM2_SM3``, the token hashing
  with Z_A itself, which works only with the default user id ``1234567812345678``). The answer,
  r‖s (64 bytes) or DER, is sent DER. **Not tested** (SoftHSM2 has no SM2; no SM2 token here).

The PIN comes from a systemd credential (``$CREDENTIALS_DIRECTORY/regbridge-pkcs11-pin``) or a
file readable by its owner only (``pin_file``), never from the configuration itself. PyKCS11 is the
binding: it passes vendor mechanism codes through.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from agent.config import sm2_vendor_codes
from sdk.gm.sm2 import DEFAULT_USER_ID, Sm2PublicKey
from sdk.signing import Algorithm, PublicKey

__all__ = ["PIN_CREDENTIAL", "Pkcs11Signer", "Pkcs11Token", "TokenUnavailable", "read_pin"]

PIN_CREDENTIAL = "regbridge-pkcs11-pin"


class TokenUnavailable(RuntimeError):
    """The token cannot be reached, logged into, or has no such key."""


def read_pin(pin_file: Path | None) -> str:
    """The token's PIN: a systemd credential first, then ``pin_file`` (mode 0600 or tighter).

    Raises:
        TokenUnavailable: no PIN, or its file is readable by others.
    """
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / PIN_CREDENTIAL).is_file():
        return (Path(cred_dir) / PIN_CREDENTIAL).read_text(encoding="utf-8").strip()
    if pin_file is not None and pin_file.is_file():
        mode = pin_file.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenUnavailable(f"{pin_file} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
        return pin_file.read_text(encoding="utf-8").strip()
    raise TokenUnavailable(f"no PKCS#11 PIN: a systemd credential {PIN_CREDENTIAL!r} or centre.pkcs11.pin_file")


def _p11() -> Any:
    try:
        import PyKCS11
    except ImportError:
        raise TokenUnavailable("PKCS#11 custody needs PyKCS11: pip install 'regbridge[pkcs11]'") from None
    return PyKCS11


@dataclass
class Pkcs11Token:
    """One token: the module (``.so``/``.dll``), which token (label, or slot), the PIN, vendor mechanisms."""

    module: str
    pin: str = field(repr=False)
    token_label: str | None = None
    slot: int | None = None
    mechanisms: dict[str, int] = field(default_factory=dict)
    _session: Any = field(default=None, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.mechanisms = sm2_vendor_codes(self.mechanisms)  # xipki's names; the old ones resolved

    def session(self) -> Any:
        """A logged-in session (opened once, reopened after a failure).

        Raises:
            TokenUnavailable: the module, the token or the login fails.
        """
        with self._lock:
            if self._session is not None:
                return self._session
            p11 = _p11()
            try:
                lib = p11.PyKCS11Lib()
                lib.load(self.module)
                slots = lib.getSlotList(tokenPresent=True)
                if self.slot is not None:
                    chosen = [s for s in slots if s == self.slot]
                else:
                    chosen = [s for s in slots if _label(lib, s) == (self.token_label or "")]
                if not chosen:
                    raise TokenUnavailable(f"no PKCS#11 token {self.token_label or self.slot!r} in {self.module}")
                session = lib.openSession(chosen[0], p11.CKF_SERIAL_SESSION | p11.CKF_RW_SESSION)
                try:
                    session.login(self.pin)
                except p11.PyKCS11Error as e:
                    if e.value != p11.CKR_USER_ALREADY_LOGGED_IN:  # login is per token and process, not session
                        raise
            except TokenUnavailable:
                raise
            except Exception as e:
                raise TokenUnavailable(f"the PKCS#11 token cannot be used: {e}") from None
            self._session = session
            return session

    def reset(self) -> None:
        with self._lock:
            self._session = None

    def generate(self, algorithm: str, key_ref: bytes, label: str) -> PublicKey:
        """Make a key pair inside the token (sensitive, not extractable); answer its public key."""
        from asn1crypto import core, keys

        p11 = _p11()
        session = self.session()
        common = [(p11.CKA_TOKEN, True), (p11.CKA_ID, key_ref), (p11.CKA_LABEL, label)]
        private = [*common, (p11.CKA_CLASS, p11.CKO_PRIVATE_KEY), (p11.CKA_SIGN, True), (p11.CKA_SENSITIVE, True),
                   (p11.CKA_EXTRACTABLE, False), (p11.CKA_PRIVATE, True)]  # fmt: skip
        public = [*common, (p11.CKA_CLASS, p11.CKO_PUBLIC_KEY), (p11.CKA_VERIFY, True)]
        if algorithm == "ed25519":
            kind, params, mechanism = (
                p11.CKK_EC_EDWARDS,
                core.PrintableString("edwards25519").dump(),
                p11.CKM_EC_EDWARDS_KEY_PAIR_GEN,
            )
        elif algorithm == "ecdsa-p256-sha256":
            kind, params, mechanism = p11.CKK_EC, keys.NamedCurve("secp256r1").dump(), p11.CKM_EC_KEY_PAIR_GEN
        elif algorithm == "sm2-sm3" and "CKM_VENDOR_SM2_KEY_PAIR_GEN" in self.mechanisms:
            kind = self.mechanisms.get("CKK_VENDOR_SM2", p11.CKK_EC)
            params = core.ObjectIdentifier("1.2.156.10197.1.301").dump()
            mechanism = self.mechanisms["CKM_VENDOR_SM2_KEY_PAIR_GEN"]
        else:
            raise TokenUnavailable(f"this token is not configured for {algorithm} keys{_sm2_advice(algorithm)}")
        private.append((p11.CKA_KEY_TYPE, kind))
        public += [(p11.CKA_KEY_TYPE, kind), (p11.CKA_EC_PARAMS, params)]
        try:
            pub, _prv = session.generateKeyPair(public, private, mecha=p11.Mechanism(mechanism, None))
        except Exception as e:
            raise TokenUnavailable(f"the token did not make a {algorithm} key: {e}") from None
        return _public_key(algorithm, bytes(session.getAttributeValue(pub, [p11.CKA_EC_POINT])[0]))

    def _find(self, key_ref: bytes, klass: int) -> Any:
        p11 = _p11()
        session = self.session()
        try:
            found = session.findObjects([(p11.CKA_CLASS, klass), (p11.CKA_ID, key_ref)])
        except Exception as e:
            self.reset()
            raise TokenUnavailable(f"the PKCS#11 token cannot be searched: {e}") from None
        if not found:
            raise TokenUnavailable(f"the token holds no key {key_ref.hex()}")
        return found[0]

    def public_key(self, algorithm: str, key_ref: bytes) -> PublicKey:
        p11 = _p11()
        pub = self._find(key_ref, p11.CKO_PUBLIC_KEY)
        return _public_key(algorithm, bytes(self.session().getAttributeValue(pub, [p11.CKA_EC_POINT])[0]))

    def destroy(self, key_ref: bytes) -> None:
        """Remove the key pair from the token."""
        p11 = _p11()
        for klass in (p11.CKO_PRIVATE_KEY, p11.CKO_PUBLIC_KEY):
            try:
                self.session().destroyObject(self._find(key_ref, klass))
            except TokenUnavailable:
                continue

    def private_attributes(self, key_ref: bytes) -> dict[str, bool]:
        """``sensitive``, ``extractable``, ``always_sensitive``, ``never_extractable`` of the private key."""
        p11 = _p11()
        prv = self._find(key_ref, p11.CKO_PRIVATE_KEY)
        names = (p11.CKA_SENSITIVE, p11.CKA_EXTRACTABLE, p11.CKA_ALWAYS_SENSITIVE, p11.CKA_NEVER_EXTRACTABLE)
        values = self.session().getAttributeValue(prv, list(names))
        return dict(
            zip(("sensitive", "extractable", "always_sensitive", "never_extractable"), map(bool, values), strict=True)
        )

    def sign(self, algorithm: str, key_ref: bytes, data: bytes, public: PublicKey) -> bytes:
        """The token's signature of ``data`` in the form the algorithm's RFC 9421 use wants.

        Raises:
            TokenUnavailable: the token is gone, the key is not there, or signing failed.
        """
        p11 = _p11()
        with self._lock:
            prv = self._find(key_ref, p11.CKO_PRIVATE_KEY)
            try:
                if algorithm == "ed25519":
                    return bytes(self.session().sign(prv, data, p11.Mechanism(p11.CKM_EDDSA, None)))
                if algorithm == "ecdsa-p256-sha256":
                    digest = hashlib.sha256(data).digest()
                    return bytes(self.session().sign(prv, digest, p11.Mechanism(p11.CKM_ECDSA, None)))
                if algorithm == "sm2-sm3" and isinstance(public, Sm2PublicKey):
                    codes = self.mechanisms
                    if "CKM_VENDOR_SM2" in codes:  # the token signs e = SM3(Z_A ‖ M), computed here
                        answer = self.session().sign(prv, public.digest(data), p11.Mechanism(codes["CKM_VENDOR_SM2"]))
                        return sm2_der(bytes(answer))
                    if "CKM_VENDOR_SM2_SM3" in codes:
                        if public.user_id != DEFAULT_USER_ID:
                            raise TokenUnavailable(
                                "CKM_VENDOR_SM2_SM3 hashes with the token's default SM2 user id; this centre's is "
                                f"{public.user_id!r}: configure CKM_VENDOR_SM2 (sign a digest) instead"
                            )
                        answer = self.session().sign(prv, data, p11.Mechanism(codes["CKM_VENDOR_SM2_SM3"]))
                        return sm2_der(bytes(answer))
            except TokenUnavailable:
                raise
            except Exception as e:
                self.reset()
                raise TokenUnavailable(f"the token did not sign: {e}") from None
        raise TokenUnavailable(f"this token is not configured for {algorithm} signatures{_sm2_advice(algorithm)}")


def _sm2_advice(algorithm: str) -> str:
    """What to do when a gm centre's SM2 key meets a token without SM2 mechanisms configured."""
    if algorithm != "sm2-sm3":
        return ""
    return (
        ": SM2 keys (the centre's gm suite) need the token vendor's SM2 codes, CKM_VENDOR_SM2_KEY_PAIR_GEN and"
        " CKM_VENDOR_SM2 (or CKM_VENDOR_SM2_SM3), in [centre.pkcs11.mechanisms] (enroll: --pkcs11-mechanism"
        " NAME=0x…; docs/install.md); SoftHSM2 has none. Or keep the SM2 key encrypted in software: --key-store file"
        "（本令牌未配置 SM2 厂商机制码；或改用 --key-store file）"
    )


def sm2_der(answer: bytes) -> bytes:
    """A token's SM2 signature as DER ``SEQUENCE { r, s }``: tokens answer r‖s (64 bytes) or DER already.

    Raises:
        TokenUnavailable: neither.
    """
    if len(answer) == 64:
        return encode_dss_signature(int.from_bytes(answer[:32], "big"), int.from_bytes(answer[32:], "big"))
    try:
        r, s = decode_dss_signature(answer)
    except ValueError:
        raise TokenUnavailable(f"the token's SM2 signature is neither r‖s nor DER ({len(answer)} bytes)") from None
    if encode_dss_signature(r, s) != answer:
        raise TokenUnavailable("the token's SM2 signature is not canonical DER")
    return answer


def _label(lib: Any, slot: int) -> str | None:
    """The label of the token in ``slot``, or None for a slot whose token has gone."""
    try:
        return str(lib.getTokenInfo(slot).label).strip()
    except Exception:
        return None


def _public_key(algorithm: str, ec_point: bytes) -> PublicKey:
    from asn1crypto import core

    raw = (
        bytes(core.OctetString.load(ec_point).native)
        if ec_point[:1] == b"\x04" and len(ec_point) in (34, 67)
        else ec_point
    )
    if algorithm == "ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    if algorithm == "ecdsa-p256-sha256":
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    return Sm2PublicKey(raw)


@dataclass(frozen=True)
class Pkcs11Signer:
    """An :class:`sdk.Signer` whose private key never leaves the token."""

    key_id: str
    token: Pkcs11Token
    key_ref: bytes
    algorithm_name: str
    public: PublicKey

    @property
    def algorithm(self) -> Algorithm:
        return self.algorithm_name  # type: ignore[return-value]

    def sign(self, data: bytes) -> bytes:
        return self.token.sign(self.algorithm_name, self.key_ref, data, self.public)

    def public_key(self) -> PublicKey:
        return self.public
