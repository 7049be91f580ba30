"""The centre port: every operation the pipeline's stages ask of a registration centre.

The stages talk to this protocol only, never to an HTTP client, so a centre that speaks another
dialect (a provincial platform's envelope, its own status codes) is one more adapter behind the
same port (:mod:`agent.centre.api` is the first: RegBridge's own API through ``sdk.Client``).

The port speaks the domain model of :mod:`sdk.models` and raises the error tree of
:mod:`sdk.errors`; an adapter maps its dialect onto both. The stages rely on that vocabulary:

- ``sdk.Conflict`` on ``create``: the centre knows the reference under another idempotency key;
  on ``pay``: already paid or waived;
- ``sdk.ValidationFailed`` (with pointers into the application): refused as invalid;
- ``sdk.ChannelSuspended``, ``sdk.AuthenticationFailed``, ``sdk.ClockSkew``, ``sdk.SignatureError``,
  ``sdk.PermissionDenied``: the bank may not send now (the pipeline pauses);
- ``sdk.TransportError``, ``sdk.ServerError``, ``sdk.RateLimited``, ``sdk.TimeoutError``,
  ``sdk.RetryBudgetExhausted``: may pass, tried again later;
- ``sdk.NotFound`` on ``application``; ``sdk.DigestMismatch`` on ``download_certificate``.

Every write takes the idempotency key the state store kept before the first attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sdk.models import (
    Application,
    ApplicationRecord,
    EventPage,
    FeeNotice,
    Material,
    Operator,
    Payment,
    PaymentReceipt,
    PropertyQuery,
    PropertyQueryResult,
    SignedCertificateMetadata,
    SignedNoticeMetadata,
    Supplement,
    VerificationResult,
)

__all__ = ["CentrePort", "filer_uscc"]


def filer_uscc(payload: Mapping[str, Any]) -> str | None:
    """The 统一社会信用代码 of the institution an application (its JSON) is filed as — the branch it carries: its
    抵押权人's, else its 代理's institution's; None when it names neither (the platform's rule for ``create``)."""
    mortgagee = payload.get("mortgagee")
    if isinstance(mortgagee, dict) and mortgagee.get("id_number"):
        return str(mortgagee["id_number"])
    representation = payload.get("representation")
    agent = representation.get("agent") if isinstance(representation, dict) else None
    if isinstance(agent, dict) and agent.get("institution_uscc"):
        return str(agent["institution_uscc"])
    return None


class CentrePort(Protocol):
    """A registration centre, as the stages use it (submit, materials, query, events, fees, certificates)."""

    # --- submit (设立/变更/注销 applications and their 补正) -----------------------------------

    def create(self, application: Application, *, idempotency_key: str) -> ApplicationRecord:
        """Create a draft application; the same key again answers the same record."""
        ...

    def upload_material(self, application_id: str, material: Material, content: bytes) -> ApplicationRecord:
        """Put one declared material (idempotent: the same content again is a no-op)."""
        ...

    def submit(self, application_id: str, *, idempotency_key: str) -> ApplicationRecord:
        """Submit a created (or supplemented) application for acceptance (受理)."""
        ...

    def supplement(self, application_id: str, supplement: Supplement, *, idempotency_key: str) -> ApplicationRecord:
        """Answer a 补正: corrected data and/or materials."""
        ...

    def withdraw(self, application_id: str, reason: str, *, idempotency_key: str) -> ApplicationRecord:
        """撤回 before 登簿 (the bank's own act, ``reason`` in its words); ``sdk.Conflict`` once recorded or ended."""
        ...

    # --- query --------------------------------------------------------------------------------

    def application(self, application_id: str) -> ApplicationRecord:
        """The application as the centre holds it: status, 补正 items and notices, decision, fees, certificates."""
        ...

    def find(self, reference: str) -> ApplicationRecord | None:
        """The application the bank created under ``reference`` (its client reference), if any."""
        ...

    def channel_open(self) -> bool:
        """Does the centre take the bank's requests (its channel is open for this institution, and its
        银行信息备案 — 营业执照, 金融许可证 — is complete and valid)?"""
        ...

    # --- events -------------------------------------------------------------------------------

    def events(self, *, after: str | None, limit: int) -> EventPage:
        """One page of the event feed after ``after`` (a cursor), with the hint of when to look again."""
        ...

    def set_webhook(self, url: str) -> None:
        """Ask the centre to push events to ``url`` as well (the feed stays the source of truth)."""
        ...

    # --- fees ---------------------------------------------------------------------------------

    def pay(self, application_id: str, payment: Payment, *, idempotency_key: str) -> PaymentReceipt:
        """Pay an assessed fee (元, exact decimal); answers the centre's receipt (票据).

        Raises ``sdk.FeeNotDue`` when nothing is due (not recorded yet, refused, voided, cancelled).
        """
        ...

    def fee_notice(self, application_id: str) -> FeeNotice:
        """The fee notice (缴费通知) as the centre holds it, with its refunds; ``sdk.NotFound`` before 登簿."""
        ...

    def receipt(self, payment_id: str) -> PaymentReceipt:
        """A payment's receipt (票据) again, with its refund if any; ``sdk.NotFound`` for another bank's."""
        ...

    # --- 登记资料查询 -------------------------------------------------------------------------

    def query_property(
        self, query: PropertyQuery, *, idempotency_key: str, institution_uscc: str | None = None
    ) -> PropertyQueryResult:
        """登记资料查询 with the applicant's authorisation (seed 001 §3): the centre's signed 查询结果; with
        ``institution_uscc``, asked as that branch's own institution (a platform acting for branches).

        Raises ``sdk.ValidationFailed`` (authorisation expired, future-dated, wrong purpose) or
        ``sdk.PermissionDenied`` (the person authorising is no right holder), each reason in ``errors``.
        """
        ...

    # --- accounts -----------------------------------------------------------------------------

    def operators(self, *, institution_uscc: str | None = None) -> list[Operator]:
        """The 业务办理人员 accounts the centre issued to this bank, active or deactivated (seed 001 §4.2); with
        ``institution_uscc``, those of that branch's own institution (a platform acting for branches)."""
        ...

    # --- certificates -------------------------------------------------------------------------

    def certificate(self, certificate_id: str) -> SignedCertificateMetadata:
        """A certificate's metadata, signed by the centre."""
        ...

    def download_certificate(self, certificate_id: str, *, expected_sha256: str) -> bytes:
        """The sealed certificate file, checked against the digest the centre signed."""
        ...

    def verify_certificate(self, licence_id: str | None = None, *, sha256: str | None = None) -> VerificationResult:
        """在线核验 (seed 003 (四): checked online before use): is the certificate with this 电子证照标识 (or
        this file's SHA-256) the centre's, and still current? ``valid``, ``superseded`` (with its successor)
        or ``unknown``."""
        ...

    def notice(self, notice_id: str) -> SignedNoticeMetadata:
        """A sealed notice's metadata, signed by the centre."""
        ...

    def download_notice(self, notice_id: str, *, expected_sha256: str) -> bytes:
        """The sealed notice file, checked against the digest the centre signed."""
        ...

    def close(self) -> None: ...
