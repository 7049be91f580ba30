"""Several agent instances on one state: instances and heartbeats, named leases, claims, the reaper.

A mixin of both stores (:class:`~agent.state.sqlite.SQLiteStore`, :class:`~agent.state.sql.SQLStore`);
no queue server: the tables the agent already has are the queue (docs/state.md).

- **Instances** register with their host and pid and beat their heart every round
  (:meth:`InstanceLeases.heartbeat`); :meth:`InstanceLeases.reap` removes an instance whose heartbeat
  is older than ``stale_seconds`` and frees everything it held.
- **Named leases** (:meth:`InstanceLeases.acquire_lease`): one holder at a time until ``expires_at``;
  the event-feed cursor's leader is the lease ``leader``; a new holder takes it over once it expires.
- **Claims on applications** (:meth:`InstanceLeases.claim_applications`): due applications in given
  stages, each claimed by one instance for ``ttl`` seconds; on PostgreSQL with
  ``SELECT … FOR UPDATE SKIP LOCKED`` so instances claiming at once never wait for nor take each
  other's rows; on SQLite the claim runs under ``BEGIN IMMEDIATE`` (one writer at a time).
- **Claims on certificates** (:meth:`InstanceLeases.claim_certificates`): the same, for the deliver stage.
- **An export is ingested once** (:meth:`InstanceLeases.claim_file`): the first instance to insert its
  content hash has it.
- **Events are handled once** (:meth:`InstanceLeases.claim_event`): the event id is inserted in the
  transaction of its effects; a second delivery (feed or webhook, any instance) inserts nothing.
- **A platform's nonce is taken once** (:meth:`InstanceLeases.claim_nonce`): the replay window of the
  notify receiver (:mod:`agent.daemon.notify`) kept beside the events, so it survives a restart and is
  shared by every instance; entries older than the window are deleted as new ones come.

Times are the database's clock (seconds since the epoch), never a host's, so instances on hosts
whose clocks disagree still agree on who holds what.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.state.store import now_iso

__all__ = ["LEADER", "InstanceLeases"]

#: the lease of the instance that reads the event feed and runs the once-per-deployment jobs
LEADER = "leader"


class InstanceLeases:
    """Instances, leases and claims over the store's own plumbing (``_rows``, ``_count``, ``_clock``)."""

    #: the database's clock in seconds since the epoch, as an SQL expression
    _clock: str = ""
    #: what the claim's inner SELECT ends with (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)
    _claim_lock: str = ""

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _count(self, sql: str, params: Mapping[str, Any]) -> int:
        raise NotImplementedError

    def db_time(self) -> float:
        """The database's clock (seconds since the epoch)."""
        return float(self._rows(f"SELECT {self._clock} AS now", {})[0]["now"])

    # --- instances -----------------------------------------------------------------------

    def register_instance(self, instance_id: str, host: str, pid: int) -> None:
        """Announce a running instance (again, after a restart or after being reaped)."""
        self._count(
            "INSERT INTO instances (id, host, pid, started_at, heartbeat_at) "
            f"VALUES (:id, :host, :pid, :at, {self._clock}) "
            "ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
            "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
            {"id": instance_id, "host": host, "pid": pid, "at": now_iso()},
        )

    def heartbeat(self, instance_id: str) -> bool:
        """Refresh the instance's heartbeat; False when it was reaped meanwhile (it should register again)."""
        return self._count(f"UPDATE instances SET heartbeat_at = {self._clock} WHERE id = :id", {"id": instance_id}) > 0

    def instances(self) -> list[dict[str, Any]]:
        """Every registered instance: id, host, pid, started_at, heartbeat_age (seconds), leases (the
        names it holds), claims (applications and certificates it has claimed now), leader (holds :data:`LEADER`)."""
        out = self._rows(
            f"SELECT id, host, pid, started_at, {self._clock} - heartbeat_at AS heartbeat_age "
            "FROM instances ORDER BY id",
            {},
        )
        leases = self._rows(f"SELECT name, holder FROM leases WHERE expires_at > {self._clock}", {})
        claims = self._rows(
            f"SELECT claimed_by, COUNT(*) AS n FROM applications WHERE claimed_until > {self._clock} "
            "AND claimed_by IS NOT NULL GROUP BY claimed_by",
            {},
        )
        claims += self._rows(
            f"SELECT claimed_by, COUNT(*) AS n FROM certificates WHERE claimed_until > {self._clock} "
            "AND claimed_by IS NOT NULL GROUP BY claimed_by",
            {},
        )
        counts: dict[str, int] = {}
        for c in claims:
            counts[c["claimed_by"]] = counts.get(c["claimed_by"], 0) + int(c["n"])
        for row in out:
            row["heartbeat_age"] = round(float(row["heartbeat_age"]), 3)
            row["leases"] = sorted(lease["name"] for lease in leases if lease["holder"] == row["id"])
            row["claims"] = counts.get(row["id"], 0)
            row["leader"] = LEADER in row["leases"]
        return out

    def reap(self, stale_seconds: float) -> list[str]:
        """Remove the instances whose heartbeat is older than ``stale_seconds`` and free what they held:
        their leases, their claims on applications and certificates, the exports they had claimed but not ingested."""
        dead = [
            r["id"]
            for r in self._rows(
                f"SELECT id FROM instances WHERE heartbeat_at < {self._clock} - :stale", {"stale": stale_seconds}
            )
        ]
        for instance in dead:
            self._count("DELETE FROM leases WHERE holder = :id", {"id": instance})
            for table in ("applications", "certificates"):
                self._count(
                    f"UPDATE {table} SET claimed_by = NULL, claimed_until = 0 WHERE claimed_by = :id", {"id": instance}
                )
            # claimed or being read (its applications are committed with its "done", all at once): free again
            self._count(
                "DELETE FROM files WHERE status IN ('claimed', 'reading') AND claimed_by = :id", {"id": instance}
            )
            self._count("DELETE FROM instances WHERE id = :id", {"id": instance})
        return dead

    # --- named leases --------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl`` seconds; False while another holder's is unexpired."""
        return (
            self._count(
                f"INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, {self._clock} + :ttl) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
                f"WHERE leases.holder = excluded.holder OR leases.expires_at <= {self._clock}",
                {"name": name, "holder": holder, "ttl": ttl},
            )
            > 0
        )

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (at a clean stop), so another instance takes it at once."""
        self._count("DELETE FROM leases WHERE name = :name AND holder = :holder", {"name": name, "holder": holder})

    def lease_holder(self, name: str) -> str | None:
        """Who holds ``name`` now (None when free or expired)."""
        rows = self._rows(
            f"SELECT holder FROM leases WHERE name = :name AND expires_at > {self._clock}", {"name": name}
        )
        return str(rows[0]["holder"]) if rows else None

    # --- claims --------------------------------------------------------------------------

    def claim_applications(
        self, holder: str, stages: tuple[str, ...], *, ttl: float, limit: int, due_before: float | None = None
    ) -> list[str]:
        """Claim up to ``limit`` applications in ``stages`` (due by ``due_before``, epoch seconds) for ``ttl``
        seconds: those unclaimed, whose claim expired, or already this holder's. Returns their references,
        oldest due first; no other instance gets them until the claim expires or is released."""
        due = " AND next_attempt_at <= :due" if due_before is not None else ""
        return self._claim(
            "applications", "reference", "next_attempt_at", holder, stages, due, {"due": due_before}, ttl, limit
        )

    def claim_certificates(
        self,
        holder: str,
        stages: tuple[str, ...],
        *,
        ttl: float,
        limit: int,
        among: list[str] | None = None,
        superseding: bool = False,
    ) -> list[str]:
        """Claim up to ``limit`` certificates in ``stages`` for ``ttl`` seconds (as :meth:`claim_applications`):
        only those in ``among`` (ids) when given; ``superseding``: only stored ones whose sidecar must still say
        they were superseded. Their ids, oldest first."""
        extra = " AND supersede_pending = 1" if superseding else ""
        params: dict[str, Any] = {}
        if among is not None:
            if not among:
                return []
            params = {f"c{i}": c for i, c in enumerate(among)}
            extra += f" AND certificate_id IN ({', '.join(':' + k for k in params)})"
        return self._claim("certificates", "certificate_id", "created_at", holder, stages, extra, params, ttl, limit)

    def _claim(
        self,
        table: str,
        key: str,
        order: str,
        holder: str,
        stages: tuple[str, ...],
        extra: str,
        extra_params: dict[str, Any],
        ttl: float,
        limit: int,
    ) -> list[str]:
        """The one claim statement (docs/state.md): ``UPDATE … WHERE key IN (SELECT … FOR UPDATE SKIP LOCKED)``."""
        params: dict[str, Any] = {f"s{i}": s for i, s in enumerate(stages)}
        inner = (
            f"SELECT {key} FROM {table} WHERE stage IN ({', '.join(':' + k for k in params)}){extra} "
            f"AND (claimed_until <= {self._clock} OR claimed_by = :holder) "
            f"ORDER BY {order}, {key} LIMIT :limit {self._claim_lock}"
        )
        rows = self._rows(
            f"UPDATE {table} SET claimed_by = :holder, claimed_until = {self._clock} + :ttl "
            f"WHERE {key} IN ({inner}) RETURNING {key}, {order}",
            {**params, **extra_params, "holder": holder, "ttl": ttl, "limit": limit},
        )
        return [r[key] for r in sorted(rows, key=lambda r: (r[order], r[key]))]

    def release_claim(self, reference: str, holder: str) -> None:
        """Let the application go before its claim expires (its round is over)."""
        self._count(
            "UPDATE applications SET claimed_by = NULL, claimed_until = 0 "
            "WHERE reference = :ref AND claimed_by = :holder",
            {"ref": reference, "holder": holder},
        )

    def release_certificate(self, certificate_id: str, holder: str) -> None:
        """Let the certificate go before its claim expires (its delivery attempt is over)."""
        self._count(
            "UPDATE certificates SET claimed_by = NULL, claimed_until = 0 "
            "WHERE certificate_id = :id AND claimed_by = :holder",
            {"id": certificate_id, "holder": holder},
        )

    def claim_file(self, sha256: str, holder: str, *, path: str, inbox: str, profile: str) -> bool:
        """Claim an export by its content hash; False when it is known already (ingested or being ingested)."""
        return (
            self._count(
                "INSERT INTO files (sha256, path, inbox, profile, received_at, status, claimed_by) "
                "VALUES (:sha, :path, :inbox, :profile, :at, 'claimed', :holder) ON CONFLICT DO NOTHING",
                {"sha": sha256, "path": path, "inbox": inbox, "profile": profile, "at": now_iso(), "holder": holder},
            )
            > 0
        )

    def claim_event(self, event_id: str, sequence: int) -> bool:
        """Record an event as handled, in the caller's transaction of its effects; False when it was already
        (by any instance, from the feed or a webhook): then its effects must not run again."""
        return (
            self._count(
                "INSERT INTO events_seen (event_id, sequence, at) VALUES (:id, :seq, :at) ON CONFLICT DO NOTHING",
                {"id": event_id, "seq": sequence, "at": now_iso()},
            )
            > 0
        )

    def claim_nonce(self, app_id: str, nonce: str, *, at: float, keep_seconds: float) -> bool:
        """Take a sender's nonce (a provincial platform's ``appId`` and ``nonce``, :mod:`sdk.dialects.province`):
        False when it was taken within the last ``keep_seconds`` (a replay). ``at`` is the receiver's
        clock (seconds since the epoch). Nonces taken before ``at - keep_seconds`` are forgotten here:
        a message that old is refused by its timestamp, so the table stays bounded by the window's traffic.
        Kept as ``nonce:<appId>:<nonce>`` rows of ``events_seen`` (``sequence``: when, in milliseconds)."""
        self._count(
            "DELETE FROM events_seen WHERE event_id LIKE 'nonce:%' AND sequence < :horizon",
            {"horizon": int((at - keep_seconds) * 1000)},
        )
        return (
            self._count(
                "INSERT INTO events_seen (event_id, sequence, at) VALUES (:id, :seq, :at) ON CONFLICT DO NOTHING",
                {"id": f"nonce:{app_id}:{nonce}", "seq": int(at * 1000), "at": now_iso()},
            )
            > 0
        )
