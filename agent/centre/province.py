"""The provincial 总对总 platform as a :class:`~agent.centre.port.CentrePort` (docs/dialects.md).

Every operation is one call in the platform's envelope (:class:`sdk.dialects.province.PlatformClient`:
SM4-CBC body, SM2-wrapped key, SM2 signature, a fresh nonce, the platform's keys from enrolment),
its data mapped with the dialect's field dictionary (``config/dialects/<name>.toml``) onto
:mod:`sdk.models`, and its refusals onto :mod:`sdk.errors` as the stages expect them:

======  =====================================  ==============================================
code    meaning                                raised
======  =====================================  ==============================================
4220    business data refused                  ``sdk.ValidationFailed`` (pointers kept)
4040    no such record                         ``sdk.NotFound``
4090    already there / already paid           ``sdk.Conflict`` (``sdk.FeeNotDue`` on ``pay``)
4030    not allowed                            ``sdk.PermissionDenied``
4031    经办人 not this branch's account          ``sdk.OperatorNotAuthorised`` (the row held alone)
5030    platform paused                        ``sdk.ChannelSuspended``
4010    appId unknown / 4011 signature         ``sdk.AuthenticationFailed``
4012    timestamp outside the window           ``sdk.ClockSkew``
4013    nonce replayed; 5000 and others        ``sdk.ServerError`` (tried again, new nonce)
—       an answer that fails a check           ``sdk.SignatureError`` (pauses the pipeline)
—       the platform unreachable               ``sdk.TransportError``
======  =====================================  ==============================================

The platform has no event feed: :meth:`ProvinceCentre.events` answers an empty page, so the
tracker reads each application on its straggler schedule (``straggler_seconds``), and the platform
pushes notices to the bank's notify URL (opened with :func:`sdk.dialects.province.open_envelope`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import httpx

import sdk
from agent.config import AgentConfig
from config import load_dialect
from sdk.certificates import TrustAnchors
from sdk.dialects.fields import FieldDictionary
from sdk.dialects.province import (
    EnvelopeRefused,
    EnvelopeSigner,
    PlatformAnswerError,
    PlatformClient,
)
from sdk.gm.sm2 import Sm2PrivateKey, load_pem_public_key
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
from sdk.models.problems import ErrorDetail

__all__ = ["BranchOf", "ProvinceCentre", "platform_centre", "platform_trust"]

#: the branch a call is about: ``(kind, id)`` with kind ``application``, ``certificate`` or ``reference`` →
#: the 统一社会信用代码 of the institution that filed the application (:func:`agent.centre.port.filer_uscc`),
#: or None when unknown
BranchOf = Callable[[str, str], str | None]


_ERRORS: dict[str, tuple[type[sdk.APIError], int]] = {
    "4220": (sdk.ValidationFailed, 422),
    "4040": (sdk.NotFound, 404),
    "4090": (sdk.Conflict, 409),
    "4030": (sdk.PermissionDenied, 403),
    "4031": (sdk.OperatorNotAuthorised, 403),
    "5030": (sdk.ChannelSuspended, 403),
    "4010": (sdk.AuthenticationFailed, 401),
    "4011": (sdk.AuthenticationFailed, 401),
    "4012": (sdk.ClockSkew, 401),
}


def _error(exc: PlatformAnswerError, service: str) -> sdk.APIError:
    kind, status = _ERRORS.get(exc.code, (sdk.ServerError, 503))
    if service == "pay" and kind is sdk.Conflict:
        kind = sdk.FeeNotDue
    details: list[ErrorDetail] = []
    if isinstance(exc.data, dict):
        details = [ErrorDetail.model_validate(e) for e in exc.data.get("errors") or [] if isinstance(e, dict)]
    return kind(f"{exc.code} {exc.msg}", status=status, code=f"platform_{exc.code}", errors=details)


class ProvinceCentre:
    """:class:`~agent.centre.port.CentrePort` over a provincial platform.

    Args:
        client: the platform connection (its keys from enrolment).
        fields: the dialect's field dictionary (``config.load_dialect``).
        districts: the 行政区划代码 of the centres behind the platform (``config.load_districts``).
        branch_of: the branch (统一社会信用代码) an application, certificate or reference belongs to
            (:data:`BranchOf`): every call about one carries it (``TYSHXYDM``), so the platform acts as that
            branch's institution and refuses another's; ``None``: every call as the head office.
    """

    def __init__(
        self,
        client: PlatformClient,
        fields: FieldDictionary,
        districts: tuple[str, ...],
        branch_of: BranchOf | None = None,
    ) -> None:
        self.client = client
        self.fields = fields
        self.districts = districts
        self.branch_of = branch_of

    def _as(self, kind: str, key: str) -> dict[str, str]:
        """``{"TYSHXYDM": <branch>}`` for the branch ``(kind, key)`` belongs to, ``{}`` when not known."""
        uscc = self.branch_of(kind, key) if self.branch_of is not None else None
        return {"TYSHXYDM": uscc} if uscc else {}

    def _call(self, service: str, data: dict[str, Any]) -> Any:
        try:
            return self.client.call(service, data)
        except PlatformAnswerError as exc:
            raise _error(exc, service) from exc
        except EnvelopeRefused as exc:
            raise sdk.SignatureError(f"the platform's answer to {service} was refused: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise sdk.TimeoutError(f"{service}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise sdk.TransportError(f"{service}: {exc}") from exc

    def _record(self, answer: Any) -> ApplicationRecord:
        return self.fields.record_from_dialect(answer["record"])

    # --- submit ----------------------------------------------------------------------------------

    def create(self, application: Application, *, idempotency_key: str) -> ApplicationRecord:
        message = self.fields.application_to_dialect(application)
        return self._record(self._call("create", {"application": message, "idempotencyKey": idempotency_key}))

    def upload_material(self, application_id: str, material: Material, content: bytes) -> ApplicationRecord:
        data = {
            **self._as("application", application_id),
            "YWH": application_id,
            "material": self.fields.to_dialect(material.model_dump(mode="json")),
            "content": base64.b64encode(content).decode("ascii"),
        }
        return self._record(self._call("upload", data))

    def submit(self, application_id: str, *, idempotency_key: str) -> ApplicationRecord:
        return self._record(
            self._call(
                "submit",
                {**self._as("application", application_id), "YWH": application_id, "idempotencyKey": idempotency_key},
            )
        )

    def supplement(self, application_id: str, supplement: Supplement, *, idempotency_key: str) -> ApplicationRecord:
        body = self.fields.to_dialect(supplement.model_dump(mode="json", exclude_none=True))
        data = {
            **self._as("application", application_id),
            "YWH": application_id,
            "supplement": body,
            "idempotencyKey": idempotency_key,
        }
        return self._record(self._call("supplement", data))

    def withdraw(self, application_id: str, reason: str, *, idempotency_key: str) -> ApplicationRecord:
        data = {
            **self._as("application", application_id),
            "YWH": application_id,
            "CHYY": reason,
            "idempotencyKey": idempotency_key,
        }
        return self._record(self._call("withdraw", data))

    # --- query -----------------------------------------------------------------------------------

    def application(self, application_id: str) -> ApplicationRecord:
        return self._record(self._call("query", {**self._as("application", application_id), "YWH": application_id}))

    def find(self, reference: str) -> ApplicationRecord | None:
        answer = self._call("find", {**self._as("reference", reference), "YWBH": reference})
        return self.fields.record_from_dialect(answer["record"]) if answer.get("record") else None

    def channel_open(self) -> bool:
        return bool(self._call("channel", {}).get("open"))

    # --- events ----------------------------------------------------------------------------------

    def events(self, *, after: str | None, limit: int) -> EventPage:
        """The platform has no feed: an empty page (the tracker reads applications on its schedule)."""
        return EventPage(events=[], next_cursor=after or "0", has_more=False, poll_interval_seconds=60)

    def set_webhook(self, url: str) -> None:
        """The notify URL is registered at enrolment (and changed by :meth:`change_notify_url`); nothing here."""

    def change_notify_url(self, url: str) -> str | None:
        """Register ``url`` as the bank's notify URL at the platform (service ``notify_url``, signed by the bank's
        enrolled key like every call); answers the URL it replaces (None: there was none).

        Raises:
            sdk.ValidationFailed: the platform refused the URL (``4220``); other ``sdk`` errors as for any call.
        """
        previous = self._call("notify_url", {"notifyUrl": url}).get("previous")
        return str(previous) if previous else None

    # --- fees ------------------------------------------------------------------------------------

    def pay(self, application_id: str, payment: Payment, *, idempotency_key: str) -> PaymentReceipt:
        data = {
            **self._as("application", application_id),
            "YWH": application_id,
            "payment": payment.model_dump(mode="json"),
            "idempotencyKey": idempotency_key,
        }
        return PaymentReceipt.model_validate(self._call("pay", data))

    def fee_notice(self, application_id: str) -> FeeNotice:
        data = {**self._as("application", application_id), "YWH": application_id}
        return FeeNotice.model_validate(self._call("fee", data))

    def receipt(self, payment_id: str) -> PaymentReceipt:
        return PaymentReceipt.model_validate(self._call("receipt", {"payment_id": payment_id}))

    def query_property(
        self, query: PropertyQuery, *, idempotency_key: str, institution_uscc: str | None = None
    ) -> PropertyQueryResult:
        """登记资料查询, relayed by the platform to the county centre of the unit (TD/T 1066 names both ways), asked
        as the branch of ``institution_uscc`` (its own institution and 经办人 there), else as the head office; the
        answer is the county centre's signed 查询结果, exactly as it signed it."""
        data = {"query": self.fields.to_dialect(query.model_dump(mode="json", exclude_none=True)),
                "idempotencyKey": idempotency_key,
                **({"TYSHXYDM": institution_uscc} if institution_uscc else {})}  # fmt: skip
        return PropertyQueryResult.model_validate(self.fields.from_dialect(self._call("property_query", data)))

    # --- accounts --------------------------------------------------------------------------------

    def operators(self, *, institution_uscc: str | None = None) -> list[Operator]:
        """The 业务办理人员 of the bank at every county centre behind the platform (deduplicated by id): of the
        branch of ``institution_uscc`` (its own institution there), else of the head office."""
        found: dict[str, Operator] = {}
        asked = {"TYSHXYDM": institution_uscc} if institution_uscc else {}
        for district in self.districts:
            for raw in self._call("operators", {"XZQDM": district, **asked})["operators"]:
                op = Operator.model_validate(raw)
                found.setdefault(op.operator_id, op)
        return list(found.values())

    # --- certificates ----------------------------------------------------------------------------

    def certificate(self, certificate_id: str) -> SignedCertificateMetadata:
        data = {**self._as("certificate", certificate_id), "ZSID": certificate_id}
        return SignedCertificateMetadata.model_validate(self._call("certificate", data))

    def _file(self, service: str, data: dict[str, Any], expected_sha256: str, what: str) -> bytes:
        """A sealed file the platform relays (base64 ``content``), checked against the digest the centre signed."""
        answer = self._call(service, {**data, "sha256": expected_sha256})
        content = base64.b64decode(answer["content"])
        if hashlib.sha256(content).hexdigest() != expected_sha256:
            raise sdk.DigestMismatch(f"{what}: the file is not the one the centre signed")
        return content

    def download_certificate(self, certificate_id: str, *, expected_sha256: str) -> bytes:
        data = {**self._as("certificate", certificate_id), "ZSID": certificate_id}
        return self._file("download", data, expected_sha256, f"certificate {certificate_id}")

    def verify_certificate(self, licence_id: str | None = None, *, sha256: str | None = None) -> VerificationResult:
        """在线核验 by 电子证照标识 (ZZBS) or the file's SHA-256, relayed by the platform to its county centres
        (the first that knows the certificate answers)."""
        data = {"ZZBS": licence_id} if licence_id is not None else {"sha256": sha256}
        return VerificationResult.model_validate(self._call("verify", data))

    def notice(self, notice_id: str) -> SignedNoticeMetadata:
        """A sealed notice's metadata, signed by the county centre that issued it (relayed by the platform)."""
        return SignedNoticeMetadata.model_validate(self._call("notice", {"WSID": notice_id}))

    def download_notice(self, notice_id: str, *, expected_sha256: str) -> bytes:
        return self._file("notice_download", {"WSID": notice_id}, expected_sha256, f"notice {notice_id}")

    def close(self) -> None:
        self.client.close()


def platform_centre(
    config: AgentConfig,
    *,
    signer: EnvelopeSigner,
    decryption_key: Sm2PrivateKey,
    branch_of: BranchOf | None = None,
    wrap: Callable[[httpx.BaseTransport], httpx.BaseTransport] | None = None,
) -> ProvinceCentre:
    """The port over the platform ``[platform]`` configures, signing with ``signer`` (the key ``key_id``
    names: an SM2 key, or a signer over one in a PKCS#11 token), opening answers with ``decryption_key`` (the
    bank's SM2 encryption key), each call carrying the branch ``branch_of`` names; its requests go through
    ``wrap(transport)`` when given (the agent's: timed, counted, and an outage when the platform cannot be
    reached, as for a direct centre).

    Raises:
        ValueError: no ``[platform]`` section, or its dialect does not load.
    """
    platform = config.platform
    if platform is None:
        raise ValueError("no [platform] in the configuration")
    client = PlatformClient(
        platform.url,
        app_id=platform.app_id,
        signer=signer,
        decryption_key=decryption_key,
        platform_app_id=platform.platform_app_id,
        platform_key=load_pem_public_key(platform.platform_signing_key.encode("ascii")),
        platform_encryption_key=load_pem_public_key(platform.platform_encryption_key.encode("ascii")),
        timeout=platform.timeout,
        transport=wrap(httpx.HTTPTransport()) if wrap is not None else None,
    )
    return ProvinceCentre(client, load_dialect(platform.dialect), tuple(platform.centres), branch_of)


def platform_trust(config: AgentConfig) -> dict[str, TrustAnchors]:
    """Each county centre's trust anchors by 行政区划代码 (``[platform.centres.<code>]``): a certificate of
    a unit in that district is checked against its own centre's seal CAs and signing key.

    Raises:
        OSError: a ``seal_ca_file`` cannot be read.
    """
    if config.platform is None:
        return {}
    user_id = config.centre.crypto_suite.sm2_user_id
    return {
        district: TrustAnchors(
            seal_ca_pem=config.resolve(centre.seal_ca_file).read_text(encoding="ascii"),
            centre_key_id=centre.centre_key_id,
            centre_key=centre.centre_key,
            centre_name=centre.name,
            sm2_user_id=user_id,
        )
        for district, centre in config.platform.centres.items()
    }
