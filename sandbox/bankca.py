"""The centre's CA for institution certificates (机构证书CA): it certifies the keys banks enrol
and rotate when they send a PKCS#10 request, and publishes what it revoked on a CRL.

SM2-with-SM3 in the ``gm`` suite (:mod:`sdk.gm.x509`, GM/T 0015; signatures with the GM/T 0009
default user id), ECDSA P-256 with SHA-256 in ``intl`` (``cryptography``). Separate from the seal CA
of :mod:`sandbox.pki` (its CRL stays at ``/pki/ca.crl``): this one's CRL is ``/pki/banks.crl``.

The certificate's subject is written from the centre's records (C=CN, O=the institution's name,
organizationIdentifier=its 统一社会信用代码, CN=``{institution_id}/{key_id}``), not from the request.
A certificate is on the CRL once its key is revoked (by the bank or the admin; reason
``cessationOfOperation``), once a rotation's grace ends (``superseded``), or when the admin
revokes the certificate itself (``keyCompromise`` by default).

Created on first use and kept in the store beside the centre's other keys, encrypted under the
same passphrase (PKCS#8: PBES2 for SM2, as OpenSSL reads it).
"""

from __future__ import annotations

import datetime as _dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sdk.gm import x509 as gm_x509
from sdk.gm.sm2 import Sm2PrivateKey, Sm2PublicKey
from sdk.gm.sm2 import load_pem_private_key as load_sm2_pem
from sdk.signing import PublicKey
from sdk.suites import Suite

from .store import Store

__all__ = ["BANK_CRL_PATH", "BankCa", "IssuedCertificate"]

#: where the CRL of institution certificates is published, under the centre's public URL
BANK_CRL_PATH = "/pki/banks.crl"
CA_VALID_DAYS = 10 * 365
#: RFC 5280 §5.3.1 reason names (asn1crypto's spelling; cryptography's ReasonFlags by value)
REASONS = ("key_compromise", "superseded", "cessation_of_operation", "affiliation_changed", "unspecified")


@dataclass(frozen=True)
class IssuedCertificate:
    pem: str
    serial: int
    not_before: _dt.datetime
    not_after: _dt.datetime


@dataclass
class BankCa:
    """The institution-certificate CA of one centre (see the module doc)."""

    key: Sm2PrivateKey | ec.EllipticCurvePrivateKey = field(repr=False)
    cert_der: bytes

    @property
    def gm(self) -> bool:
        return isinstance(self.key, Sm2PrivateKey)

    @property
    def pem(self) -> str:
        return gm_x509.to_pem(self.cert_der).decode()

    # --- persistence --------------------------------------------------------------------

    @classmethod
    def load_or_create(cls, store: Store, *, name: str, suite: Suite, passphrase: bytes | None) -> BankCa:
        """The CA from ``store`` (made on first use, for the centre's suite).

        Raises:
            ValueError: the stored key cannot be opened with ``passphrase``.
        """
        rows = {
            r["name"]: bytes(r["pem"])
            for r in store.all("SELECT name, pem FROM secrets WHERE name IN ('bank_ca_key', 'bank_ca_cert')")
        }
        if len(rows) == 2:
            key_pem, cert_der = rows["bank_ca_key"], gm_x509.load_der(rows["bank_ca_cert"])
            if suite.name == "gm":
                return cls(load_sm2_pem(key_pem, passphrase or None), cert_der)
            key = serialization.load_pem_private_key(key_pem, password=passphrase or None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(key, cert_der)
        ca = cls.generate(name, suite)
        if isinstance(ca.key, Sm2PrivateKey):
            key_pem = ca.key.to_pem(passphrase or None)
        else:
            protect: serialization.KeySerializationEncryption = (
                serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
            )
            key_pem = ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, protect)
        with store.transaction():
            store.execute("INSERT OR REPLACE INTO secrets VALUES ('bank_ca_key', ?)", key_pem)
            store.execute("INSERT OR REPLACE INTO secrets VALUES ('bank_ca_cert', ?)", ca.pem.encode())
        return ca

    @classmethod
    def generate(cls, name: str, suite: Suite) -> BankCa:
        now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        subject = {"country_name": "CN", "organization_name": name, "common_name": f"{name}机构证书CA"}
        if suite.name == "gm":
            key = Sm2PrivateKey.generate()  # X.509 signatures use the GM/T 0009 default user id
            der = gm_x509.issue_certificate(
                subject=subject, public_key=key.public, issuer_key=key, not_before=now,
                not_after=now + _dt.timedelta(days=CA_VALID_DAYS), ca=True, path_length=0,
            )  # fmt: skip
            return cls(key, der)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        x_name = _name(subject)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x_name)
            .issuer_name(x_name)
            .public_key(ec_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _dt.timedelta(days=CA_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ec_key.public_key()), critical=False)
            .sign(ec_key, hashes.SHA256())
        )
        return cls(ec_key, cert.public_bytes(serialization.Encoding.DER))

    # --- issuing and revoking -------------------------------------------------------------

    def issue(
        self,
        public_key: PublicKey,
        *,
        subject: dict[str, str],
        valid_for: _dt.timedelta,
        crl_url: str | None,
    ) -> IssuedCertificate:
        """An end-entity certificate for ``public_key`` (signatures: digitalSignature, nonRepudiation;
        extended key usage clientAuth), valid from a minute ago for ``valid_for``."""
        start = _dt.datetime.now(_dt.UTC).replace(microsecond=0) - _dt.timedelta(minutes=1)
        end = start + _dt.timedelta(minutes=1) + valid_for
        serial = secrets.randbits(126) | 1 << 125
        if isinstance(self.key, Sm2PrivateKey):
            if not isinstance(public_key, Sm2PublicKey):
                raise ValueError("the gm centre certifies SM2 keys only")
            der = gm_x509.issue_certificate(
                subject=subject, public_key=public_key, issuer_key=self.key, issuer=self.cert_der, serial=serial,
                not_before=start, not_after=end, extended_key_usage=["client_auth"], crl_url=crl_url,
            )  # fmt: skip
            return IssuedCertificate(gm_x509.to_pem(der).decode(), serial, start, end)
        if isinstance(public_key, Sm2PublicKey):
            raise ValueError("the intl centre does not certify SM2 keys")
        ca = x509.load_der_x509_certificate(self.cert_der)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(ca.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if crl_url:
            point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedCertificate(cert.public_bytes(serialization.Encoding.PEM).decode(), serial, start, end)

    def crl(self, revoked: list[tuple[int, _dt.datetime, str]]) -> bytes:
        """The CRL (DER) listing ``revoked`` (serial, when, RFC 5280 reason name); next update in a day,
        CRL number the time in milliseconds (monotonic)."""
        now = _dt.datetime.now(_dt.UTC)
        this_update, next_update = now - _dt.timedelta(minutes=5), now + _dt.timedelta(days=1)
        number = int(now.timestamp() * 1000)
        if isinstance(self.key, Sm2PrivateKey):
            return gm_x509.build_crl(
                issuer_key=self.key, issuer=self.cert_der, this_update=this_update, next_update=next_update,
                number=number, revoked=[gm_x509.Revoked(s, at, reason) for s, at, reason in revoked],
            )  # fmt: skip
        ca = x509.load_der_x509_certificate(self.cert_der)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.subject)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for serial, at, reason in revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
            entry = entry.add_extension(x509.CRLReason(_REASON_FLAGS[reason]), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


_REASON_FLAGS: dict[str, Any] = {
    "key_compromise": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
    "affiliation_changed": x509.ReasonFlags.affiliation_changed,
    "unspecified": x509.ReasonFlags.unspecified,
}

_OIDS = {
    "country_name": NameOID.COUNTRY_NAME,
    "organization_name": NameOID.ORGANIZATION_NAME,
    "organization_identifier": NameOID.ORGANIZATION_IDENTIFIER,
    "common_name": NameOID.COMMON_NAME,
}


def _name(subject: dict[str, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(_OIDS[k], v) for k, v in subject.items()])
