"""A provincial 总对总 platform in front of county centres, speaking the provincial envelope (docs/dialects.md).

``ProvincePlatform()`` starts one sandbox centre per county (:class:`~sandbox.local.LocalCentre`,
the same offices and rules as ``regbridge sandbox serve``: no second copy of them) and serves the
platform on a loopback port. A bank registers once (:meth:`ProvincePlatform.enrol`: its ``appId``,
its SM2 signing and encryption public keys, its notify URL — exchanged out of band, never read from
a message) and gets the platform's ``appId`` and keys back. The platform then:

- takes every request at ``POST /api/{service}`` in the envelope of :mod:`sdk.dialects.province`
  (replay window, timestamp window, the key enrolled for the ``appId``), refusing with its code;
- routes an application to the county centre of its 行政区划代码 — the first 6 digits of its first
  不动产单元号 (``config/dialects/province.toml`` ``[districts]``) — and acts there as the bank's
  institution (an account, operators and a key the platform holds for it at each county);
- acts for the head office's branches (支行) registered with it (the desk's ``branches``, or
  :meth:`ProvincePlatform.add_branch`): each branch, by its own 统一社会信用代码, is an institution of its own
  at each county centre with its own 经办人 accounts; an application is filed by the institution of the
  branch it carries (its 抵押权人, else its 代理's institution), so the county centre checks its operator
  against THAT branch's accounts (another branch's 经办人 is refused ``operator_not_authorised``, before
  受理); an application naming a branch the ``appId`` was not registered for is refused ``4030``;
- answers in TD/T 1066 names (:class:`sdk.dialects.fields.FieldDictionary`), sealed to the bank;
- pushes notices (查封, 解封, 异议, 产权变动: :meth:`ProvincePlatform.push_notice`) to the bank's
  notify URL, sealed and signed the same way.

Services (``data`` in, ``data`` out): ``create`` {application, idempotencyKey} → {YWH, record};
``upload`` {YWH, material, content (base64)} → {record}; ``submit`` {YWH, idempotencyKey} →
{record}; ``supplement`` {YWH, supplement, idempotencyKey} → {record}; ``query`` {YWH} → {record};
``withdraw`` {YWH, CHYY (撤回原因), idempotencyKey} → {record}; ``find`` {YWBH} → {record | null};
``property_query`` {query (TD/T 1066 names), idempotencyKey} → the county centre's signed 查询结果 in
TD/T 1066 names; ``receipt`` {payment_id} → the receipt; ``certificate`` {ZSID} → the county centre's signed metadata;
``download`` {ZSID, sha256} → {content}; ``verify`` {ZZBS} or {sha256} → the 在线核验 answer of the centre that
knows the licence; ``notice`` {WSID} → a sealed notice's signed metadata; ``notice_download`` {WSID,
sha256} → {content}; ``operators`` {XZQDM, TYSHXYDM?} → {operators} (of the branch of that 统一社会信用代码,
else the head office's); ``channel`` {} →
{open}; ``notify_url`` {notifyUrl} → {notifyUrl, previous} (the bank's notify URL changed: the request is signed
by its enrolled key like every other; kept and logged in ``desk_log``); ``fee`` {YWH} → the fee notice; ``pay``
{YWH, payment, idempotencyKey} → the receipt (fees in
元, as the centres keep them). ``YWH`` is the county centre's application id.

Every service but ``create`` (whose application carries its branch as its 抵押权人 or 代理) takes ``TYSHXYDM``,
the 统一社会信用代码 of the branch the call is made as (none: the head office). The platform refuses ``4030`` a
branch the ``appId`` was not registered for, and a call about an application (``YWH``: ``query``, ``upload``,
``submit``, ``supplement``, ``withdraw``, ``fee``, ``pay``) another of the bank's institutions filed; a
``property_query`` is asked at the county centre as that branch's institution (its own 经办人 and query trace);
``find``, ``certificate``, ``download``, ``receipt``, ``notice``, ``notice_download`` and ``channel`` carrying it
look only at that institution's records (without it, at every institution of the bank's); ``verify`` (在线核验)
answers from every county centre.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import sdk
from config import load_dialect, load_districts
from sdk.dialects.province import (
    APP_ID_PATTERN,
    DEFAULT_MAX_SKEW,
    EnvelopeRefused,
    NonceWindow,
    StaticPeers,
    answer,
    open_envelope,
    parse_json,
    seal,
)
from sdk.gm.sm2 import Sm2PrivateKey, Sm2PublicKey, load_pem_private_key, load_pem_public_key
from sdk.models import Material, Payment, PropertyQuery, Supplement
from sdk.signing import PrivateKey, algorithm_of, generate_private_key, jwk_from_public_key
from sdk.suites import INTL, Suite

from . import samples
from .errors import CentreError
from .local import LocalCentre, LoopbackServer
from .pki import KeysLocked
from .register import COUNTIES, County
from .store import Store

__all__ = [
    "PLATFORM_APP_ID",
    "BankAtPlatform",
    "Enrolment",
    "PlatformState",
    "ProvincePlatform",
    "StoredNonceWindow",
    "county_key_label",
]

PLATFORM_APP_ID = "AHBDC-PLATFORM"
#: sdk errors → the dialect's answer codes
_CODES: dict[type[Exception], str] = {
    sdk.ValidationFailed: "4220",
    sdk.NotFound: "4040",
    sdk.Conflict: "4090",
    sdk.OperatorNotAuthorised: "4031",  # before PermissionDenied, its base: the first match answers
    sdk.PermissionDenied: "4030",
    sdk.ChannelSuspended: "5030",
}


@dataclass(frozen=True)
class Enrolment:
    """What the platform gives a bank at registration: its own ``appId``, signing key and encryption
    key (the bank seals requests to it), and each county centre's trust anchors by 行政区划代码 —
    ``{"jwk": its metadata-signing key, "key_id", "ca_pem": its seal CAs, "name"}`` — that the bank checks
    certificates against."""

    platform_app_id: str
    platform_signing_key: Sm2PublicKey
    platform_encryption_key: Sm2PublicKey
    url: str
    centre_keys: dict[str, dict[str, Any]]


@dataclass
class BankAtPlatform:
    """A registered bank: its keys (from enrolment), notify URL, and its client at each county centre — the
    head office's (``uscc``: ``clients``, ``institutions`` by district) and each branch's it acts for
    (``branch_clients``, ``branches``: 统一社会信用代码 → district → client / institution id)."""

    app_id: str
    signing_key: Sm2PublicKey
    encryption_key: Sm2PublicKey
    notify_url: str | None
    clients: dict[str, sdk.Client] = field(default_factory=dict)
    institutions: dict[str, str] = field(default_factory=dict)
    uscc: str = samples.BANK_USCC
    branches: dict[str, dict[str, str]] = field(default_factory=dict)
    branch_clients: dict[str, dict[str, sdk.Client]] = field(default_factory=dict)

    def clients_of(self, uscc: str | None) -> dict[str, sdk.Client]:
        """The clients (by district) of the institution of ``uscc``: the head office's (``None`` or its own), a
        branch's.

        Raises:
            EnvelopeRefused: ``4030``, the bank was not registered as acting for ``uscc``.
        """
        if uscc is None or uscc == self.uscc:
            return self.clients
        if uscc not in self.branch_clients:
            raise EnvelopeRefused("4030", f"{self.app_id} 未登记为机构 {uscc[:6]}… 的代理（不是本行登记的分支机构）")
        return self.branch_clients[uscc]

    def every_client(self) -> list[tuple[str | None, str, sdk.Client]]:
        """(branch 统一社会信用代码 or None for the head office, district, client) of every institution it acts as."""
        found: list[tuple[str | None, str, sdk.Client]] = [(None, d, c) for d, c in self.clients.items()]
        for uscc, clients in self.branch_clients.items():
            found += [(uscc, d, c) for d, c in clients.items()]
        return found


class PlatformState:
    """What a platform run with a data directory keeps across restarts (``platform.sqlite3``): its own SM2
    keys (PEM, encrypted under the passphrase), the banks it registered (``appId``, public keys, notify URL,
    its institution at each county centre), the replay window (:class:`StoredNonceWindow`), each county
    centre's port (``county_ports``: the same URL after a restart) and the key the platform holds for each
    bank and branch at each county centre (``county_keys``: its key id and the private key as PKCS#8
    encrypted under the passphrase, like the platform's own), reused after a restart.

    Raises:
        KeysLocked: the platform's keys are encrypted and no (or a wrong) passphrase was given.
    """

    def __init__(self, path: Path, passphrase: bytes | None) -> None:
        if not passphrase:
            raise KeysLocked(f"{path}: the platform's keys are encrypted at rest; give the passphrase")
        self.passphrase = passphrase
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS platform_keys (name TEXT PRIMARY KEY, pem BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS banks (app_id TEXT PRIMARY KEY, signing_pem TEXT NOT NULL,
                encryption_pem TEXT NOT NULL, notify_url TEXT, institutions TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS nonces (app_id TEXT NOT NULL, nonce TEXT NOT NULL, seen_at REAL NOT NULL,
                PRIMARY KEY (app_id, nonce));
            CREATE INDEX IF NOT EXISTS nonces_seen ON nonces (seen_at);
            CREATE TABLE IF NOT EXISTS county_ports (district TEXT PRIMARY KEY, port INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS county_keys (app_id TEXT NOT NULL, uscc TEXT NOT NULL, district TEXT NOT NULL,
                institution_id TEXT NOT NULL, key_id TEXT NOT NULL, algorithm TEXT NOT NULL, pem BLOB NOT NULL,
                PRIMARY KEY (app_id, uscc, district));
            CREATE TABLE IF NOT EXISTS desk_log (at TEXT NOT NULL, app_id TEXT NOT NULL, action TEXT NOT NULL,
                detail TEXT NOT NULL);
            """
        )
        self._lock = threading.Lock()

    def key(self, name: str) -> Sm2PrivateKey:
        """The platform's key ``name`` (``signing``, ``encryption``), made and kept (encrypted) the first time."""
        with self._lock:
            row = self._db.execute("SELECT pem FROM platform_keys WHERE name = ?", (name,)).fetchone()
            if row is not None:
                try:
                    return load_pem_private_key(bytes(row[0]), self.passphrase)
                except ValueError:
                    raise KeysLocked("the platform's keys do not open with this passphrase") from None
            key = Sm2PrivateKey.generate()
            self._db.execute("INSERT INTO platform_keys VALUES (?, ?)", (name, key.to_pem(self.passphrase)))
            return key

    def save_bank(self, bank: BankAtPlatform) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO banks VALUES (?, ?, ?, ?, ?)",
                (bank.app_id, bank.signing_key.to_pem().decode(), bank.encryption_key.to_pem().decode(),
                 bank.notify_url,
                 json.dumps({"head": bank.institutions, "uscc": bank.uscc, "branches": bank.branches})),
            )  # fmt: skip

    def banks(self) -> list[BankAtPlatform]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM banks ORDER BY app_id").fetchall()
        banks = []
        for app_id, signing, encryption, notify, institutions in rows:
            kept = json.loads(institutions)
            if "head" not in kept:  # kept before branches: the head office's institutions by district
                kept = {"head": kept, "uscc": samples.BANK_USCC, "branches": {}}
            banks.append(BankAtPlatform(
                app_id, load_pem_public_key(signing.encode()), load_pem_public_key(encryption.encode()), notify,
                institutions=kept["head"], uscc=kept["uscc"], branches=kept["branches"],
            ))  # fmt: skip
        return banks

    def admit(self, app_id: str, nonce: str, now: float, horizon: float) -> bool:
        """Remember ``nonce`` unless it was seen after ``horizon``; forget every entry older than it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM nonces WHERE seen_at < ?", (horizon,))
                fresh = self._db.execute("INSERT OR IGNORE INTO nonces VALUES (?, ?, ?)", (app_id, nonce, now))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return fresh.rowcount == 1

    def ports(self) -> dict[str, int]:
        """The port each county centre served on last (行政区划代码 → port)."""
        with self._lock:
            return {d: int(p) for d, p in self._db.execute("SELECT district, port FROM county_ports")}

    def save_port(self, district: str, port: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO county_ports VALUES (?, ?)", (district, port))

    def county_key(self, app_id: str, uscc: str, district: str) -> tuple[str, str, PrivateKey] | None:
        """(institution id, key id, private key) the platform holds for ``app_id`` as the institution of ``uscc``
        (``""``: the head office) at the county centre of ``district``, or None.

        Raises:
            KeysLocked: the kept key does not open with this passphrase.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT institution_id, key_id, algorithm, pem FROM county_keys "
                "WHERE app_id = ? AND uscc = ? AND district = ?",
                (app_id, uscc, district),
            ).fetchone()
        if row is None:
            return None
        iid, key_id, algorithm, pem = row
        try:
            key: PrivateKey = (
                load_pem_private_key(bytes(pem), self.passphrase) if algorithm == "sm2-sm3"
                else serialization.load_pem_private_key(bytes(pem), password=self.passphrase)  # type: ignore[assignment]
            )  # fmt: skip
        except (ValueError, TypeError):
            raise KeysLocked("the platform's keys at the county centres do not open with this passphrase") from None
        return str(iid), str(key_id), key

    def save_county_key(
        self, app_id: str, uscc: str, district: str, institution_id: str, key_id: str, key: PrivateKey
    ) -> None:
        """Keep the key the platform enrolled for ``app_id`` (as ``uscc``'s institution) at ``district``'s
        centre, encrypted (PKCS#8 under the passphrase; SM2 as PBES2 PKCS#8), replacing the one kept before."""
        if isinstance(key, Sm2PrivateKey):
            pem = key.to_pem(self.passphrase)
        else:
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(self.passphrase))  # fmt: skip
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO county_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                (app_id, uscc, district, institution_id, key_id, algorithm_of(key), pem),
            )

    def log(self, record: dict[str, Any]) -> None:
        """Keep one record of the desk's log (:attr:`ProvincePlatform.desk_log`)."""
        detail = {k: v for k, v in record.items() if k not in ("at", "appId", "action")}
        with self._lock:
            self._db.execute("INSERT INTO desk_log VALUES (?, ?, ?, ?)",
                             (record["at"], record["appId"], record["action"], json.dumps(detail)))  # fmt: skip

    def desk_log(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT at, app_id, action, detail FROM desk_log ORDER BY rowid").fetchall()
        return [{"at": at, "appId": app, "action": action, **json.loads(detail)} for at, app, action, detail in rows]

    def nonces(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM nonces").fetchone()[0])

    def close(self) -> None:
        self._db.close()


class StoredNonceWindow(NonceWindow):
    """The replay window kept in :class:`PlatformState`: a nonce seen before a restart is still refused,
    and entries older than twice the timestamp window (a message that old is refused by its timestamp
    anyway) are deleted on every admission, so the table holds at most that window's traffic."""

    def __init__(self, state: PlatformState, seconds: float) -> None:
        super().__init__(seconds)
        self.state = state

    def admit(self, app_id: str, nonce: str, *, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.state.admit(app_id, nonce, now, now - 2 * self.seconds)


class ProvincePlatform:
    """The platform and its county centres on loopback ports, in threads of this process.

    Args:
        counties: the centres behind the platform (default: 长丰县 340121 and 肥西县 340123, as
            ``[districts]`` of the dialect names them).
        suite: the county centres' crypto suite (certificates and their signatures) when they are new.
        dialect: the field dictionary (``config/dialects/<dialect>.toml``).
        max_skew: the timestamp window, seconds either way (the replay window is twice as long: a nonce
            is remembered until no message with it can pass the timestamp check).
        data: a data directory (``regbridge sandbox serve --dialect province --data DIR``): the platform's
            keys, registered banks and replay window (``platform.sqlite3``) and each county centre
            (``<district>/centre.sqlite3``) survive a restart; ``None``: all in memory.
        passphrase: encrypts the keys kept under ``data`` (required with it).
        county_ports: the port of a county centre by 行政区划代码 (``serve --county-port 340121=8701``);
            else, with ``data``, the port it served on last (kept in ``platform.sqlite3``; a new county gets a
            free one, kept from then on), else a free one. A kept port another process holds now is left for a
            free one, said in :attr:`notes` and kept instead.

    Raises:
        KeysLocked: ``data`` without a passphrase, or with the wrong one.
        ValueError: a port of ``county_ports`` cannot be bound (naming the county, the port and why).
    """

    def __init__(
        self,
        counties: tuple[County, ...] | None = None,
        *,
        suite: Suite = INTL,
        dialect: str = "province",
        max_skew: float = DEFAULT_MAX_SKEW,
        host: str = "127.0.0.1",
        port: int = 0,
        data: Path | None = None,
        passphrase: bytes | None = None,
        county_ports: Mapping[str, int] | None = None,
    ) -> None:
        self.fields = load_dialect(dialect)
        districts = load_districts(dialect)
        chosen = counties or tuple(COUNTIES[d] for d in districts if d in COUNTIES)
        self.state = PlatformState(data / "platform.sqlite3", passphrase) if data is not None else None
        try:
            self.signing_key = self.state.key("signing") if self.state else Sm2PrivateKey.generate()
            self.encryption_key = self.state.key("encryption") if self.state else Sm2PrivateKey.generate()
        except KeysLocked:
            assert self.state is not None
            self.state.close()
            raise
        #: what the operator should know of this start (a kept county port that was taken, and the one used)
        self.notes: list[str] = []
        self.centres: dict[str, LocalCentre] = {}
        try:
            for county in chosen:
                self.centres[county.district] = self._county_centre(county, suite, data, passphrase, county_ports)
        except BaseException:
            for made in self.centres.values():
                made.stop()
            if self.state is not None:
                self.state.close()
            raise
        self.app_id = PLATFORM_APP_ID
        self.max_skew = max_skew
        self.window = StoredNonceWindow(self.state, max_skew) if self.state else NonceWindow(max_skew)
        self.banks: dict[str, BankAtPlatform] = {}
        self._routes: dict[str, tuple[str | None, str]] = {}  # application id → (branch USCC or None, district)
        self._lock = threading.Lock()
        #: the bearer token of ``POST /admin/enrol`` (the registration desk; shown once by ``sandbox serve``)
        self.admin_token = secrets.token_urlsafe(24)
        #: what the desk changed for a bank after its registration (``notify_url``: ``previous``, ``url``), oldest first
        self.desk_log: list[dict[str, Any]] = self.state.desk_log() if self.state else []
        self.app = Starlette(
            routes=[
                Route("/api/{service}", self._endpoint, methods=["POST"]),
                Route("/admin/enrol", self._enrol_endpoint, methods=["POST"]),
            ]
        )
        try:
            self._server = LoopbackServer(host=host, port=port)
        except OSError as exc:
            for made in self.centres.values():
                made.stop()
            if self.state is not None:
                self.state.close()
            raise ValueError(f"the platform's port {host}:{port} cannot be bound ({exc.strerror or exc})") from None
        self.port, self.url = self._server.port, self._server.url
        self._http = httpx.Client(timeout=10.0)

    def _county_centre(
        self,
        county: County,
        suite: Suite,
        data: Path | None,
        passphrase: bytes | None,
        configured: Mapping[str, int] | None,
    ) -> LocalCentre:
        """The county centre on its configured port, else its kept one, else a free one (kept from now on)."""
        store = Store(data / county.district / "centre.sqlite3") if data is not None else None
        kept = self.state.ports().get(county.district) if self.state is not None else None
        wanted = (configured or {}).get(county.district) or kept or 0
        name = f"{county.district} {county.name}不动产登记中心"
        try:
            local = LocalCentre(county=county, suite=suite, passphrase=passphrase, store=store, port=wanted)
        except OSError as exc:  # bound before the store is used: the same store serves on another port
            if county.district in (configured or {}) or not kept:  # the operator asked for it: no quiet substitute
                if store is not None:
                    store.close()
                raise ValueError(f"{name}: port {wanted} cannot be bound ({exc.strerror or exc}); free it or "
                                 "give another with --county-port DISTRICT=PORT") from None  # fmt: skip
            local = LocalCentre(county=county, suite=suite, passphrase=passphrase, store=store)
            self.notes.append(
                f"{name}: its port {wanted} (kept in {data}) is taken ({exc.strerror or exc}); serving on "
                f"{local.port} instead, kept from now on — an agent enrolled at this centre directly must use "
                f"{local.url} (or free port {wanted} and give --county-port {county.district}={wanted})"
            )
        if self.state is not None and local.port != kept:
            self.state.save_port(county.district, local.port)
        return local

    # --- life ----------------------------------------------------------------------------------

    def start(self) -> ProvincePlatform:
        for centre in self.centres.values():
            centre.start()
        if self.state is not None:  # the banks registered before a restart, with the keys kept for them
            for bank in self.state.banks():
                for district, iid in bank.institutions.items():
                    if district in self.centres:
                        bank.clients[district] = self._connect(bank.app_id, "", district, iid)
                for uscc, institutions in bank.branches.items():
                    bank.branch_clients[uscc] = {
                        d: self._connect(bank.app_id, uscc, d, iid) for d, iid in institutions.items()
                        if d in self.centres
                    }  # fmt: skip
                self.banks[bank.app_id] = bank
        self._server.start(self.app, lifespan="off", what="the platform")
        return self

    def stop(self) -> None:
        self._server.stop()
        for bank in self.banks.values():
            for _, _, client in bank.every_client():
                client.close()
        for centre in self.centres.values():
            centre.stop()
        self._http.close()
        if self.state is not None:
            self.state.close()

    def __enter__(self) -> ProvincePlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- registration (out of band: the keys are exchanged here, never read from a message) ---

    def enrol(
        self,
        app_id: str,
        *,
        signing_key: Sm2PublicKey,
        encryption_key: Sm2PublicKey,
        notify_url: str | None = None,
        name: str = samples.bank().name,
        uscc: str = samples.BANK_USCC,
        operators: tuple[str, ...] = ("op-001", "op-002"),
        branches: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
    ) -> Enrolment:
        """Register a bank: its ``appId`` and public keys; at every county centre its account (the one it has
        there under ``uscc``, else one opened with 银行信息备案 filed) with ``operators`` and a key the platform
        holds; and each of ``branches`` (name, 统一社会信用代码, its operators) it acts for
        (:meth:`add_branch`). Answers the platform's keys."""
        bank = BankAtPlatform(app_id, signing_key, encryption_key, notify_url, uscc=uscc)
        centre_keys: dict[str, dict[str, Any]] = {}
        for district, local in self.centres.items():
            centre = local.centre
            iid = self._account(district, name, uscc, operators)
            bank.clients[district] = self._connect(app_id, "", district, iid)
            bank.institutions[district] = iid
            centre_keys[district] = {
                "jwk": dict(centre.keys.centre_jwk),
                "key_id": centre.keys.centre_key_id,
                # as in an enrolment bundle: the seal CA (and the gm seal system's CA)
                "ca_pem": centre.keys.ca_pem + (centre.seals.ca_pem if centre.seals is not None else ""),
                "name": centre.name,
            }
        with self._lock:
            self.banks[app_id] = bank
        for branch_name, branch_uscc, branch_operators in branches:
            if branch_uscc == uscc:  # the head office itself
                continue
            self.add_branch(app_id, name=branch_name, uscc=branch_uscc, operators=branch_operators)
        if self.state is not None:
            self.state.save_bank(bank)
        return Enrolment(self.app_id, self.signing_key.public, self.encryption_key.public, self.url, centre_keys)

    def add_branch(self, app_id: str, *, name: str, uscc: str, operators: tuple[str, ...]) -> dict[str, str]:
        """Register ``app_id`` as acting for a branch (支行): at every county centre the branch's own institution
        (its account under ``uscc``, else one opened with 银行信息备案 filed) with its own ``operators`` (ids
        unique at a centre: not another institution's), and a key the platform holds there. Answers the
        branch's institution id by district.

        Raises:
            KeyError: ``app_id`` is not registered.
            CentreError: an operator id is another institution's account, or ``uscc`` is not a valid code.
        """
        bank = self.banks[app_id]
        institutions = {d: self._account(d, name, uscc, operators) for d in self.centres}
        bank.branches[uscc] = institutions
        bank.branch_clients[uscc] = {d: self._connect(app_id, uscc, d, iid) for d, iid in institutions.items()}
        if self.state is not None:
            self.state.save_bank(bank)
        return institutions

    def _account(self, district: str, name: str, uscc: str, operators: tuple[str, ...]) -> str:
        """The institution of ``uscc`` at a county centre (opened with 银行信息备案 filed when it has none), with
        ``operators``."""
        centre = self.centres[district].centre
        known = next((p.institution_id for p in centre.list_institutions() if p.uscc == uscc), None)
        iid = known or centre.create_institution(name=name, uscc=uscc, licence_no=samples.BANK_LICENCE_NO,
                                                 district=district)  # fmt: skip
        for i, op in enumerate(operators, 1):
            if op not in centre.operator_ids(iid):
                centre.create_operator(iid, f"经办人{i}", operator_id=op)
        if known is None:
            samples.file_sample(centre, iid)
        return iid

    def _connect(self, app_id: str, uscc: str, district: str, institution_id: str) -> sdk.Client:
        """A client of the bank's institution (``uscc``: a branch's, ``""`` the head office's) at a county centre,
        with the key the platform holds there for ``app_id``: the one kept (with a data directory) while the
        centre still has it active, else a new one made and enrolled there — and then every other active key
        the platform enrolled for ``app_id`` at that institution (its label, :func:`county_key_label`) is
        revoked, so the centre holds exactly one."""
        local = self.centres[district]
        centre = local.centre
        kept = self.state.county_key(app_id, uscc, district) if self.state is not None else None
        if kept is not None:
            iid, key_id, key = kept
            now = datetime.now(UTC)
            if iid == institution_id and any(
                c.key_id == key_id and c.status == "active" and (c.revoke_at is None or c.revoke_at > now)
                for c in centre.list_credentials(institution_id)
            ):
                return sdk.Client(local.url, sdk.Credential(key_id, key))
        label = county_key_label(app_id)
        token = centre.issue_enrolment_token(institution_id)
        key = generate_private_key(centre.suite.default_algorithm)  # type: ignore[arg-type]
        with sdk.Client(local.url) as anon:
            enrolled = anon.credentials.enroll(token, jwk_from_public_key(key.public_key()), label=label)
        for earlier in centre.list_credentials(institution_id):
            if earlier.label == label and earlier.status == "active" and earlier.key_id != enrolled.key_id:
                centre.revoke(None, earlier.key_id, f"replaced by the platform's new key {enrolled.key_id}")
        if self.state is not None:
            self.state.save_county_key(app_id, uscc, district, institution_id, enrolled.key_id, key)
        return sdk.Client(local.url, sdk.Credential(enrolled.key_id, key))

    async def _enrol_endpoint(self, request: Request) -> JSONResponse:
        """``POST /admin/enrol`` (bearer :attr:`admin_token`): ``{appId, signingKey, encryptionKey (PEM),
        notifyUrl?, name?, uscc?, operators?, branches?: [{name, uscc, operators}]}`` → the platform's ``appId``,
        keys (PEM) and each centre's trust anchors."""
        if not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {self.admin_token}"):
            return JSONResponse({"error": "admin token required"}, status_code=401)
        try:
            body = parse_json(await request.body())
            app_id = str(body["appId"])
            signing = load_pem_public_key(str(body["signingKey"]).encode())
            encryption = load_pem_public_key(str(body["encryptionKey"]).encode())
            branches = tuple((str(b["name"]), str(b["uscc"]), tuple(str(o) for o in b["operators"]))
                             for b in body.get("branches") or ())  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"appId, signingKey and encryptionKey (SM2 PEM) expected: {exc}"}, 400)
        if not APP_ID_PATTERN.fullmatch(app_id) or app_id == self.app_id:  # no bank may sign as the platform
            return JSONResponse({"error": f"appId {app_id[:64]!r}: 1-64 letters, digits, '_', '.', '-', and not the"
                                          f" platform's own ({self.app_id})"}, status_code=400)  # fmt: skip
        if app_id in self.banks:
            return JSONResponse({"error": f"{app_id} is already registered"}, status_code=409)
        try:
            enrolment = await self._enrol_in_thread(body, app_id, signing, encryption, branches)
        except CentreError as exc:
            return JSONResponse({"error": exc.detail}, status_code=exc.status)
        return JSONResponse(
            {
                "platformAppId": enrolment.platform_app_id,
                "signingKey": enrolment.platform_signing_key.to_pem().decode(),
                "encryptionKey": enrolment.platform_encryption_key.to_pem().decode(),
                "url": enrolment.url,
                "centres": enrolment.centre_keys,
            }
        )

    async def _enrol_in_thread(
        self,
        body: dict[str, Any],
        app_id: str,
        signing: Sm2PublicKey,
        encryption: Sm2PublicKey,
        branches: tuple[tuple[str, str, tuple[str, ...]], ...],
    ) -> Enrolment:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(
            lambda: self.enrol(
                app_id,
                signing_key=signing,
                encryption_key=encryption,
                notify_url=body.get("notifyUrl"),
                name=str(body.get("name", samples.bank().name)),
                uscc=str(body.get("uscc", samples.BANK_USCC)),
                operators=tuple(str(o) for o in body.get("operators", ("op-001", "op-002"))),
                branches=branches,
            )
        )

    def serve_forever(self) -> None:
        """Start, and serve until interrupted (``regbridge sandbox serve --dialect province``)."""
        self.start()
        try:
            while self._server.alive:
                self._server.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def peer_key(self, app_id: str) -> Sm2PublicKey | None:
        bank = self.banks.get(app_id)
        return bank.signing_key if bank else None

    # --- notices pushed to the mortgagee ---------------------------------------------------------

    def push_notice(self, app_id: str, *, kind: str, unit_id: str, **details: Any) -> httpx.Response:
        """Push a notice (``kind``: ``seizure``, ``seizure_release``, ``objection``, ``ownership_change``)
        on ``unit_id`` to the bank's notify URL, sealed to it and signed by the platform.

        Raises:
            ValueError: the bank has no notify URL, or ``kind`` is not in ``[codes.TZLX]``.
        """
        bank = self.banks[app_id]
        if not bank.notify_url:
            raise ValueError(f"{app_id} registered no notify URL")
        number = f"TZ{unit_id[:6]}{secrets.token_hex(6).upper()}"  # 通知编号: a retried push keeps it
        data = {
            "TZBH": number,
            "TZLX": self.fields.to_dialect_code("TZLX", kind),
            "BDCDYH": unit_id,
            **self.fields.to_dialect(details),
        }
        sealed = seal(data, app_id=self.app_id, signer=self.signing_key, recipient=bank.encryption_key)
        return self._http.post(bank.notify_url, headers=sealed.headers, json=sealed.body)

    # --- the envelope endpoint ------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> JSONResponse:
        import anyio.to_thread

        service = request.path_params["service"]
        try:
            body = parse_json(await request.body())
        except ValueError:
            return JSONResponse(answer("4001", "报文不是 JSON"))
        headers = dict(request.headers)
        try:
            opened = open_envelope(
                headers, body, recipient=self.encryption_key, peers=self, window=self.window, max_skew=self.max_skew
            )
        except EnvelopeRefused as refused:
            return JSONResponse(answer(refused.code, refused.reason))
        bank = self.banks[opened.app_id]
        try:
            data = await anyio.to_thread.run_sync(self._serve, bank, service, opened.data)
        except EnvelopeRefused as refused:
            return JSONResponse(answer(refused.code, refused.reason))
        except sdk.APIError as exc:
            code = next((c for t, c in _CODES.items() if isinstance(exc, t)), "5000")
            details = [e.model_dump(mode="json") for e in exc.errors]
            return JSONResponse(answer(code, exc.args[0], {"errors": details, "code": exc.code} if details else None))
        except (ValueError, KeyError) as exc:
            return JSONResponse(answer("4220", f"{type(exc).__name__}: {exc}"))
        sealed = seal(data, app_id=self.app_id, signer=self.signing_key, recipient=bank.encryption_key,
                      reply_to=opened.nonce)  # the answer names the request it answers
        return JSONResponse(answer("0000", data=sealed))

    def _change_notify_url(self, bank: BankAtPlatform, data: dict[str, Any]) -> dict[str, Any]:
        """The ``notify_url`` service: the bank's notify URL from now on (``notifyUrl``, absolute http(s)); the
        change is kept (with ``--data``) and logged in :attr:`desk_log`. Answers ``{notifyUrl, previous}``."""
        from datetime import UTC, datetime
        from urllib.parse import urlsplit

        url = str(data.get("notifyUrl") or "")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
            raise EnvelopeRefused("4220", f"notifyUrl {url[:80]!r}: an absolute http(s) URL expected")
        with self._lock:
            previous, bank.notify_url = bank.notify_url, url
            record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "appId": bank.app_id,
                      "action": "notify_url", "previous": previous, "url": url}  # fmt: skip
            self.desk_log.append(record)
        if self.state is not None:
            self.state.save_bank(bank)
            self.state.log(record)
        return {"notifyUrl": url, "previous": previous}

    def _district_of_unit(self, unit_id: str) -> str:
        district = unit_id[:6]
        if district not in self.centres:
            raise EnvelopeRefused("4220", f"不动产单元号 {unit_id[:6]}…: 行政区划代码 {district} 不在本平台")
        return district

    @staticmethod
    def _branch(bank: BankAtPlatform, data: dict[str, Any]) -> str | None:
        """The institution a call is made as: the branch whose 统一社会信用代码 it carries (``TYSHXYDM``), else
        the head office (``None``).

        Raises:
            EnvelopeRefused: ``4030``, the ``appId`` was not registered as acting for that branch.
        """
        carried = data.get("TYSHXYDM")
        uscc = str(carried) if carried else None
        uscc = None if uscc == bank.uscc else uscc
        bank.clients_of(uscc)  # a branch the appId does not act for: 4030
        return uscc

    def _client(self, bank: BankAtPlatform, application_id: str, uscc: str | None) -> tuple[str, sdk.Client]:
        """The district and client of the institution that filed ``application_id``, which must be the one the
        call is made as (``uscc``: a branch's 统一社会信用代码, ``None`` the head office).

        Raises:
            sdk.NotFound: no institution of the bank filed it.
            EnvelopeRefused: ``4030``, another of the bank's institutions (another branch) filed it.
        """
        route = self._routes.get(application_id)
        if route is None:
            for filer, candidate, client in bank.every_client():
                try:
                    client.applications.get(application_id)
                except sdk.NotFound:
                    continue
                self._routes[application_id] = route = (filer, candidate)
                break
            else:
                raise sdk.NotFound(
                    f"no application {application_id} at the platform's centres", status=404, code="not_found"
                )
        if route[0] != uscc:
            asked = f"机构 {uscc[:6]}…" if uscc else "总行（未带 TYSHXYDM）"
            raise EnvelopeRefused("4030", f"业务 {application_id} 不属于{asked}：由本行另一机构办理")
        return route[1], bank.clients_of(route[0])[route[1]]

    @staticmethod
    def _clients_as(bank: BankAtPlatform, uscc: str | None, data: dict[str, Any]) -> list[sdk.Client]:
        """The clients a look-up by document id searches: the carried branch's (or, carrying ``TYSHXYDM``
        of the head office, its own) when the call carries one, else every institution of the bank."""
        if "TYSHXYDM" in data:
            return list(bank.clients_of(uscc).values())
        return [client for _, _, client in bank.every_client()]

    def _serve(self, bank: BankAtPlatform, service: str, data: Any) -> Any:
        if not isinstance(data, dict):
            raise EnvelopeRefused("4001", "data is not a JSON object")
        fields = self.fields
        # the institution the call is made as (create: the branch its application carries)
        branch = self._branch(bank, data) if service != "create" else None
        if service == "create":
            application = fields.application_from_dialect(data["application"])
            district = self._district_of_unit(application.properties[0].unit_id)
            # filed by the institution of the branch it carries: its 抵押权人, else its 代理's institution
            mortgagee = getattr(application, "mortgagee", None)
            representation = getattr(application, "representation", None)
            uscc = (mortgagee.id_number if mortgagee is not None
                    else representation.agent.institution_uscc if representation is not None else None)  # fmt: skip
            uscc = None if uscc == bank.uscc else uscc
            client = bank.clients_of(uscc)[district]
            record = client.applications.create(application, idempotency_key=data["idempotencyKey"])
            self._routes[record.application_id] = (uscc, district)
            return {"YWH": record.application_id, "XZQDM": district, "record": fields.record_to_dialect(record)}
        if service == "upload":
            _, client = self._client(bank, data["YWH"], branch)
            material = Material.model_validate(fields.from_dialect(data["material"]))
            record = client.applications.upload_material(data["YWH"], material, base64.b64decode(data["content"]))
            return {"record": fields.record_to_dialect(record)}
        if service == "submit":
            _, client = self._client(bank, data["YWH"], branch)
            record = client.applications.submit(data["YWH"], idempotency_key=data["idempotencyKey"])
            return {"record": fields.record_to_dialect(record)}
        if service == "supplement":
            _, client = self._client(bank, data["YWH"], branch)
            supplement = Supplement.model_validate(fields.from_dialect(data["supplement"]))
            record = client.applications.supplement(data["YWH"], supplement, idempotency_key=data["idempotencyKey"])
            return {"record": fields.record_to_dialect(record)}
        if service == "withdraw":
            _, client = self._client(bank, data["YWH"], branch)
            record = client.applications.withdraw(
                data["YWH"], str(data["CHYY"]), idempotency_key=data["idempotencyKey"]
            )
            return {"record": fields.record_to_dialect(record)}
        if service == "query":
            _, client = self._client(bank, data["YWH"], branch)
            return {"record": fields.record_to_dialect(client.applications.get(data["YWH"]))}
        if service == "fee":
            _, client = self._client(bank, data["YWH"], branch)
            return client.fees.get(data["YWH"]).model_dump(mode="json", exclude_none=True)
        if service == "pay":
            _, client = self._client(bank, data["YWH"], branch)
            payment = Payment.model_validate(data["payment"])
            receipt = client.fees.pay(data["YWH"], payment, idempotency_key=data["idempotencyKey"])
            return receipt.model_dump(mode="json", exclude_none=True)
        if service == "receipt":
            for client in self._clients_as(bank, branch, data):
                try:
                    return client.fees.receipt(str(data["payment_id"])).model_dump(mode="json", exclude_none=True)
                except sdk.NotFound:
                    continue
            raise sdk.NotFound(
                f"no payment {data['payment_id']} at the platform's centres", status=404, code="not_found"
            )
        if service == "property_query":  # 登记资料查询 at the county centre of the unit (or each, by 证号/坐落)
            query = PropertyQuery.model_validate(fields.from_dialect(data["query"]))
            # asked as the branch it carries: its own institution at the county centre, its own 经办人
            clients = bank.clients_of(branch)
            if query.unit_id is not None:
                candidates = [clients[self._district_of_unit(query.unit_id)]]
            else:
                candidates = list(clients.values())
            for client in candidates:
                try:
                    result = client.properties.query(query, idempotency_key=data["idempotencyKey"])
                except sdk.NotFound:
                    continue
                return fields.to_dialect(result.model_dump(mode="json", exclude_none=True))
            raise sdk.NotFound("no unit of that 证号 or 坐落 at the platform's centres", status=404, code="not_found")
        if service == "find":
            for uscc, district, client in bank.every_client():
                if "TYSHXYDM" in data and uscc != branch:  # only the institution the call is made as
                    continue
                found = client.applications.find(data["YWBH"])
                if found is not None:
                    self._routes[found.application_id] = (uscc, district)
                    return {"record": fields.record_to_dialect(found)}
            return {"record": None}
        if service in ("certificate", "download"):
            for client in self._clients_as(bank, branch, data):
                try:
                    if service == "certificate":
                        return client.certificates.get(data["ZSID"]).model_dump(mode="json", exclude_none=True)
                    # the platform relays the file the centre signed for; the bank checks it against the
                    # digest it expects (end to end: the digest is in the county centre's signed metadata)
                    signed = client.certificates.get(data["ZSID"])
                    content = client.certificates.download(data["ZSID"], expected_sha256=signed.metadata.sha256)
                    return {"content": base64.b64encode(content).decode("ascii")}
                except sdk.NotFound:
                    continue
            raise sdk.NotFound(f"no certificate {data['ZSID']} at the platform's centres", status=404, code="not_found")
        if service == "verify":  # 在线核验 by ZZBS or sha256: the county centre that knows the certificate answers
            licence, digest = data.get("ZZBS"), data.get("sha256")
            answers = [
                client.certificates.verify(licence_id=licence, sha256=digest) for _, _, client in bank.every_client()
            ]
            known = [a for a in answers if a.result != "unknown"] or answers
            return known[0].model_dump(mode="json", exclude_none=True)
        if service in ("notice", "notice_download"):  # a sealed notice (docs/api.md §9a), relayed as a certificate
            for client in self._clients_as(bank, branch, data):
                try:
                    notice = client.certificates.notice(data["WSID"])
                    if service == "notice":
                        return notice.model_dump(mode="json", exclude_none=True)
                    content = client.certificates.download_notice(data["WSID"], expected_sha256=notice.metadata.sha256)
                    return {"content": base64.b64encode(content).decode("ascii")}
                except sdk.NotFound:
                    continue
            raise sdk.NotFound(f"no notice {data['WSID']} at the platform's centres", status=404, code="not_found")
        if service == "operators":
            district = self._district_of_unit(str(data["XZQDM"]) + "0" * 22)
            client = bank.clients_of(branch)[district]  # a branch's: its own 经办人 accounts
            return {"operators": [op.model_dump(mode="json") for op in client.institution.operators()]}
        if service == "notify_url":  # signed by the bank's enrolled key (the envelope checked it), and logged
            return self._change_notify_url(bank, data)
        if service == "channel":
            profiles = [client.institution.get() for client in self._clients_as(bank, branch, data)]
            return {"open": all(p.channel.status == "open" and p.filing_state.status == "complete" for p in profiles)}
        raise EnvelopeRefused("4040", f"no service {service!r}")


def county_key_label(app_id: str) -> str:
    """The label of the keys a platform enrols for ``app_id`` at a county centre (at most 64 characters):
    how it tells its own keys there from the bank's (a head office may hold its own key at the same account)."""
    label = f"platform:{app_id}"
    return label if len(label) <= 64 else f"platform:{hashlib.sha256(app_id.encode()).hexdigest()[:40]}"


def peers_of(platform: ProvincePlatform) -> StaticPeers:
    """The platform's enrolled banks as a fixed directory (a snapshot: for tests and tools)."""
    return StaticPeers({app_id: bank.signing_key for app_id, bank in platform.banks.items()})
