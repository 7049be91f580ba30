"""The centre's keys: the CA that certifies its seal, the seal (电子印章) that signs certificate
PDFs, and the centre key that signs certificate metadata, webhooks and enrolment bundles: Ed25519
in the ``intl`` crypto suite, SM2 (``sm2-sm3``) in ``gm`` — the centre's suite is its key's
(:mod:`sdk.suites`). The CA and the seal stay P-256 in both: PAdES seals with SM2 are not built
here (pyHanko has no SM2), see docs/sandbox.md.

Created once per centre and kept in its store. A centre with a data directory keeps its private
keys encrypted (PKCS#8, scrypt/AES) under a passphrase it is given (environment, a credential
file or the OS keyring — see ``sandbox.serve``); an in-memory centre keeps them in memory only.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sdk.certificates import sign_detached
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.gm.sm2 import load_pem_private_key as load_sm2_pem
from sdk.models import PublicJwk
from sdk.signing import jwk_fingerprint, jwk_from_public_key
from sdk.suites import INTL, Suite, suite_of

from .store import Store

__all__ = ["CentreKeys", "KeysLocked", "crl_url_of", "revoke_certificate"]

SEAL_VALID_DAYS = 2 * 365
CA_VALID_DAYS = 10 * 365


class KeysLocked(RuntimeError):
    """The centre's keys are encrypted and no (or a wrong) passphrase was given."""


@dataclass
class CentreKeys:
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate
    seal_key: ec.EllipticCurvePrivateKey
    seal_cert: x509.Certificate
    centre_key: ed25519.Ed25519PrivateKey | Sm2PrivateKey
    #: the centre's crypto suite (``gm`` when its key is SM2); ``sm2_user_id`` from its configuration
    suite: Suite = INTL
    #: what the keys are kept under in a file-backed store (a new seal key is stored the same way)
    passphrase: bytes | None = field(default=None, repr=False)
    _encryption: Sm2PrivateKey | None = field(default=None, repr=False)

    def encryption_key(self, store: Store) -> Sm2PrivateKey:
        """The centre's SM2 encryption key (gm; separate from its signing key, as GM/T 0015's dual
        certificates keep them): banks wrap the SM4 key of a body's personal fields to it
        (:mod:`sdk.gm.envelope`). Made on first use, kept in ``store`` PBES2-encrypted like the others."""
        if self._encryption is None:
            row = store.one("SELECT pem FROM secrets WHERE name = 'centre_encryption_key'")
            if row is not None:
                self._encryption = load_sm2_pem(bytes(row["pem"]), self.passphrase or None)
            else:
                key = Sm2PrivateKey.generate()
                pem = key.to_pem(self.passphrase or None)
                store.execute("INSERT OR REPLACE INTO secrets VALUES ('centre_encryption_key', ?)", pem)
                self._encryption = key
        return self._encryption

    @property
    def centre_jwk(self) -> PublicJwk:
        return jwk_from_public_key(self.centre_key.public_key())

    @property
    def centre_key_id(self) -> str:
        return "centre-" + jwk_fingerprint(self.centre_jwk)[:16]

    @property
    def ca_pem(self) -> str:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign_detached(self, document: Mapping[str, Any]) -> dict[str, str]:
        """The centre's detached signature over the canonical JSON of ``document`` (:mod:`sdk.certificates`)."""
        return sign_detached(document, self.centre_key, self.centre_key_id)

    # --- revocation (the CA's CRL) --------------------------------------------------------

    def publish_crl_at(self, store: Store, crl_url: str, *, name: str) -> None:
        """Name ``crl_url`` in the seal certificate's CRL distribution point (re-issued for the same seal
        key when it names another or none) — certificates sealed from now on carry it."""
        if crl_url_of(self.seal_cert) == crl_url:
            return
        self.seal_cert = _seal_certificate(name, self.ca_key, self.ca_cert, self.seal_key, crl_url=crl_url)
        self._store_seal(store, None)

    def revoke_seal(self, store: Store, *, name: str, reason: str = "key_compromise") -> int:
        """Revoke the seal certificate (its serial goes on the CRL) and seal with a new key from now on.

        Answers the revoked serial number."""
        serial = self.seal_cert.serial_number
        revoke_certificate(store, serial, reason)
        url = crl_url_of(self.seal_cert)
        self.seal_key = ec.generate_private_key(ec.SECP256R1())
        self.seal_cert = _seal_certificate(name, self.ca_key, self.ca_cert, self.seal_key, crl_url=url)
        self._store_seal(store, self.seal_key)
        return serial

    def _store_seal(self, store: Store, key: ec.EllipticCurvePrivateKey | None) -> None:
        pem_cert = self.seal_cert.public_bytes(serialization.Encoding.PEM)
        with store.transaction():
            store.execute("INSERT OR REPLACE INTO secrets VALUES ('seal_cert', ?)", pem_cert)
            if key is not None:
                protect: serialization.KeySerializationEncryption = (
                    serialization.BestAvailableEncryption(self.passphrase)
                    if self.passphrase
                    else serialization.NoEncryption()
                )
                pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, protect)
                store.execute("INSERT OR REPLACE INTO secrets VALUES ('seal_key', ?)", pem)

    def crl(self, store: Store) -> bytes:
        """The CA's current CRL (DER, RFC 5280): every certificate it revoked; next update in a day."""
        now = _dt.datetime.now(_dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca_cert.subject)
            .last_update(now - _dt.timedelta(minutes=5))
            .next_update(now + _dt.timedelta(days=1))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        )
        for row in store.all("SELECT serial, revoked_at FROM revoked_certificates ORDER BY revoked_at"):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(row["serial"]))
                .revocation_date(_dt.datetime.fromisoformat(row["revoked_at"]))
                .build()
            )
        return builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    # --- persistence --------------------------------------------------------------------

    @classmethod
    def load_or_create(
        cls, store: Store, *, name: str, passphrase: bytes | None, suite: Suite | None = None
    ) -> CentreKeys:
        """The centre's keys from ``store``, created on first use (for ``suite``, default ``intl``).

        Raises:
            KeysLocked: a file-backed store without a passphrase, or the wrong passphrase.
            ValueError: the store's keys are of another suite than the one asked for.
        """
        if store.path is not None and not passphrase:
            raise KeysLocked(
                "a centre with a data directory keeps its keys encrypted: set REGBRIDGE_SANDBOX_SECRET, "
                "pass --secret-file, or run where an OS keyring is available"
            )
        rows = {r["name"]: bytes(r["pem"]) for r in store.all("SELECT name, pem FROM secrets")}
        if rows:
            stored = suite_of(json.loads(rows["suite"])) if "suite" in rows else INTL
            if suite is not None and suite.name != stored.name:
                raise ValueError(f"this centre's keys are of the {stored.name} suite, not {suite.name}")
            try:
                centre_pem = rows["centre_key"]
                centre_key: ed25519.Ed25519PrivateKey | Sm2PrivateKey = (
                    load_sm2_pem(centre_pem, passphrase) if stored.name == "gm" else _load(centre_pem, passphrase)  # type: ignore[assignment]
                )
                return cls(
                    ca_key=_load(rows["ca_key"], passphrase),  # type: ignore[arg-type]
                    ca_cert=x509.load_pem_x509_certificate(rows["ca_cert"]),
                    seal_key=_load(rows["seal_key"], passphrase),  # type: ignore[arg-type]
                    seal_cert=x509.load_pem_x509_certificate(rows["seal_cert"]),
                    centre_key=(suite or stored).adopt(centre_key),
                    suite=suite or stored,
                    passphrase=passphrase,
                )
            except (ValueError, TypeError) as e:
                raise KeysLocked(f"cannot open the centre's keys: {e}") from None
        keys = cls.generate(name, suite or INTL)
        keys.passphrase = passphrase
        protect: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        with store.transaction():
            for label, key in (("ca_key", keys.ca_key), ("seal_key", keys.seal_key)):
                pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, protect)
                store.execute("INSERT INTO secrets VALUES (?, ?)", label, pem)
            if isinstance(keys.centre_key, Sm2PrivateKey):  # PKCS#8, PBES2-encrypted as OpenSSL reads it
                pem = keys.centre_key.to_pem(passphrase or None)
            else:
                pem = keys.centre_key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, protect
                )
            store.execute("INSERT INTO secrets VALUES (?, ?)", "centre_key", pem)
            store.execute("INSERT INTO secrets VALUES (?, ?)", "suite", json.dumps(keys.suite.bundle_member()).encode())
            for label, cert in (("ca_cert", keys.ca_cert), ("seal_cert", keys.seal_cert)):
                store.execute("INSERT INTO secrets VALUES (?, ?)", label, cert.public_bytes(serialization.Encoding.PEM))
        return keys

    @classmethod
    def generate(cls, name: str, suite: Suite = INTL) -> CentreKeys:
        now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name}电子印章根证书"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "RegBridge sandbox"),
            ]
        )
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _dt.timedelta(days=CA_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        seal_key = ec.generate_private_key(ec.SECP256R1())
        seal_cert = _seal_certificate(name, ca_key, ca_cert, seal_key, crl_url=None)
        centre_key: ed25519.Ed25519PrivateKey | Sm2PrivateKey = (
            Sm2PrivateKey.generate(suite.sm2_user_id) if suite.name == "gm" else ed25519.Ed25519PrivateKey.generate()
        )
        return cls(ca_key, ca_cert, seal_key, seal_cert, centre_key, suite)


def _seal_certificate(
    name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    seal_key: ec.EllipticCurvePrivateKey,
    *,
    crl_url: str | None,
) -> x509.Certificate:
    """The seal certificate (subject O = the centre's name), naming ``crl_url`` as its CRL distribution point."""
    now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{name} 不动产登记专用章"),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(seal_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _dt.timedelta(days=SEAL_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(seal_key.public_key()), critical=False)
    )
    if crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def crl_url_of(cert: x509.Certificate) -> str | None:
    """The first URL of a certificate's CRL distribution points, if it names one."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return None
    for point in points:
        for name in point.full_name or []:
            if isinstance(name, x509.UniformResourceIdentifier):
                return str(name.value)
    return None


def _load(pem: bytes, passphrase: bytes | None) -> object:
    return serialization.load_pem_private_key(pem, password=passphrase or None)


def revoke_certificate(store: Store, serial: int, reason: str) -> None:
    """Put a certificate the CA issued on its CRL (the next :meth:`CentreKeys.crl` lists it)."""
    store.execute(
        "INSERT OR IGNORE INTO revoked_certificates VALUES (?, ?, ?)",
        str(serial), _dt.datetime.now(_dt.UTC).isoformat(), reason[:100],
    )  # fmt: skip
