"""The agent: wiring of the pipeline stages, the scheduler that drives them, and its state.

    watch ─► ingest ─► outbox ─► submit ─► track ─► deliver ─► receipts

Each stage is a function of the :class:`Agent` and its state store, safe to run again at any
time: the daemon (``regbridge run``) drives them with apscheduler, :meth:`Agent.run_until_idle`
drives them in a loop for the demo and the tests, and a crash at any point is recovered by
running them again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import sdk
from agent.build import BuildContext
from agent.centre.client import centre_client
from agent.config import AgentConfig, InboxConfig, load_config
from agent.credentials.custody import custody_for, retire_due
from agent.mapping import Profile, load_profile
from agent.metrics import Metrics, TimedTransport
from agent.state.audit import AuditLog
from agent.state.blobs import BlobStore
from agent.state.gm_cipher import Sm4GcmCipher, reencrypt_state
from agent.state.secrets import DataCipher, load_secret
from agent.state.sqlite import SQLiteStore
from agent.state.store import FINAL_STAGES, AppRow, now_iso
from agent.verify import TrustAnchors
from agent.watch import is_mount_point
from config import load_checklists
from connectors.documents import DocumentStore, FilesystemStore, S3Store
from connectors.receipts import receipt_path, render_receipts
from sdk.models import APPLICATION_TYPES
from sdk.support import failpoints
from sdk.support.files import atomic_write

__all__ = ["Agent", "AgentBusy", "Progress"]

log = logging.getLogger("regbridge.agent")


def make_document_store(config: AgentConfig) -> DocumentStore:
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
    """One branch's agent: its config, state, credentials and connectors.

    Args:
        config: the loaded configuration.
        secret: the agent secret (default: :func:`agent.state.secrets.load_secret`).
        client: an ``sdk.Client`` to use instead of one built from the config (tests).
    """

    def __init__(self, config: AgentConfig, *, secret: bytes | None = None, client: sdk.Client | None = None) -> None:
        self.config = config
        self.data_dir = config.resolve(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if secret is None:
            secret = load_secret(
                config.resolve(config.secret_file) if config.secret_file else None,
                keyring_user=config.centre.institution_id,
            )
        cipher: DataCipher | Sm4GcmCipher = DataCipher.for_directory(secret, self.data_dir)
        if config.centre.suite == "gm":  # SM4-GCM at rest; Fernet-sealed data still read, and re-encrypted below
            cipher = Sm4GcmCipher(secret, (self.data_dir / "cipher.salt").read_bytes(), legacy=cipher)
        self.store = SQLiteStore(self.data_dir / "state.db", encrypt=cipher.encrypt, decrypt=cipher.decrypt)
        self.blobs = BlobStore(self.data_dir / "blobs", cipher.encrypt, cipher.decrypt)
        if isinstance(cipher, Sm4GcmCipher) and self.store.get_meta("cipher") != "sm4-gcm":
            reencrypt_state(self.data_dir / "state.db", self.data_dir / "blobs", cipher)
        self.audit = AuditLog(self.data_dir / "audit.log")
        self.metrics = Metrics()
        self.audit.observers.append(self.metrics.audited)
        centre = config.centre
        self.custody = custody_for(config, secret)
        self.signer: sdk.RotatingSigner | None = None
        if client is None:
            self.signer = sdk.RotatingSigner(self.custody.signer(centre.key_id))
            client = centre_client(config, self.signer, wrap=self._wrap_transport)
        self.client = client
        self._config_mtime = config.source.stat().st_mtime_ns if config.source else 0
        self._retire_check = 0.0
        self._key_lock = threading.Lock()
        self.trust = TrustAnchors(
            seal_ca_pem=config.resolve(centre.seal_ca_file).read_text(encoding="ascii"),
            centre_key_id=centre.centre_key_id,
            centre_key=centre.centre_key,
            sm2_user_id=centre.crypto_suite.sm2_user_id,
        )
        self.documents = make_document_store(config)
        self.profiles: dict[str, Profile] = {i.name: load_profile(i.profile, base=config.base) for i in config.inbox}
        self.checklists = load_checklists()
        self.build_context = BuildContext(
            bank_name=centre.institution_name,
            bank_uscc=centre.institution_uscc,
            default_operator=config.default_operator,
            checklists=self.checklists,
            blobs=self.blobs,
        )
        self.paused: str | None = self.store.get_meta("paused") or None
        self._wake = threading.Event()
        self.watcher: Any = None
        self._instance_lock: Any = None
        self._unreachable_since: float | None = None
        self._next_contact = 0.0
        self._contact_backoff = 1.0
        self._next_probe = 0.0
        self._audit_head = ""
        self._disk_low = False
        self._mounts: dict[str, bool] = {}
        for inbox in config.inbox:
            path = config.resolve(inbox.path)
            seen = self.store.get_meta(f"inbox_seen:{inbox.name}")
            if seen is None or path.is_dir():  # first sight: make it; later, a missing folder is a lost share
                path.mkdir(parents=True, exist_ok=True)
                (path / self.profiles[inbox.name].materials.folder).mkdir(parents=True, exist_ok=True)
                mount = is_mount_point(path) or seen == "mount"
                self.store.set_meta(f"inbox_seen:{inbox.name}", "mount" if mount else "folder")
            self._mounts[inbox.name] = (seen or self.store.get_meta(f"inbox_seen:{inbox.name}")) == "mount"

    def _wrap_transport(self, inner: Any) -> Any:
        if failpoints.active():  # the reliability suite's crash matrix only
            inner = failpoints.FailpointTransport(inner)
        return TimedTransport(inner, self.metrics, on_contact=self.contact)

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

    # --- small services the stages share -------------------------------------------------

    def inbox(self, name: str) -> InboxConfig:
        return next(i for i in self.config.inbox if i.name == name)

    def receipts_folder(self, inbox: InboxConfig) -> Path:
        if inbox.receipts is not None:
            return self.config.resolve(inbox.receipts)
        return self.config.resolve(inbox.path) / self.profiles[inbox.name].receipts.folder

    def receipt(self, app: AppRow, kind: str, event: str, **fields: Any) -> None:
        """Queue one receipt line for the loan system (once per application and kind)."""
        source = app.source[-1] if app.source else {}
        payload = {
            "loan_no": app.loan_no,
            "reference": app.reference,
            "type": app.type,
            "type_name": APPLICATION_TYPES[app.type].business_name if app.type in APPLICATION_TYPES else app.type,
            "event": event,
            "application_id": app.application_id,
            "file": source.get("file"),
            "rows": ",".join(str(r) for r in source.get("rows", [])),
            "at": now_iso(),
            **{k: v for k, v in fields.items() if v is not None},
        }
        self.store.add_receipt(app.reference, kind, app.inbox, payload)

    def wake(self) -> None:
        """Something changed: run the pipeline soon rather than at the next interval.

        (The daemon replaces this with its own wake, which also starts its jobs at once.)
        """
        self._wake.set()

    def pause(self, kind: str, message: str) -> None:
        """Stop submitting (the queue is kept) until the centre accepts us again."""
        self.check_key()
        refused = re.search(r"key (\S+) is revoked", message)
        if self.signer is not None and refused and refused.group(1) != self.signer.key_id:
            # a request signed just before a rotation switched keys: it is sent again with the new key
            log.info("a request signed with the rotated-out key was refused; retrying with the new key")
            return
        if kind == "ClockSkew":
            message = self._clock_advice(message)
        message = sdk.privacy.mask_text(message)
        if self.paused != kind:
            self.paused = kind
            self.store.set_meta("paused", kind)
            log.error("submissions paused", extra={"reason": kind, "detail": message})
            self.audit.append("agent.paused", kind, "paused", detail=message)
        self.store.raise_alert("paused", f"submissions paused ({kind}): {message}")

    def _clock_advice(self, refusal: str) -> str:
        from agent.centre.client import centre_clock_skew, centre_transport

        try:
            skew = centre_clock_skew(
                self.config.centre.url, transport=centre_transport(self.config), timeout=self.config.centre.timeout
            )
        except (httpx.HTTPError, ValueError):
            return f"the centre refused our signatures' time: this machine's clock is off ({refusal})"
        return (
            f"this machine's clock is {abs(skew):.0f} s {'behind' if skew > 0 else 'ahead of'} the centre's, "
            "beyond the window its signatures allow; fix the clock (NTP) — submissions resume by themselves"
        )

    def resume(self, why: str) -> None:
        if self.paused:
            self.paused = None
            self.store.set_meta("paused", "")
            self.store.clear_alert("paused")
            self.audit.append("agent.resumed", why, "ok")
            log.info("submissions resumed", extra={"reason": why})

    def inbox_available(self, inbox: InboxConfig) -> bool:
        """Is the inbox folder there (and still the share it was)? If not, its exports and receipts wait.

        A folder that was a mount point when first seen must still be one: an unmounted share leaves
        an empty local folder behind, and receipts written there would be hidden when it comes back.
        """
        path = self.config.resolve(inbox.path)
        there = path.is_dir() and (not self._mounts.get(inbox.name) or is_mount_point(path))
        kind = f"inbox:{inbox.name}"
        if there:
            if self.store.clear_alert(kind):
                self.audit.append("inbox.back", inbox.name, "ok")
                log.info("the inbox folder is back", extra={"inbox": inbox.name})
            return True
        if self.store.raise_alert(
            kind,
            f"the inbox folder {path} of {inbox.name!r} is gone (a share disconnected?); "
            "its exports and receipts wait until it is back",
        ):
            self.audit.append("inbox.gone", inbox.name, "held", path=str(path))
            log.error("the inbox folder is gone", extra={"inbox": inbox.name, "path": str(path)})
        return False

    def disk_ok(self) -> bool:
        """Enough free space where the state lives (``pause_free_mb``)? If not, everything waits, with an alert.

        Checked before each round, so the state is never written into a full disk; space coming
        back resumes the work by itself.
        """
        try:
            free_mb = shutil.disk_usage(self.data_dir).free / 2**20
        except OSError:
            return True
        if free_mb >= self.config.pause_free_mb:
            if self._disk_low:
                self._disk_low = False
                self.store.clear_alert("disk_full")
                self.audit.append("disk.ok", str(self.data_dir), "ok", free_mb=round(free_mb))
                log.info("disk space is back; resuming", extra={"free_mb": round(free_mb)})
            return True
        if not self._disk_low:
            self._disk_low = True
            log.error("disk nearly full; pausing", extra={"free_mb": round(free_mb, 1), "path": str(self.data_dir)})
            with contextlib.suppress(sqlite3.Error, OSError):  # the alert itself may no longer fit
                self.store.raise_alert(
                    "disk_full",
                    f"only {free_mb:.1f} MB free on the disk of {self.data_dir} (at least "
                    f"{self.config.pause_free_mb} MB needed); the agent waits and resumes when space is freed",
                )
                self.audit.append("disk.full", str(self.data_dir), "paused", free_mb=round(free_mb, 1))
        return False

    def out_of_space(self, exc: BaseException) -> bool:
        """Was this failure a full disk? Then say so and wait for space (True); else False."""
        full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or (
            isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)
        )
        if full:
            self._disk_low = True
            log.error("a write failed: the disk is full; pausing", extra={"error": str(exc)})
            with contextlib.suppress(sqlite3.Error, OSError):
                self.store.raise_alert("disk_full", f"a write failed, the disk of {self.data_dir} is full: {exc}")
        return full

    def contact(self, reached: bool, detail: str) -> None:
        """Every request tells whether the centre could be reached at all (connection refused, no route…).

        While it cannot, the pipeline holds its queue and stops sending, except for one attempt at
        growing intervals (1 s … 30 s); the first answer ends the outage and the queue drains at once,
        with no application penalised for the centre's absence.
        """
        now = time.monotonic()
        if reached:
            if self._unreachable_since is not None:
                down = now - self._unreachable_since
                self._unreachable_since, self._contact_backoff, self._next_contact = None, 1.0, 0.0
                self.store.clear_alert("centre_unreachable")
                self.audit.append("centre.reachable", self.config.centre.url, "ok", seconds=round(down, 1))
                log.info("the centre answers again; draining the queue", extra={"down_seconds": round(down, 1)})
                self.wake()
            return
        if self._unreachable_since is None:
            self._unreachable_since = now
            self.store.raise_alert(
                "centre_unreachable",
                f"the centre at {self.config.centre.url} cannot be reached ({detail}); "
                "the queue is kept and sent when it answers again",
            )
            self.audit.append("centre.unreachable", self.config.centre.url, "held", detail=detail[:200])
            log.error("the centre cannot be reached; holding the queue", extra={"error": detail[:200]})
        self._next_contact = now + self._contact_backoff
        self._contact_backoff = min(30.0, self._contact_backoff * 2)

    @property
    def unreachable(self) -> bool:
        """The centre could not be reached at the last attempt."""
        return self._unreachable_since is not None

    @property
    def holding(self) -> bool:
        """The centre is unreachable and it is not yet time to try again."""
        return self._unreachable_since is not None and time.monotonic() < self._next_contact

    def probe(self) -> bool:
        """While paused: does the centre take our requests again?"""
        if not self.paused:
            return True
        if time.monotonic() < self._next_probe:
            return False
        self._next_probe = time.monotonic() + 5.0  # a probe every few seconds, not a request loop
        try:
            profile = self.client.institution.get()
        except sdk.RegBridgeError:
            return False
        if profile.channel.status == "open":
            self.resume("the centre accepts requests again")
            return True
        return False

    def check_key(self) -> str | None:
        """Sign with the config's key when ``regbridge keys rotate`` switched it; erase keys past their grace.

        Answers the new key id after a switch. Cheap when nothing changed (one stat of the config).
        """
        with self._key_lock:
            return self._check_key()

    def _check_key(self) -> str | None:
        source, switched = self.config.source, None
        if source is None or self.signer is None:
            return None
        try:
            mtime = source.stat().st_mtime_ns
        except OSError:
            return None
        if mtime != self._config_mtime:
            self._config_mtime = mtime
            try:
                key_id = load_config(source).centre.key_id
            except ValueError as exc:
                log.warning("the config cannot be read again; keeping the current key", extra={"error": str(exc)})
                return None
            if key_id != self.signer.key_id:
                try:
                    new = self.custody.signer(key_id)
                except KeyError as exc:
                    self.store.raise_alert("key", f"the config names key {key_id} but it cannot be loaded: {exc}")
                    return None
                old = self.signer.switch(new)
                self.store.clear_alert("key")
                self.audit.append("key.switched", f"{old.key_id}->{key_id}", "ok")
                log.info("signing with the rotated key", extra={"old_key": old.key_id, "key": key_id})
                switched = key_id
        if time.monotonic() >= self._retire_check:
            self._retire_check = time.monotonic() + 5.0
            for gone in retire_due(self.custody, keep=self.signer.key_id):
                self.audit.append("key.erased", gone, "ok")
                log.info("erased a rotated-out key after its grace period", extra={"key": gone})
        return switched

    # --- stages ----------------------------------------------------------------------------

    def scan(self, *, progress: Any = None) -> int:
        from agent.ingest import ingest_file
        from agent.watch import ready_files

        count = 0
        if not self.disk_ok():
            return 0
        for inbox in self.config.inbox:
            if not self.inbox_available(inbox):
                continue
            for path in ready_files(self, inbox):
                try:
                    ingest_file(self, inbox, path, progress=progress)
                except OSError as exc:  # vanished meanwhile, unreadable: leave it for the next scan
                    log.warning("could not read export", extra={"file": path.name, "error": str(exc)})
                    continue
                count += 1
        return count

    def write_receipts(self) -> int:
        written = 0
        available = {i.name for i in self.config.inbox if self.inbox_available(i)}
        for inbox in self.config.inbox:
            if inbox.name not in available:
                continue
            spec = self.profiles[inbox.name].receipts
            folder = self.receipts_folder(inbox)
            self.store.open_receipt_batch(inbox.name, lambda n, f=folder, s=spec: str(receipt_path(f, n, s.format)))
        for batch in self.store.pending_receipt_batches():
            if batch["inbox"] not in available:
                continue  # the share is away: the batch waits, it is not written into an empty local folder
            inbox = self.inbox(batch["inbox"])
            spec = self.profiles[inbox.name].receipts
            lines = [r["payload"] for r in self.store.batch_receipts(batch["id"])]
            atomic_write(
                Path(batch["path"]),
                render_receipts(lines, spec.format, spec.encoding),
                mode=0o644,
                failpoint="receipt.during_write",
            )
            self.store.mark_batch_written(batch["id"])
            self.audit.append("receipts.written", Path(batch["path"]).name, "ok", lines=len(lines))
            written += len(lines)
        return written

    def work(self, *, deliver: bool = True) -> Progress:
        """One round of everything that needs the network, then the receipts.

        The daemon runs deliveries as a job of their own (``deliver=False`` here, :meth:`deliver`
        there), so a certificate the centre just issued is not queued behind a round of submissions.
        """
        from agent.deliver import deliver_due
        from agent.submit import submit_due
        from agent.track import find_supplement_materials, pay_due, refresh_due

        p = Progress()
        self.metrics.last_work = time.monotonic()
        self.check_key()
        if not self.disk_ok():
            return p
        if self.holding or (self.paused and not self.probe()):
            p.receipts = self.write_receipts()
            return p
        p.submitted = submit_due(self)
        p.refreshed = refresh_due(self) + find_supplement_materials(self)
        p.paid = pay_due(self)
        if deliver:
            p.delivered = deliver_due(self)
        p.receipts = self.write_receipts()
        head = "{}:{}".format(*self.audit.head())
        if head != self._audit_head:  # a write (and its fsync) only when something was recorded
            self.store.set_meta("audit_head", head)
            self._audit_head = head
        return p

    def deliver(self) -> int:
        """Download, verify and store every certificate due (the daemon's ``deliver`` job)."""
        from agent.deliver import deliver_due

        if not self.disk_ok() or self.holding or self.paused:
            return 0
        return deliver_due(self)

    def poll(self) -> float:
        from agent.track import poll_events

        if self.paused:
            return 5.0
        if self.holding:
            return max(0.5, self._next_contact - time.monotonic())
        try:
            hint = poll_events(self)
        except (sdk.ChannelSuspended, sdk.AuthenticationFailed) as exc:
            self.pause(type(exc).__name__, str(exc))
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
        return open_apps + certs + pending_superseded + len(self.store.pending_receipt_batches())

    def awaiting_bank(self) -> list[str]:
        """Applications only the bank can move on: a 补正 waiting for its answer."""
        return self.store.references("tracking", where="centre_status = 'correction_required' AND needs_refresh = 0")

    def run_until_idle(self, timeout: float = 120.0, *, poll_every: float = 0.2, settle: float = 0.0) -> bool:
        """Drive every stage until nothing is left to do (demo, tests). True if it got there in time."""
        deadline = time.monotonic() + timeout
        next_poll = 0.0
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            try:
                progress = Progress(ingested=self.scan())
                if time.monotonic() >= next_poll:
                    self.poll()
                    next_poll = time.monotonic() + poll_every
                worked = self.work()
            except (OSError, sqlite3.OperationalError) as exc:
                if not self.out_of_space(exc):
                    raise
                self._wake.wait(1.0)
                continue
            progress.submitted, progress.delivered = worked.submitted, worked.delivered
            progress.receipts = worked.receipts
            if self.outstanding() == 0 and not progress.any:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            self._wake.wait(0.05)
            self._wake.clear()
        return False

    def close(self) -> None:
        self.client.close()
        self.store.close()
        if self._instance_lock is not None:
            self._instance_lock.close()
            self._instance_lock = None
