"""The agent: its state, credentials and connectors composed into the stages' context, and one round
of each stage.

    watch ─► ingest ─► outbox ─► submit ─► track ─► deliver ─► receipts

Each stage is a function of the :class:`~agent.pipeline.context.StageContext` built here, safe to
run again at any time: the daemon (``regbridge run``, :mod:`agent.daemon.scheduler`) drives the
rounds with apscheduler, :meth:`Agent.run_until_idle` drives them in a loop for the demo and the
tests, and a crash at any point is recovered by running them again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pathlib
import secrets
import socket
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import httpx

import sdk
from agent.centre.api import ApiCentre
from agent.centre.client import centre_client, direct_trust
from agent.centre.port import CentrePort, filer_uscc
from agent.centre.province import platform_centre, platform_trust
from agent.centre.routing import RoutedCentre
from agent.config import AgentConfig
from agent.credentials.custody import DecryptionKeys, custody_for
from agent.credentials.pkcs11 import Pkcs11Signer
from agent.credentials.rotation import RotationFollower
from agent.daemon.metrics import Metrics, TimedTransport
from agent.daemon.notify import PlatformNoticeReceiver
from agent.daemon.supervision import Supervision
from agent.mapping import Profile, load_profile
from agent.messages import refused_key_advice
from agent.pipeline.build import BuildContext
from agent.pipeline.context import StageContext
from agent.pipeline.deliver import deliver_due
from agent.pipeline.ingest import ExportRefused, ingest_file
from agent.pipeline.notices import deliver_notices
from agent.pipeline.outbox import pending_notices
from agent.pipeline.receipts import write_receipts
from agent.pipeline.submit import submit_due
from agent.pipeline.track import find_supplement_materials, pay_due, poll_events, refresh_due
from agent.pipeline.watch import is_mount_point, ready_files, settling_files
from agent.state.audit import AuditLog
from agent.state.blobs import BlobStore
from agent.state.gm_cipher import Sm4GcmCipher, reencrypt_state
from agent.state.leases import LEADER
from agent.state.lookup import person_key, search_keys_of
from agent.state.secrets import DataCipher, load_secret
from agent.state.sqlite import SQLiteStore
from agent.state.store import FINAL_STAGES, AppRow, StateStore
from config import load_checklists, load_dialect
from connectors.documents import DocumentStore, FilesystemStore, S3Store
from sdk.certificates import TrustAnchors
from sdk.dialects.province import StaticPeers
from sdk.gm.sm2 import Sm2PrivateKey, load_pem_public_key
from sdk.support import failpoints
from sdk.support.files import atomic_write

__all__ = ["Agent", "AgentBusy", "Progress", "make_document_store", "pem_certificates"]

log = logging.getLogger("regbridge.agent")


def make_document_store(config: AgentConfig) -> DocumentStore:
    """The document store the config names (a folder, or an S3 bucket)."""
    docs = config.documents
    if docs.kind == "s3":
        assert docs.bucket is not None
        return S3Store(
            docs.bucket,
            prefix=docs.prefix,
            endpoint_url=docs.endpoint_url,
            region=docs.region,
            access_key=docs.access_key.get_secret_value() if docs.access_key else None,
            secret_key=docs.secret_key.get_secret_value() if docs.secret_key else None,
        )
    return FilesystemStore(config.resolve(docs.root))


class AgentBusy(RuntimeError):
    """Another agent process works on the same state."""


@dataclass
class Progress:
    """What one round of the pipeline did (for the loop that drives it)."""

    ingested: int = 0
    submitted: int = 0
    events: int = 0
    refreshed: int = 0
    paid: int = 0
    delivered: int = 0
    receipts: int = 0

    @property
    def any(self) -> bool:
        return any(vars(self).values())


class Agent:
    """One branch's agent: its config, state, credentials and connectors, and the rounds of its stages.

    Args:
        config: the loaded configuration.
        secret: the agent secret (default: :func:`agent.state.secrets.load_secret`).
        client: an ``sdk.Client`` to use instead of one built from the config (tests).
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        secret: bytes | None = None,
        client: sdk.Client | None = None,
        centre_port: CentrePort | None = None,
        trust_by_district: Mapping[str, TrustAnchors] | None = None,
    ) -> None:
        self.config = config
        self.data_dir = config.resolve(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if secret is None:
            secret = load_secret(
                config.resolve(config.secret_file) if config.secret_file else None,
                keyring_user=config.centre.institution_id,
            )
        if config.state.url:  # a shared state: the salt every instance uses is kept in it
            from agent.state.sql import SQLStore  # the `postgres` extra

            salt_file = self.data_dir / "cipher.salt"
            probe = SQLStore(config.state.url)
            try:
                salt = probe.shared_salt(salt_file.read_bytes() if salt_file.exists() else os.urandom(16))
            finally:
                probe.close()
            if not salt_file.exists() or salt_file.read_bytes() != salt:
                atomic_write(salt_file, salt)
        cipher: DataCipher | Sm4GcmCipher = DataCipher.for_directory(secret, self.data_dir)
        if config.centre.suite == "gm":  # SM4-GCM at rest; Fernet-sealed data still read, and re-encrypted below
            cipher = Sm4GcmCipher(secret, (self.data_dir / "cipher.salt").read_bytes(), legacy=cipher)
        #: ID numbers are searched for through an HMAC keyed from the secret (agent.state.lookup)
        self.person_key = person_key(secret)
        indexer = search_keys_of(self.person_key)
        # the one place the state's backend is chosen: `state.url` (SQLAlchemy: PostgreSQL or SQLite), else
        # the embedded SQLite file
        self.store: StateStore
        if config.state.url:
            self.store = SQLStore(config.state.url, encrypt=cipher.encrypt, decrypt=cipher.decrypt, indexer=indexer)
        else:
            self.store = SQLiteStore(
                self.data_dir / "state.db", encrypt=cipher.encrypt, decrypt=cipher.decrypt, indexer=indexer
            )
        if self.store.get_meta("search_keys") != "1":  # applications stored before the search keys existed
            self.store.reindex()
            self.store.set_meta("search_keys", "1")
        blobs_dir = config.resolve(config.state.blobs_dir) if config.state.blobs_dir else self.data_dir / "blobs"
        self.blobs = BlobStore(blobs_dir, cipher.encrypt, cipher.decrypt)
        if isinstance(cipher, Sm4GcmCipher) and self.store.get_meta("cipher") != "sm4-gcm":
            if isinstance(self.store, SQLiteStore):
                reencrypt_state(self.data_dir / "state.db", self.data_dir / "blobs", cipher)
            else:  # a shared state is created under SM4-GCM; a Fernet one is re-encrypted before it moves
                self.store.set_meta("cipher", "sm4-gcm")
        self.audit = AuditLog(self.data_dir / "audit.log")
        self.metrics = Metrics()
        self.audit.observers.append(self.metrics.audited)
        centre = config.centre
        self.custody = custody_for(config, secret)
        self.signer: sdk.RotatingSigner | None = None
        #: the bank's SM2 encryption key: opens what a gm centre with the envelope seals to it
        self.decryption_keys = DecryptionKeys(self.custody) if centre.envelope else None  # a rotation's keys too
        if client is None:
            self.signer = sdk.RotatingSigner(self.custody.signer(centre.key_id))
            client = centre_client(config, self.signer, wrap=self._wrap_transport, decryption_key=self.decryption_keys)
        self.client = client
        # another dialect's adapter (a provincial platform, docs/dialects.md) instead of RegBridge's API;
        # the client stays for what the API alone offers (银行信息备案, key rotation)
        if centre_port is None and (config.platform is not None or config.centres):  # the routing table
            platform = None
            if config.platform is not None:  # the platform's districts
                platform = platform_centre(
                    config, signer=self.platform_key(config.platform.key_id),
                    decryption_key=self.platform_decryption_key(), branch_of=self._branch_of,
                    wrap=self._wrap_transport,
                )  # fmt: skip
                trust_by_district = {**platform_trust(config), **(trust_by_district or {})}
            # the other direct centres, by the start of their districts' codes (each its own credential and anchors)
            directs: dict[str, CentrePort] = {p: ApiCentre(self._direct_client(p)) for p in config.centres}
            trust_by_district = {**direct_trust(config), **(trust_by_district or {})}
            districts = config.platform.centres if config.platform is not None else ()
            centre_port = RoutedCentre(ApiCentre(client), platform, districts, self._district_of, directs)
        self.centre: CentrePort = centre_port or ApiCentre(client)
        self.follower = (
            RotationFollower(config, self.custody, self.signer, self.store, self.audit) if self.signer else None
        )
        self.trust = TrustAnchors(
            seal_ca_pem=config.resolve(centre.seal_ca_file).read_text(encoding="ascii"),
            centre_key_id=centre.centre_key_id,
            centre_key=centre.centre_key,
            sm2_user_id=centre.crypto_suite.sm2_user_id,
            centre_name=centre.centre_name,
        )
        self.documents = make_document_store(config)
        self.profiles: dict[str, Profile] = {i.name: load_profile(i.profile, base=config.base) for i in config.inbox}
        self.checklists = load_checklists()
        self.watcher: Any = None
        self._instance_lock: IO[str] | None = None
        self._instance_id: str | None = None
        self._registered = False
        self._leader = False
        self._audit_head = ""
        self.supervision = Supervision(config, self.store, self.audit, self.centre, self.follower, self._inboxes())
        self.context = StageContext(
            config=config,
            store=self.store,
            centre=self.centre,
            audit=self.audit,
            blobs=self.blobs,
            documents=self.documents,
            trust=self.trust,
            profiles=self.profiles,
            checklists=self.checklists,
            build=BuildContext(
                bank_name=centre.institution_name,
                bank_uscc=centre.institution_uscc,
                default_operator=config.default_operator,
                checklists=self.checklists,
                blobs=self.blobs,
                esign_cas=pem_certificates(config.resolve(centre.esign_ca_file)) if centre.esign_ca_file else [],
            ),
            supervisor=self.supervision,
            instance=self.instance_id if config.state.url else None,
            trust_by_district=dict(trust_by_district or {}),
        )

    def _direct_client(self, prefix: str) -> sdk.Client:
        """A client of the direct centre ``[centres."<prefix>"]``: its URL and anchors, the agent's key it enrolled
        there (``key_id``, in the agent's key store), its personal-field envelope when it asks for one."""
        config = self.config.for_centre(prefix)
        keys = DecryptionKeys(self.custody) if config.centre.envelope else None
        signer = self.custody.signer(config.centre.key_id)
        return centre_client(config, signer, wrap=self._wrap_transport, decryption_key=keys)

    def _app_of(self, kind: str, key: str) -> AppRow | None:
        """The application an id (``application``, ``reference`` or ``certificate``) is of, when the agent has it."""
        if kind == "application":
            return self.store.by_centre_id(key)
        if kind == "reference":
            return self.store.application(key)
        cert = self.store.certificate(key)
        return self.store.application(str(cert["reference"])) if cert else None

    def _branch_of(self, kind: str, key: str) -> str | None:
        """The branch (统一社会信用代码) the application an id is of was filed as
        (:data:`agent.centre.province.BranchOf`)."""
        app = self._app_of(kind, key)
        return filer_uscc(app.payload) if app is not None else None

    def _district_of(self, kind: str, key: str) -> str | None:
        """The 行政区划代码 of the first unit of the application an id is of (:data:`agent.centre.routing.Locate`)."""
        app = self._app_of(kind, key)
        units = [p.get("unit_id") for p in app.payload.get("properties", []) if isinstance(p, dict)] if app else []
        return str(units[0])[:6] if units and units[0] else None

    def platform_key(self, key_id: str) -> Sm2PrivateKey | Pkcs11Signer:
        """The bank's SM2 signing key at the platform (``[platform] key_id``), from the key store: the key, or a
        signer over it inside the PKCS#11 token (:meth:`KeyCustody.sm2_signer`).

        Raises:
            KeyError: it is not in the key store, cannot be decrypted, or is not an SM2 key.
            TokenUnavailable: it is in a token that cannot be reached.
        """
        return self.custody.sm2_signer(key_id)

    def platform_decryption_key(self) -> Sm2PrivateKey:
        """The bank's SM2 encryption key (what the platform seals answers and notices to).

        Raises:
            KeyError: there is none (``regbridge platform enroll`` makes it) or it cannot be decrypted.
        """
        key = self.custody.encryption_key()
        if key is None:
            raise KeyError("no SM2 encryption key in the key store: run `regbridge platform enroll`")
        return key

    def notice_receiver(self) -> PlatformNoticeReceiver | None:
        """The receiver of the platform's pushed notices (``[platform.notify]``), not yet started; None
        without a platform or with ``notify.enabled = false``."""
        platform = self.config.platform
        if platform is None or not platform.notify.enabled:
            return None
        peers = StaticPeers({platform.platform_app_id: load_pem_public_key(platform.platform_signing_key.encode())})
        receiver = PlatformNoticeReceiver(
            self.context,
            load_dialect(platform.dialect),
            recipient=self.platform_decryption_key(),
            peers=peers,
            max_skew=platform.max_skew,
            host=platform.notify.listen,
            port=platform.notify.port,
        )
        if platform.notify.public_url:
            receiver.url = platform.notify.public_url
        return receiver

    def _inboxes(self) -> dict[str, bool]:
        """Make the inbox folders seen for the first time; answer which were mount points then."""
        mounts = {}
        for inbox in self.config.inbox:
            path = self.config.resolve(inbox.path)
            seen = self.store.get_meta(f"inbox_seen:{inbox.name}")
            if seen is None or path.is_dir():  # first sight: make it; later, a missing folder is a lost share
                path.mkdir(parents=True, exist_ok=True)
                (path / self.profiles[inbox.name].materials.folder).mkdir(parents=True, exist_ok=True)
                mount = is_mount_point(path) or seen == "mount"
                self.store.set_meta(f"inbox_seen:{inbox.name}", "mount" if mount else "folder")
            mounts[inbox.name] = (seen or self.store.get_meta(f"inbox_seen:{inbox.name}")) == "mount"
        return mounts

    def _wrap_transport(self, inner: httpx.BaseTransport) -> httpx.BaseTransport:
        if failpoints.active():  # the reliability suite's crash matrix only
            inner = failpoints.FailpointTransport(inner)
        # the supervision is made after the client: looked up when a request is answered
        return TimedTransport(inner, self.metrics, on_contact=self._contact)

    def _contact(self, reached: bool, detail: str, origin: str) -> None:
        self.supervision.contact(reached, detail, origin=origin)

    def lock_instance(self) -> None:
        """Be the only agent working on this state (``regbridge run``); released when the process ends."""
        path = self.data_dir / "agent.lock"
        fh = open(path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise AgentBusy(f"another agent (pid {holder}) is running on {self.data_dir}; stop it first") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._instance_lock = fh

    #: settings a running agent takes up on SIGHUP; any other change needs a restart (and says so)
    RELOADABLE = (
        "default_operator", "concurrency", "rescan_seconds", "straggler_seconds", "max_poll_seconds",
        "retry_max_seconds", "correction_warning_hours", "transmittal_dir", "min_free_mb", "pause_free_mb",
        "timezone", "fees", "logging",
    )  # fmt: skip

    def reload(self) -> list[str]:
        """Read the config file and every inbox's mapping profile again (SIGHUP), without losing work.

        The profiles are swapped in place, so the next export is read with the new ones; an export
        being read finishes with the profile it started with. Reloadable settings (:attr:`RELOADABLE`,
        an inbox's profile and completion rule) take effect at once; a change to anything else (the
        centre, the data folder, the inbox list, the listeners) is reported and waits for a restart.
        A config or profile that does not load leaves everything as it was.

        Returns: the settings that changed but need a restart (empty when all were applied).

        Raises:
            ValueError: the config file or a profile does not load (nothing was changed).
        """
        from agent.config import load_config

        source = self.config.source
        if source is None:
            raise ValueError("this agent's config was not read from a file: nothing to reload")
        new = load_config(source)
        profiles = {i.name: load_profile(i.profile, base=new.base) for i in new.inbox}  # all or nothing
        restart: list[str] = []
        old_inboxes = {i.name: i for i in self.config.inbox}
        if set(old_inboxes) != {i.name for i in new.inbox}:
            restart.append("inbox (the list of inboxes)")
        for name in AgentConfig.model_fields:
            if name in self.RELOADABLE or name == "inbox":
                continue
            if getattr(new, name) != getattr(self.config, name):
                restart.append(name)
        for name in self.RELOADABLE:
            setattr(self.config, name, getattr(new, name))
        for inbox in new.inbox:
            old = old_inboxes.get(inbox.name)
            if old is None:
                continue
            if (old.path, old.receipts, old.polling) != (inbox.path, inbox.receipts, inbox.polling):
                restart.append(f"inbox {inbox.name} (path, receipts or polling)")
            old.profile, old.completion, old.stable_seconds = inbox.profile, inbox.completion, inbox.stable_seconds
            self.profiles[inbox.name] = profiles[inbox.name]
        self.context.build.default_operator = new.default_operator
        self.audit.append("agent.reloaded", str(source), "ok", restart_needed=", ".join(restart) or "none")
        log.info("config and profiles reloaded", extra={"restart_needed": ", ".join(restart) or "none"})
        return restart

    @property
    def decryption_key(self) -> Sm2PrivateKey | None:
        """The bank's current SM2 encryption key (gm envelope), or None."""
        return self.decryption_keys[0] if self.decryption_keys else None

    @property
    def paused(self) -> str | None:
        """Why submissions are paused, or None."""
        return self.supervision.paused

    def check_key(self) -> str | None:
        """Sign with the config's key when ``regbridge keys rotate`` switched it (see :class:`RotationFollower`)."""
        return self.follower.check() if self.follower is not None else None

    def check_bank_certificate(self) -> str | None:
        """An alert (``bank_certificate``) while the signing key's institution certificate (机构证书) ends within
        30 days or has ended — a rotation renews it before, only a new enrolment after; cleared otherwise.
        Answers the alert's message, or None."""
        from sdk.csr import read_certificate

        key_id = self.signer.key_id if self.signer is not None else self.config.centre.key_id
        try:
            pem = self.custody.entry(key_id).certificate
        except KeyError:
            return None
        if not pem:
            self.store.clear_alert("bank_certificate")
            return None
        info = read_certificate(pem)
        left = info.not_after - datetime.now(UTC)
        end = f"{info.not_after:%Y-%m-%d}"
        if left.total_seconds() <= 0:
            advice = refused_key_advice("code certificate_expired", self.config.source)
            message = (f"机构证书 {info.serial_hex} 已于 {end} 过期，登记中心拒绝本机签名 (the bank certificate ended"
                       f" {end}; the centre refuses the key){advice}")  # fmt: skip
        elif left.days <= 30:
            message = (f"机构证书 {info.serial_hex} 将于 {end} 到期（剩 {left.days} 天）：请运行"
                       f" `regbridge keys rotate` 换钥续证 (the bank certificate ends {end}: rotate the key now, which"
                       " renews it)")  # fmt: skip
        else:
            self.store.clear_alert("bank_certificate")
            return None
        self.store.raise_alert("bank_certificate", message)
        return message

    # --- rounds ------------------------------------------------------------------------------

    def scan(self, *, progress: Any = None) -> int:
        """Ingest every complete export of every inbox that is there; answers the files read."""
        count = 0
        if not self.supervision.disk_ok():
            return 0
        for inbox in self.config.inbox:
            if not self.supervision.inbox_available(inbox):
                continue
            for path in ready_files(self.context, inbox):
                try:
                    ingest_file(self.context, inbox, path, progress=progress)
                except ExportRefused as exc:  # became a symbolic link since the folder was listed
                    log.warning("export refused", extra={"file": path.name, "error": str(exc)})
                    continue
                except OSError as exc:  # vanished meanwhile, unreadable: leave it for the next scan
                    log.warning("could not read export", extra={"file": path.name, "error": str(exc)})
                    continue
                count += 1
        return count

    def work(self, *, deliver: bool = True) -> Progress:
        """One round of everything that needs the network, then the receipts.

        The daemon runs deliveries as a job of their own (``deliver=False`` here, :meth:`deliver`
        there), so a certificate the centre just issued is not queued behind a round of submissions.
        """
        p = Progress()
        ctx, sup = self.context, self.supervision
        self.metrics.last_work = time.monotonic()
        if self.check_key() is not None:
            sup.probe_soon()  # a new key (rotated, or enrolled after the centre refused the old one): ask at once
        if not sup.disk_ok():
            return p
        if sup.holding or (sup.paused and not sup.probe()):
            p.receipts = write_receipts(ctx) if self.is_leader else 0
            return p
        p.submitted = submit_due(ctx)
        p.refreshed = refresh_due(ctx) + find_supplement_materials(ctx)
        p.paid = pay_due(ctx)
        if deliver:
            p.delivered = deliver_due(ctx)
            if not (p.submitted or p.refreshed or p.paid or p.delivered):  # notices never hold up the flow
                p.delivered += deliver_notices(ctx)
        p.receipts = write_receipts(ctx) if self.is_leader else 0  # one writer of each inbox's receipt files
        head = "{}:{}".format(*self.audit.head())
        if head != self._audit_head:  # a write (and its fsync) only when something was recorded
            self.store.set_meta(self.audit_head_key, head)
            self._audit_head = head
        return p

    def deliver(self) -> int:
        """Download, verify and store every certificate due (the daemon's ``deliver`` job)."""
        sup = self.supervision
        if not sup.disk_ok() or sup.holding or sup.paused:
            return 0
        return deliver_due(self.context) + deliver_notices(self.context)

    def poll(self) -> float:
        """Read the event feed; answers when to read it again (seconds)."""
        sup = self.supervision
        if sup.paused:
            return 5.0
        if sup.holding:
            return max(0.5, sup.next_contact - time.monotonic())
        if not self.beat():  # another instance reads the feed; look again soon, to take over if it dies
            return self.config.state.leader_seconds / 3
        try:
            hint = poll_events(self.context)
        except (sdk.ChannelSuspended, sdk.AuthenticationFailed) as exc:
            sup.pause(type(exc).__name__, str(exc))
            return 5.0
        except sdk.RegBridgeError as exc:
            log.warning("event feed unavailable", extra={"error": type(exc).__name__})
            return min(self.config.max_poll_seconds, 10.0)
        return min(hint, self.config.max_poll_seconds)

    def outstanding(self) -> int:
        """Applications and certificates the agent still has work for (receipts included)."""
        counts = self.store.counts()
        waiting = len(self.awaiting_bank())
        open_apps = sum(n for stage, n in counts.items() if stage not in FINAL_STAGES) - waiting
        certs = len(self.store.certificates(stage="pending")) + len(self.store.certificates(stage="storing"))
        pending_superseded = len(self.store.superseding())
        notices = len(pending_notices(self.context, due_only=True))
        batches = len(self.store.pending_receipt_batches())
        return open_apps + certs + pending_superseded + notices + batches + self.settling()

    def settling(self) -> int:
        """Exports in the inboxes not yet taken (still settling, still being written, waiting for a marker)."""
        return sum(
            len(settling_files(self.context, inbox))
            for inbox in self.config.inbox
            if self.supervision.inbox_available(inbox)
        )

    def awaiting_bank(self) -> list[str]:
        """Applications only the bank can move on: a 补正 waiting for its answer; with auto-pay off, a fee due."""
        waiting = self.store.references("tracking", where="centre_status = 'correction_required' AND needs_refresh = 0")
        if not self.config.fees.auto_pay:
            waiting += self.store.references(
                "tracking", where="centre_status = 'recorded' AND fee_status = 'unpaid' AND needs_refresh = 0"
            )
        return waiting

    def run_until_idle(self, timeout: float = 120.0, *, poll_every: float = 0.2, settle: float = 0.0) -> bool:
        """Drive every stage until nothing is left to do (demo, tests). True if it got there in time."""
        deadline = time.monotonic() + timeout
        next_poll = 0.0
        quiet_since: float | None = None
        woken = self.supervision.woken
        while time.monotonic() < deadline:
            try:
                progress = Progress(ingested=self.scan())
                if time.monotonic() >= next_poll:
                    self.poll()
                    next_poll = time.monotonic() + poll_every
                worked = self.work()
            except (OSError, sqlite3.OperationalError) as exc:
                if not self.supervision.out_of_space(exc):
                    raise
                woken.wait(1.0)
                continue
            progress.submitted, progress.delivered = worked.submitted, worked.delivered
            progress.receipts = worked.receipts
            if self.outstanding() == 0 and not progress.any:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            woken.wait(0.05)
            woken.clear()
        return False

    # --- several instances on one state (agent.state.leases; docs/state.md) ---------------------

    @property
    def shared(self) -> bool:
        """Whether the state may be shared with other instances (``state.url`` set)."""
        return bool(self.config.state.url)

    @property
    def daemon_meta_key(self) -> str:
        """Where ``regbridge run`` notes its pid, version and start (``meta``): one per instance on a shared state,
        so each host's ``regbridge status`` reads its own daemon's, not the last one started anywhere."""
        return f"daemon:{self.instance_id}" if self.shared else "daemon"

    @property
    def instance_id(self) -> str:
        """This instance's id: made once per data directory (a restarted instance is the same one)."""
        if self._instance_id is None:
            path = self.data_dir / "instance.id"
            if not path.exists():
                atomic_write(path, f"{socket.gethostname()}-{secrets.token_hex(4)}".encode())
            self._instance_id = path.read_text(encoding="utf-8").strip()
        return self._instance_id

    @property
    def audit_head_key(self) -> str:
        """Where the state keeps this instance's audit head (each instance has its own audit log)."""
        return f"audit_head:{self.instance_id}" if self.shared else "audit_head"

    @property
    def is_leader(self) -> bool:
        """Whether this instance reads the event feed and runs the once-per-deployment jobs (receipts,
        deadlines, time limits): always on its own state; on a shared one, while it holds the leader lease."""
        return not self.shared or self._leader

    def beat(self) -> bool:
        """Heartbeat, leader lease and reaper (every third of ``state.leader_seconds``); answers
        :attr:`is_leader`. A leader lost (expired, reaped) is noticed here, and taken by another."""
        if not self.shared:
            return True
        ttl = self.config.state.leader_seconds
        if not self._registered or not self.store.heartbeat(self.instance_id):
            self.store.register_instance(self.instance_id, socket.gethostname(), os.getpid())
            self._registered = True
        was = self._leader
        self._leader = self.store.acquire_lease(LEADER, self.instance_id, ttl)
        if self._leader and not was:
            log.info("leader of the shared state", extra={"instance": self.instance_id})
            self.audit.append("instance.leader", self.instance_id, "leader", host=socket.gethostname())
        if self._leader:  # one reaper is enough: the leader frees what dead instances held
            for dead in self.store.reap(stale_seconds=3 * ttl):
                log.warning("instance reaped", extra={"instance": dead})
                self.audit.append("instance.reaped", dead, "reaped", by=self.instance_id)
        return self._leader

    def close(self) -> None:
        if self.shared and self._registered:
            try:  # a clean stop: another instance leads at once
                self.store.release_lease(LEADER, self.instance_id)
                self._leader = False
            except Exception as exc:
                log.warning("could not give the leader lease up", extra={"error": str(exc)[:200]})
        self.centre.close()
        self.store.close()
        if self._instance_lock is not None:
            self._instance_lock.close()
            self._instance_lock = None


def pem_certificates(path: pathlib.Path) -> list[str]:
    """The PEM certificates in ``path`` (a bundle of one or more), each as its own PEM text.

    Raises:
        OSError: the file cannot be read.
    """
    text = path.read_text(encoding="ascii")
    marker = "-----END CERTIFICATE-----"
    return [part.strip() + "\n" + marker + "\n" for part in text.split(marker) if part.strip()]
