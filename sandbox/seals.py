"""The centre's electronic seal (电子印章) as the national seal system issues it (seed 000 art. 12),
for the ``gm`` suite: an SM2 seal CA, the seal maker's (制章者) certificate, the centre's seal
certificate (subject O = the centre's name) and the GB/T 38540 v4 seal the maker makes for it
(picture, validity window, the seal certificate listed), all SM2/SM3 via :mod:`sdk.gm.x509`.

:meth:`SealOffice.seal` seals an OFD package with it (:func:`sandbox.ofd_writer.seal_ofd`). The
seal CA's CRL (:meth:`SealOffice.crl`) is published at :data:`SM2_CRL_PATH`, which the seal
certificate names once the centre knows its public URL. Keys are kept in the centre's ``secrets``
table, PKCS#8 PBES2-encrypted under the centre's passphrase (plain only in an in-memory centre).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
from dataclasses import dataclass, field
from typing import Literal

from sdk.gm.sm2 import Sm2PrivateKey
from sdk.gm.sm2 import load_pem_private_key as load_sm2_pem
from sdk.gm.x509 import Revoked, build_crl, certificate_public_key, issue_certificate, load_certificate, to_pem

from .ofd_writer import make_seal, make_signature, seal_ofd
from .store import Store

__all__ = ["SEAL_VALID_DAYS", "SM2_CRL_PATH", "SealOffice", "seal_picture"]

#: where the SM2 seal CA's CRL is published under the centre's public URL
SM2_CRL_PATH = "/pki/seal-ca-sm2.crl"
#: the seal's and its certificate's validity, in days
SEAL_VALID_DAYS = 2 * 365
CA_VALID_DAYS = 10 * 365
_NAMES = ("ca_key", "ca_cert", "maker_key", "maker_cert", "seal_key", "seal_cert", "seal")


def seal_picture(authority: str, size: int = 240) -> bytes:
    """The seal's picture (PNG, transparent): a red ring, a star, the authority's name and 不动产登记专用章."""
    from PIL import Image, ImageDraw, ImageFont

    from sdk.support.fonts import font_face

    image = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    red = (200, 20, 20, 255)
    draw.ellipse((6, 6, size - 6, size - 6), outline=red, width=8)
    path = font_face().path
    name_font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    try:
        name_font = ImageFont.truetype(path, 17) if path else ImageFont.load_default()
        small: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.truetype(path, 18) if path else name_font
        star: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.truetype(path, 64) if path else name_font
    except OSError:
        name_font = small = star = ImageFont.load_default()
    draw.text((size / 2, size * 0.28), authority[:12], fill=red, font=name_font, anchor="mm")
    draw.text((size / 2, size * 0.52), "★", fill=red, font=star, anchor="mm")
    draw.text((size / 2, size * 0.76), "不动产登记专用章", fill=red, font=small, anchor="mm")
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


@dataclass
class SealOffice:
    """The centre's SM2 seal CA, maker, seal certificate and electronic seal."""

    name: str
    ca_key: Sm2PrivateKey = field(repr=False)
    ca_cert: bytes
    maker_key: Sm2PrivateKey = field(repr=False)
    maker_cert: bytes
    seal_key: Sm2PrivateKey = field(repr=False)
    seal_cert: bytes
    seal_der: bytes
    passphrase: bytes | None = field(default=None, repr=False)
    crl_url: str | None = None

    @property
    def ca_pem(self) -> str:
        return to_pem(self.ca_cert).decode("ascii")

    # --- making ---------------------------------------------------------------------------

    @classmethod
    def generate(cls, name: str, *, crl_url: str | None = None) -> SealOffice:
        now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        ca_key = Sm2PrivateKey.generate()
        ca_cert = issue_certificate(
            subject={"country_name": "CN", "organization_name": name, "common_name": f"{name}电子印章SM2根证书"},
            public_key=ca_key.public,
            issuer_key=ca_key,
            not_before=now,
            not_after=now + _dt.timedelta(days=CA_VALID_DAYS),
            ca=True,
            path_length=0,
        )
        maker_key = Sm2PrivateKey.generate()
        maker_cert = issue_certificate(
            subject={"country_name": "CN", "organization_name": name, "common_name": f"{name}电子印章制章者"},
            public_key=maker_key.public,
            issuer_key=ca_key,
            issuer=ca_cert,
            not_before=now,
            not_after=now + _dt.timedelta(days=CA_VALID_DAYS),
            crl_url=crl_url,
        )
        office = cls(name, ca_key, ca_cert, maker_key, maker_cert, ca_key, b"", b"", crl_url=crl_url)
        office._new_seal(now)
        return office

    def _new_seal(self, now: _dt.datetime | None = None) -> None:
        """A new seal key, its certificate and the seal listing it (after a revocation or a new CRL URL)."""
        now = now or _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        self.seal_key = Sm2PrivateKey.generate()
        self.seal_cert = issue_certificate(
            subject={
                "country_name": "CN",
                "organization_name": self.name,
                "common_name": f"{self.name} 不动产登记专用章",
            },
            public_key=self.seal_key.public,
            issuer_key=self.ca_key,
            issuer=self.ca_cert,
            not_before=now,
            not_after=now + _dt.timedelta(days=SEAL_VALID_DAYS),
            crl_url=self.crl_url,
        )
        self.seal_der = self.make_seal(valid_start=now, valid_end=now + _dt.timedelta(days=SEAL_VALID_DAYS))

    def make_seal(
        self,
        *,
        valid_start: _dt.datetime,
        valid_end: _dt.datetime,
        version: Literal[1, 4] = 4,
        signer_cert: bytes | None = None,
        picture: bytes | None = None,
    ) -> bytes:
        """An electronic seal by this office's maker (v4 by default) listing ``signer_cert`` (the seal certificate)."""
        return make_seal(
            es_id=f"{load_certificate(self.ca_cert).serial_number % 10**18:018d}",
            name=f"{self.name}不动产登记专用章",
            picture=picture if picture is not None else seal_picture(self.name),
            picture_size_mm=(40, 40),
            signer_certs=[signer_cert or self.seal_cert],
            valid_start=valid_start,
            valid_end=valid_end,
            maker_key=self.maker_key,
            maker_cert=self.maker_cert,
            version=version,
        )

    # --- sealing --------------------------------------------------------------------------

    def seal(
        self,
        files: dict[str, bytes],
        *,
        stamp_page: int,
        stamp_box: tuple[float, float, float, float],
        signed_at: _dt.datetime | None = None,
        seal: bytes | None = None,
        signer_key: Sm2PrivateKey | None = None,
        signer_cert: bytes | None = None,
    ) -> dict[str, bytes]:
        """Seal an OFD package (GB/T 33190 §18) with the centre's seal: v4 SES_Signature by the seal
        certificate over SM3 of Signature.xml. The keyword overrides make hostile variants in tests."""
        when = signed_at or _dt.datetime.now(_dt.UTC)
        use_seal = seal if seal is not None else self.seal_der
        key, cert = signer_key or self.seal_key, signer_cert or self.seal_cert
        return seal_ofd(
            files,
            seal=use_seal,
            sign=lambda digest: make_signature(
                seal=use_seal,
                data_hash=digest,
                signer_key=key,
                signer_cert=cert,
                signed_at=when,
                property_info="OFD Doc_0 (GB/T 33190), RegBridge sandbox",
            ),
            stamp_page=stamp_page,
            stamp_box=stamp_box,
            signed_at=when,
        )

    # --- revocation -----------------------------------------------------------------------

    def crl(self, store: Store) -> bytes:
        """The SM2 seal CA's CRL (DER): the revoked serials (the centre's one revocation table); a day's validity."""
        now = _dt.datetime.now(_dt.UTC)
        revoked = [
            Revoked(int(r["serial"]), _dt.datetime.fromisoformat(r["revoked_at"]))
            for r in store.all("SELECT serial, revoked_at FROM revoked_certificates ORDER BY revoked_at")
        ]
        return build_crl(
            issuer_key=self.ca_key,
            issuer=self.ca_cert,
            revoked=revoked,
            this_update=now - _dt.timedelta(minutes=5),
            next_update=now + _dt.timedelta(days=1),
            number=int(now.timestamp() * 1000),
        )

    def serial(self) -> int:
        return int(load_certificate(self.seal_cert).serial_number)

    def publish_crl_at(self, store: Store, url: str) -> None:
        """Name ``url`` as the CRL distribution point of the maker and seal certificates (re-issued)."""
        if self.crl_url == url:
            return
        self.crl_url = url
        now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        self.maker_cert = issue_certificate(
            subject=load_certificate(self.maker_cert).subject,
            public_key=self.maker_key.public,
            issuer_key=self.ca_key,
            issuer=self.ca_cert,
            not_before=now,
            not_after=now + _dt.timedelta(days=CA_VALID_DAYS),
            crl_url=url,
        )
        self._new_seal(now)
        self.save(store)

    def revoke_seal(self, store: Store, reason: str) -> int:
        """Put the seal certificate on the CRL and make a new seal key, certificate and seal; answers the serial."""
        serial = self.serial()
        store.execute(  # the centre's one revocation table (sandbox.pki.revoke_certificate)
            "INSERT OR IGNORE INTO revoked_certificates VALUES (?, ?, ?)",
            str(serial), _dt.datetime.now(_dt.UTC).isoformat(), reason[:100],
        )  # fmt: skip
        self._new_seal()
        self.save(store)
        return serial

    # --- keeping --------------------------------------------------------------------------

    def save(self, store: Store) -> None:
        values = {
            "ca_key": self.ca_key.to_pem(self.passphrase or None),
            "ca_cert": self.ca_cert,
            "maker_key": self.maker_key.to_pem(self.passphrase or None),
            "maker_cert": self.maker_cert,
            "seal_key": self.seal_key.to_pem(self.passphrase or None),
            "seal_cert": self.seal_cert,
            "seal": self.seal_der,
            "crl_url": json.dumps(self.crl_url).encode(),
        }
        with store.transaction():
            for label, value in values.items():
                store.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?)", f"sm2_seal_{label}", value)

    @classmethod
    def load_or_create(cls, store: Store, *, name: str, passphrase: bytes | None) -> SealOffice:
        """The centre's seal office from its store, made on first use."""
        rows = {
            r["name"][len("sm2_seal_") :]: bytes(r["pem"])
            for r in store.all("SELECT name, pem FROM secrets WHERE name LIKE 'sm2_seal_%'")
        }
        if all(n in rows for n in _NAMES):
            office = cls(
                name,
                load_sm2_pem(rows["ca_key"], passphrase),
                rows["ca_cert"],
                load_sm2_pem(rows["maker_key"], passphrase),
                rows["maker_cert"],
                load_sm2_pem(rows["seal_key"], passphrase),
                rows["seal_cert"],
                rows["seal"],
                passphrase,
                json.loads(rows.get("crl_url", b"null")),
            )
            if certificate_public_key(office.seal_cert).raw != office.seal_key.public.raw:
                raise ValueError("the stored seal key is not the seal certificate's")
            return office
        office = cls.generate(name)
        office.passphrase = passphrase
        office.save(store)
        return office
