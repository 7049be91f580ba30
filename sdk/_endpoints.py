"""Every endpoint of docs/api.md as an :class:`Operation` builder, I/O-free.

The resource groups of :mod:`sdk._client` wrap these for the sync and async clients.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from urllib.parse import quote

from ._operations import Operation
from .models import (
    Application,
    ApplicationRecord,
    ApplicationStatus,
    CredentialRecord,
    Enrolment,
    EnrolmentResult,
    EventPage,
    FeeNotice,
    InstitutionFiling,
    InstitutionProfile,
    Material,
    Operator,
    Payment,
    PaymentReceipt,
    PropertyQuery,
    PropertyQueryResult,
    PublicJwk,
    Revocation,
    Rotation,
    SignedCertificateMetadata,
    SignedNoticeMetadata,
    Supplement,
    VerificationResult,
    WebhookSubscription,
    Withdrawal,
)

API = "/v1"


def _seg(value: str) -> str:
    """A path segment, escaped so an id can never change the path — ``.`` and ``..`` too, which a URL
    would otherwise resolve away (RFC 3986 §5.2.4): they go as ``%2E`` (issue 17 item 4)."""
    escaped = quote(value, safe="")
    return escaped.replace(".", "%2E") if escaped.strip(".") == "" else escaped


def check_declared(material: Material, content: bytes) -> None:
    """Refuse locally what the centre would refuse: content unlike its declaration."""
    size = len(content)
    digest = hashlib.sha256(content).hexdigest()
    if size != material.size or digest != material.sha256:
        raise ValueError(
            f"material {material.id}: content is {size} bytes with sha256 {digest[:12]}…, "
            f"but was declared as {material.size} bytes with sha256 {material.sha256[:12]}…"
        )


# --- applications -------------------------------------------------------------------------


def create_application(app: Application, key: str | None) -> Operation[ApplicationRecord]:
    return Operation.returning(ApplicationRecord, "POST", f"{API}/applications", json=app, idempotency_key=key)


def upload_material(application_id: str, material: Material, content: bytes) -> Operation[ApplicationRecord]:
    check_declared(material, content)
    return Operation.returning(
        ApplicationRecord,
        "PUT",
        f"{API}/applications/{_seg(application_id)}/materials/{_seg(material.id)}",
        content=content,
        content_type=material.media_type,
    )


def submit_application(application_id: str, key: str | None) -> Operation[ApplicationRecord]:
    return Operation.returning(
        ApplicationRecord, "POST", f"{API}/applications/{_seg(application_id)}/submit", idempotency_key=key
    )


def get_application(application_id: str) -> Operation[ApplicationRecord]:
    return Operation.returning(ApplicationRecord, "GET", f"{API}/applications/{_seg(application_id)}")


def find_application(client_reference: str) -> Operation[ApplicationRecord | None]:
    op: Operation[ApplicationRecord | None] = Operation.returning(
        ApplicationRecord, "GET", f"{API}/applications/by-reference/{_seg(client_reference)}"
    )
    op.none_on_404 = True
    return op


def list_applications(
    statuses: Iterable[ApplicationStatus] = (), after: str | None = None, limit: int = 100
) -> Operation[list[ApplicationRecord]]:
    params: dict[str, str | int] = {"limit": limit}
    if statuses:
        params["status"] = ",".join(s.value for s in statuses)
    if after:
        params["after"] = after
    return Operation.returning(list[ApplicationRecord], "GET", f"{API}/applications", params=params)


def supplement_application(
    application_id: str, supplement: Supplement, key: str | None
) -> Operation[ApplicationRecord]:
    return Operation.returning(
        ApplicationRecord,
        "POST",
        f"{API}/applications/{_seg(application_id)}/supplements",
        json=supplement,
        idempotency_key=key,
    )


def withdraw_application(application_id: str, withdrawal: Withdrawal, key: str | None) -> Operation[ApplicationRecord]:
    return Operation.returning(
        ApplicationRecord,
        "POST",
        f"{API}/applications/{_seg(application_id)}/withdraw",
        json=withdrawal,
        idempotency_key=key,
    )


# --- events -------------------------------------------------------------------------------


def list_events(after: str | None, limit: int) -> Operation[EventPage]:
    params: dict[str, str | int] = {"limit": limit}
    if after:
        params["after"] = after
    # the feed is how every application learns its progress: its retries may use the budget's reserve
    return Operation.returning(EventPage, "GET", f"{API}/events", params=params, priority=True)


# --- certificates -------------------------------------------------------------------------


def get_certificate(certificate_id: str) -> Operation[SignedCertificateMetadata]:
    return Operation.returning(SignedCertificateMetadata, "GET", f"{API}/certificates/{_seg(certificate_id)}")


def certificate_content_path(certificate_id: str) -> str:
    return f"{API}/certificates/{_seg(certificate_id)}/content"


def get_notice(notice_id: str) -> Operation[SignedNoticeMetadata]:
    return Operation.returning(SignedNoticeMetadata, "GET", f"{API}/notices/{_seg(notice_id)}")


def notice_content_path(notice_id: str) -> str:
    return f"{API}/notices/{_seg(notice_id)}/content"


def verify_certificate(licence_id: str | None, sha256: str | None) -> Operation[VerificationResult]:
    if (licence_id is None) == (sha256 is None):
        raise ValueError("give exactly one of licence_id and sha256")
    params = {"licence_id": licence_id} if licence_id else {"sha256": sha256 or ""}
    return Operation.returning(VerificationResult, "GET", f"{API}/verification", params=params, signed=False)


# --- fees ---------------------------------------------------------------------------------


def get_fees(application_id: str) -> Operation[FeeNotice]:
    return Operation.returning(FeeNotice, "GET", f"{API}/applications/{_seg(application_id)}/fees")


def pay_fees(application_id: str, payment: Payment, key: str | None) -> Operation[PaymentReceipt]:
    return Operation.returning(
        PaymentReceipt,
        "POST",
        f"{API}/applications/{_seg(application_id)}/payments",
        json=payment,
        idempotency_key=key,
    )


def get_receipt(payment_id: str) -> Operation[PaymentReceipt]:
    return Operation.returning(PaymentReceipt, "GET", f"{API}/payments/{_seg(payment_id)}")


# --- property query -----------------------------------------------------------------------


def query_property(query: PropertyQuery, key: str | None) -> Operation[PropertyQueryResult]:
    return Operation.returning(PropertyQueryResult, "POST", f"{API}/property-queries", json=query, idempotency_key=key)


# --- institution --------------------------------------------------------------------------


def get_institution() -> Operation[InstitutionProfile]:
    return Operation.returning(InstitutionProfile, "GET", f"{API}/institution")


def file_institution(filing: InstitutionFiling, key: str | None) -> Operation[InstitutionProfile]:
    return Operation.returning(
        InstitutionProfile, "POST", f"{API}/institution/filing", json=filing, idempotency_key=key
    )


def upload_institution_document(material: Material, content: bytes) -> Operation[InstitutionProfile]:
    check_declared(material, content)
    return Operation.returning(
        InstitutionProfile,
        "PUT",
        f"{API}/institution/filing/documents/{_seg(material.id)}",
        content=content,
        content_type=material.media_type,
    )


def set_webhook(subscription: WebhookSubscription) -> Operation[InstitutionProfile]:
    return Operation.returning(InstitutionProfile, "PUT", f"{API}/institution/webhook", json=subscription)


def list_operators() -> Operation[list[Operator]]:
    return Operation.returning(list[Operator], "GET", f"{API}/institution/operators")


# --- enrolment and credentials ------------------------------------------------------------


def enroll(
    token: str, public_key: PublicJwk, label: str, certificate_request: str | None = None,
    encryption_key: PublicJwk | None = None,
) -> Operation[EnrolmentResult]:
    return Operation.returning(
        EnrolmentResult,
        "POST",
        f"{API}/enrolment",
        json=Enrolment(
            token=token, public_key=public_key, label=label, certificate_request=certificate_request,
            encryption_key=encryption_key,
        ),
        signed=False,
    )


def list_credentials() -> Operation[list[CredentialRecord]]:
    return Operation.returning(list[CredentialRecord], "GET", f"{API}/credentials")


def rotate_credential(rotation: Rotation, key: str | None) -> Operation[CredentialRecord]:
    return Operation.returning(
        CredentialRecord, "POST", f"{API}/credentials/rotate", json=rotation, idempotency_key=key
    )


def revoke_credential(key_id: str, revocation: Revocation, key: str | None) -> Operation[CredentialRecord]:
    return Operation.returning(
        CredentialRecord, "POST", f"{API}/credentials/{_seg(key_id)}/revoke", json=revocation, idempotency_key=key
    )
