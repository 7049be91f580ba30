"""What every stage is a function of: a small, typed context, defined below the stages.

A stage (``watch``, ``ingest``, ``submit``, ``track``, ``deliver``, ``receipts``…) receives a
:class:`StageContext` — the state store, the centre port, the config and what was loaded from it,
the audit log, the encrypted blobs, the document store, the trust anchors — and a
:class:`Supervisor`, the daemon's side it reports to (pause, resume, wake) and asks (is the
centre away, is an inbox there). It never receives the daemon itself, so a stage runs the same
under the daemon, in the demo's loop, and in a test with a store of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from agent.centre.port import CentrePort
from agent.config import AgentConfig, InboxConfig
from agent.mapping import Profile
from agent.pipeline.build import BuildContext
from agent.state.audit import AuditLog
from agent.state.blobs import BlobStore
from agent.state.store import AppRow, StateStore
from connectors.documents import DocumentStore, safe_key, safe_name
from sdk.certificates import TrustAnchors
from sdk.models import MaterialChecklist

__all__ = ["StageContext", "Supervisor"]


class Supervisor(Protocol):
    """The daemon as the stages see it: told to pause, resume or wake; asked whether to go on."""

    @property
    def paused(self) -> str | None:
        """Why submissions are paused (an error kind such as ``ChannelSuspended``), or None."""
        ...

    @property
    def unreachable(self) -> bool:
        """The centre could not be reached at the last attempt."""
        ...

    @property
    def holding(self) -> bool:
        """The centre is unreachable and it is not yet time to try again: send nothing."""
        ...

    def pause(self, kind: str, message: str) -> None:
        """Stop submitting (the queue is kept) until the centre accepts the bank again; alert."""
        ...

    def resume(self, why: str) -> None: ...

    def wake(self) -> None:
        """Something changed: run the stages soon rather than at their next interval."""
        ...

    def inbox_available(self, inbox: InboxConfig) -> bool:
        """Is the inbox folder there (and still the share it was)? If not, its exports and receipts wait."""
        ...


@dataclass(frozen=True)
class StageContext:
    """Everything a stage may use; built once by the daemon (:class:`agent.daemon.Agent`)."""

    config: AgentConfig
    store: StateStore
    centre: CentrePort
    audit: AuditLog
    blobs: BlobStore
    documents: DocumentStore
    trust: TrustAnchors
    profiles: Mapping[str, Profile]
    checklists: Mapping[str, MaterialChecklist]
    build: BuildContext
    supervisor: Supervisor
    #: this instance's id when several share the state (``state.url``): what it claims is claimed in its name
    instance: str | None = None
    #: behind a provincial platform (docs/dialects.md): each county centre's trust anchors by its 行政区划代码
    #: (the first 6 digits of a 不动产单元号); an application on a unit of another district uses ``trust``
    trust_by_district: Mapping[str, TrustAnchors] = field(default_factory=dict)

    def trust_for(self, unit_ids: Sequence[str]) -> TrustAnchors:
        """The trust anchors of the centre that registers ``unit_ids`` (the first unit's district decides: its own
        entry, else the longest entry that starts it — a direct centre's ``[centres."<prefix>"]`` — else
        ``[centre]``'s)."""
        district = unit_ids[0][:6] if unit_ids else ""
        if district in self.trust_by_district:
            return self.trust_by_district[district]
        prefix = max((k for k in self.trust_by_district if district.startswith(k)), key=len, default=None)
        return self.trust_by_district[prefix] if prefix else self.trust

    def trust_of(self, app: AppRow) -> TrustAnchors:
        """The trust anchors of the centre that registers ``app``'s units (:meth:`trust_for`)."""
        return self.trust_for(
            [str(p.get("unit_id", "")) for p in app.payload.get("properties", []) if isinstance(p, dict)]
        )

    def inbox(self, name: str) -> InboxConfig:
        return next(i for i in self.config.inbox if i.name == name)

    def branch_of(self, app: AppRow) -> str | None:
        """The branch an application belongs to: the one its export row named (the profile's ``declaration.branch``
        column), else its export folder's (``[[inbox]] branch``), else None."""
        named = next((s["branch"] for s in reversed(app.source) if isinstance(s, dict) and s.get("branch")), None)
        if named:
            return str(named)
        inbox = next((i for i in self.config.inbox if i.name == app.inbox), None)
        return inbox.branch if inbox is not None else None

    def receipts_inbox(self, app: AppRow) -> str:
        """The inbox whose loan system gets ``app``'s receipt lines: the branch's own inbox (``[[inbox]] branch``)
        when an export column named a branch other than its folder's, else the inbox it came from."""
        branch = self.branch_of(app)
        here = next((i for i in self.config.inbox if i.name == app.inbox), None)
        if branch and (here is None or here.branch != branch):
            own = next((i.name for i in self.config.inbox if i.branch == branch), None)
            if own is not None:
                return own
        return app.inbox

    def branch_uscc(self, branch: str | None) -> str | None:
        """The 统一社会信用代码 of ``branch``'s institution (``[branches]``), None for no or an unknown branch."""
        known = self.config.branches.get(branch) if branch else None
        return known.institution_uscc if known is not None else None

    def build_for(self, branch: str | None) -> BuildContext:
        """What an application of ``branch`` is built with: the branch's institution as the mortgagee (and the
        bank's 代理), its default 经办人; the enrolled institution's when ``branch`` is not in ``[branches]``."""
        known = self.config.branches.get(branch) if branch else None
        if known is None:
            return self.build
        operator = known.default_operator or self.build.default_operator
        return replace(self.build, bank_name=known.institution_name, bank_uscc=known.institution_uscc,
                       default_operator=operator)  # fmt: skip

    def institution_of(self, app: AppRow) -> tuple[str, str]:
        """The mortgagee an application was made for, ``(name, 统一社会信用代码)``: its branch's institution
        (``[branches]``), else the enrolled institution's (``[centre]``) — what its certificate must name."""
        branch = self.branch_of(app)
        known = self.config.branches.get(branch) if branch else None
        if known is not None:
            return known.institution_name, known.institution_uscc
        return self.config.centre.institution_name, self.config.centre.institution_uscc

    def document_key(self, app: AppRow, name: str, suffix: str) -> str:
        """Where a certificate or sealed notice of ``app`` is stored: ``<loan>/<name><suffix>``, under its
        branch's folder (``<branch>/<loan>/…``) when its inbox names a branch — certificates kept per branch."""
        key = safe_key(app.loan_no, name, suffix)
        branch = self.branch_of(app)
        return f"{safe_name(branch)}/{key}" if branch else key

    def inbox_folder(self, inbox: InboxConfig) -> Path:
        return self.config.resolve(inbox.path)

    def receipts_folder(self, inbox: InboxConfig) -> Path:
        """Where the receipt files of ``inbox`` go: its own setting, else the profile's folder in the inbox."""
        if inbox.receipts is not None:
            return self.config.resolve(inbox.receipts)
        return self.config.resolve(inbox.path) / self.profiles[inbox.name].receipts.folder
