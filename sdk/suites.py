"""Crypto suites: which algorithms a centre speaks, chosen per centre by its enrolment bundle.

=========  ==========================================  ==================  =======================
suite      request / webhook / metadata signatures      ``Content-Digest``  at rest (agent)
=========  ==========================================  ==================  =======================
``intl``   ``ed25519`` (default), ``ecdsa-p256-sha256``  ``sha-256``         Fernet (AES-128-CBC + HMAC)
``gm``     ``sm2-sm3`` (SM2 with SM3 and the user id)   ``sm3``             SM4-GCM
=========  ==========================================  ==================  =======================

``sm2-sm3`` is an RFC 9421 algorithm registered by us (docs/api.md §5): SM2 per GB/T 32918 with
the SM3 digest of Z_A ‖ signature base (GM/T 0009 §8), Z_A computed with the signer's user id —
``1234567812345678`` unless the centre's bundle names another (``sm2_user_id``) — and the
signature DER-encoded ``SEQUENCE { r, s }``. ``sm3`` in ``Content-Digest`` is the SM3 digest of the
content (GB/T 32905), base64 in a byte sequence like ``sha-256``.

The gm suite's SM2 operations need the ``regbridge[gm]`` extra; naming it does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from .gm.sm2 import DEFAULT_USER_ID, Sm2PrivateKey, Sm2PublicKey

__all__ = ["GM", "INTL", "SUITES", "EnvelopeMode", "Suite", "SuiteName", "suite_named"]

SuiteName = Literal["intl", "gm"]
#: how a gm centre wants the personal fields of bodies sent to it encrypted (sdk.gm.envelope)
EnvelopeMode = Literal["SM4-GCM", "SM4-CBC"]
_K = TypeVar("_K")


@dataclass(frozen=True)
class Suite:
    """One crypto suite: the signature algorithms it accepts and the digest it sends and requires."""

    name: SuiteName
    #: accepted signature algorithms, the first is the one new keys get
    algorithms: tuple[str, ...]
    #: the RFC 9530 Content-Digest algorithm requests are sent with, and must carry
    digest: str
    #: the GM/T 0009 user id of SM2 signatures (gm only)
    sm2_user_id: bytes = DEFAULT_USER_ID
    #: gm only: the centre asks for the personal fields (name, id_number, phone of each party) of the
    #: JSON bodies sent to it SM4-encrypted in this mode, the key wrapped to its encryption key
    #: (seed 002 §5.1 加密传输; :mod:`sdk.gm.envelope`); ``None``: it does not ask
    envelope: EnvelopeMode | None = None

    @property
    def default_algorithm(self) -> str:
        return self.algorithms[0]

    def adopt(self, key: _K) -> _K:
        """``key`` with this suite's SM2 user id (other keys unchanged)."""
        if isinstance(key, Sm2PrivateKey | Sm2PublicKey) and key_user_id(key) != self.sm2_user_id:
            return key.with_user_id(self.sm2_user_id)  # type: ignore[return-value]
        return key

    def bundle_member(self) -> dict[str, str]:
        """What an enrolment bundle says of the suite (``{"name": …, "sm2_user_id": …}``)."""
        member: dict[str, str] = {"name": self.name}
        if self.name == "gm":
            member["sm2_user_id"] = self.sm2_user_id.decode("ascii", "backslashreplace")
        if self.envelope:
            member["envelope"] = self.envelope
        return member


def key_user_id(key: Sm2PrivateKey | Sm2PublicKey) -> bytes:
    return key.public.user_id if isinstance(key, Sm2PrivateKey) else key.user_id


INTL = Suite("intl", ("ed25519", "ecdsa-p256-sha256"), "sha-256")
GM = Suite("gm", ("sm2-sm3",), "sm3")
SUITES: dict[str, Suite] = {"intl": INTL, "gm": GM}


def suite_named(
    name: str | None, *, sm2_user_id: str | bytes | None = None, envelope: str | None = None
) -> Suite:
    """The suite called ``name`` (``None``: ``intl``, what a bundle without a suite means), with the
    personal-field ``envelope`` mode a gm centre asks for (``SM4-GCM`` or ``SM4-CBC``).

    Raises:
        ValueError: an unknown suite or envelope mode, an envelope outside gm, or an SM2 user id that
            is empty or over 8191 bytes.
    """
    base = SUITES.get(name or "intl")
    if base is None:
        raise ValueError(f"unknown crypto suite {name!r}; use intl or gm")
    if envelope is not None and (base.name != "gm" or envelope not in ("SM4-GCM", "SM4-CBC")):
        raise ValueError(f"the personal-field envelope is SM4-GCM or SM4-CBC, in the gm suite only, not {envelope!r}")
    if sm2_user_id is None and envelope is None:
        return base
    uid = base.sm2_user_id
    if sm2_user_id is not None:
        uid = sm2_user_id.encode("utf-8") if isinstance(sm2_user_id, str) else bytes(sm2_user_id)
    if not 0 < len(uid) < 8192:
        raise ValueError("the SM2 user id is 1 to 8191 bytes")
    return Suite(base.name, base.algorithms, base.digest, uid, envelope)  # type: ignore[arg-type]


def suite_of(bundle_member: dict[str, Any] | str | None) -> Suite:
    """The suite an enrolment bundle's or a config's ``suite`` names (absent: ``intl``)."""
    if isinstance(bundle_member, dict):
        return suite_named(
            bundle_member.get("name"),
            sm2_user_id=bundle_member.get("sm2_user_id"),
            envelope=bundle_member.get("envelope"),
        )
    return suite_named(bundle_member)
