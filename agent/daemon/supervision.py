"""The daemon's watch over its surroundings: the pause, the centre's reachability, the disk, the inboxes.

:class:`Supervision` is the :class:`~agent.pipeline.context.Supervisor` the stages report to and ask:

- a refused credential or a suspended channel pauses submissions (the queue is kept) with an
  alert, until a probe finds the channel open again;
- a centre that cannot be reached at all (connection refused, no route…) holds the queue, with
  one attempt at growing intervals (1 s … 30 s); the first answer ends the outage and drains it,
  with no application penalised for the centre's absence;
- a disk nearly full (``pause_free_mb``) stops everything, with an alert, until space is back;
- an inbox folder that is gone (a share disconnected) holds its exports and receipts.

Every change raises or clears an alert in the state store and is recorded in the audit log.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

import sdk
from agent.centre.client import centre_clock_skew, centre_transport
from agent.centre.port import CentrePort
from agent.config import AgentConfig, InboxConfig
from agent.credentials.rotation import RotationFollower
from agent.messages import refused_key_advice
from agent.pipeline.watch import is_mount_point
from agent.state.audit import AuditLog
from agent.state.store import StateStore, now_iso

__all__ = ["Supervision"]

log = logging.getLogger("regbridge.agent")


class Supervision:
    """The pause, the centre's reachability, the disk and the inboxes, for one agent.

    Args:
        config: the loaded configuration.
        store / audit: where alerts and the pause are kept, and changes recorded.
        centre: the centre port (probed while paused).
        follower: the key rotation follower (None when the client was given, as in tests).
        mounts: per inbox, whether its folder was a mount point when first seen.
    """

    def __init__(
        self,
        config: AgentConfig,
        store: StateStore,
        audit: AuditLog,
        centre: CentrePort,
        follower: RotationFollower | None,
        mounts: dict[str, bool],
    ) -> None:
        self.config, self.store, self.audit, self.centre, self.follower = config, store, audit, centre, follower
        self.data_dir: Path = config.resolve(config.data_dir)
        self._paused: str | None = store.get_meta("paused") or None
        self.woken = threading.Event()
        #: called at each :meth:`wake` (the daemon's kick of its jobs)
        self.wakers: list[Callable[[], None]] = []
        self._mounts = mounts
        self._unreachable_since: float | None = None
        self._away = config.centre.url  # the centre that could not be reached, as the alert names it
        self._away_origin: str | None = None  # … its origin when the request said (scheme://host:port)
        self.next_contact = 0.0
        self._contact_backoff = 1.0
        self._next_probe = 0.0
        self._disk_low = False
        self._contact_saved = -1e9

    # --- what the stages ask and tell ------------------------------------------------------

    @property
    def paused(self) -> str | None:
        return self._paused

    @property
    def unreachable(self) -> bool:
        """The centre could not be reached at the last attempt."""
        return self._unreachable_since is not None

    @property
    def holding(self) -> bool:
        """The centre is unreachable and it is not yet time to try again."""
        return self._unreachable_since is not None and time.monotonic() < self.next_contact

    def wake(self) -> None:
        """Something changed: run the pipeline soon rather than at the next interval."""
        self.woken.set()
        for waker in list(self.wakers):
            waker()

    def pause(self, kind: str, message: str) -> None:
        """Stop submitting (the queue is kept) until the centre accepts us again."""
        if self.follower is not None:
            self.follower.check()
        refused = re.search(r"key (\S+) is revoked", message)
        if self.follower is not None and refused and refused.group(1) != self.follower.signer.key_id:
            # a request signed just before a rotation switched keys: it is sent again with the new key
            log.info("a request signed with the rotated-out key was refused; retrying with the new key")
            return
        if kind == "ClockSkew":
            message = self._clock_advice(message)
        else:
            message += refused_key_advice(message, self.config.source)
        message = sdk.privacy.mask_text(message)
        if self._paused != kind:
            self._paused = kind
            self.store.set_meta("paused", kind)
            log.error("submissions paused", extra={"reason": kind, "detail": message})
            self.audit.append("agent.paused", kind, "paused", detail=message)
        self.store.raise_alert("paused", f"submissions paused ({kind}): {message}")

    def _clock_advice(self, refusal: str) -> str:
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
        if self._paused:
            self._paused = None
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

    # --- what the daemon asks --------------------------------------------------------------

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

    def contact(self, reached: bool, detail: str, *, origin: str | None = None) -> None:
        """Every request tells whether the centre (``origin``, ``scheme://host:port``; None: ``[centre]``) could be
        reached at all (connection refused, no route…).

        While it cannot, the pipeline holds its queue and stops sending, except for one attempt at
        growing intervals (1 s … 30 s); the first answer of that centre ends the outage and the queue drains at
        once, with no application penalised for the centre's absence. With several centres (``[centres]``), the
        outage is the centre's that could not be reached: another centre's answer lets the queue go on (its
        work is not held for a centre it does not use) but does not end the outage, so the alert and the audit
        record name the centre that is away once, instead of an outage ended and begun again at every request.
        """
        now = time.monotonic()
        if reached and now - self._contact_saved >= 30.0:  # for `regbridge status`: at most one write in 30 s
            self._contact_saved = now
            with contextlib.suppress(sqlite3.Error):
                self.store.set_meta("last_contact", now_iso())
        away = origin or self.config.centre.url
        other = origin is not None and self._away_origin is not None and origin != self._away_origin
        if reached and self._unreachable_since is not None and other:
            self.next_contact = 0.0  # another centre answers: send on; the one away is tried as its work comes
            return
        if reached:
            if self._unreachable_since is not None:
                down = now - self._unreachable_since
                self._unreachable_since, self._contact_backoff, self.next_contact = None, 1.0, 0.0
                self.store.clear_alert("centre_unreachable")
                self.audit.append("centre.reachable", self._away, "ok", seconds=round(down, 1))
                log.info("the centre answers again; draining the queue", extra={"down_seconds": round(down, 1)})
                self.wake()
            return
        if self._unreachable_since is None:
            self._unreachable_since, self._away, self._away_origin = now, away, origin
            self.store.raise_alert(
                "centre_unreachable",
                f"the centre at {away} cannot be reached ({detail}); the queue is kept and sent when it answers again",
            )
            self.audit.append("centre.unreachable", away, "held", detail=detail[:200])
            log.error("the centre cannot be reached; holding the queue", extra={"error": detail[:200]})
        self.next_contact = now + self._contact_backoff
        self._contact_backoff = min(30.0, self._contact_backoff * 2)

    def probe_soon(self) -> None:
        """The next :meth:`probe` asks the centre at once (something that may end the pause changed here)."""
        self._next_probe = 0.0

    def probe(self) -> bool:
        """While paused: does the centre take our requests again?"""
        if not self._paused:
            return True
        if time.monotonic() < self._next_probe:
            return False
        self._next_probe = time.monotonic() + 5.0  # a probe every few seconds, not a request loop
        try:
            open_ = self.centre.channel_open()
        except sdk.RegBridgeError:
            return False
        if open_:
            self.resume("the centre accepts requests again")
            return True
        return False
