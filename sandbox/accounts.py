"""The institutions' accounts (the admin side): institutions, operators, admin tokens, the channel,
银行信息备案 (filing), the webhook and the signed enrolment bundle."""

from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from sdk.identifiers import check_uscc
from sdk.models import FILING_KINDS, FilingDocument, FilingState, InstitutionFiling, InstitutionProfile, Operator
from sdk.signing import jwk_from_public_key

from .credentials import Credentials
from .errors import CentreError
from .events import EventFeed
from .payload import check_payload
from .pki import CentreKeys
from .seals import SealOffice
from .store import Store, china_today, new_id, now_utc, token_hash
from .urls import check_webhook_url

#: how long an admin token is good for unless its maker says otherwise
ADMIN_TOKEN_VALIDITY = timedelta(hours=24)

__all__ = ["BUNDLE_VERSION", "Accounts"]

BUNDLE_VERSION = 1


class Accounts:
    """Institutions and their operators, as the centre's admin keeps them.

    Args:
        name, code: the centre's own name and 统一社会信用代码 (named in enrolment bundles).
    """

    def __init__(
        self,
        store: Store,
        *,
        keys: CentreKeys,
        events: EventFeed,
        credentials: Credentials,
        name: str,
        code: str,
        development: bool = True,
        seals: SealOffice | None = None,
        esign_cas: list[str] | None = None,
    ) -> None:
        self.store = store
        #: the gm suite's seal system: its SM2 seal CA joins the bundle's trust
        self.seals = seals
        #: the e-signature CAs (PEM) the centre trusts, named in every enrolment bundle (``trust.esign_ca_pems``)
        self.esign_cas = list(esign_cas or [])
        #: a development centre accepts webhook URLs on loopback and private addresses (sandbox.urls)
        self.development = development
        self.keys = keys
        self.events = events
        self.credentials = credentials
        self.name = name
        self.code = code

    # --- admin side ---------------------------------------------------------------------

    def create_institution(self, *, name: str, uscc: str, licence_no: str, district: str) -> str:
        """Open an account; answer its institution id.

        Raises:
            ValueError: for an invalid 统一社会信用代码 (GB 32100-2015).
        """
        code = check_uscc(uscc)
        iid = new_id("inst")
        self.store.execute(
            "INSERT INTO institutions (id, name, uscc, licence_no, district, channel_since) VALUES (?, ?, ?, ?, ?, ?)",
            iid,
            name,
            code,
            licence_no,
            district,
            now_utc().isoformat(),
        )
        self.store.audit("admin", "institution.create", iid, "ok")
        return iid

    def create_operator(self, institution_id: str, display_name: str, operator_id: str | None = None) -> str:
        """Create a 业务办理人员 account for one of the bank's staff (seed 001 §4.2); answer its id.

        The bank asks for the account id it will write in its 经办人 column (its staff number, say
        ``op-001``); without one the centre makes one up (``op_…``) and the bank must use that.

        Raises:
            CentreError: 404 for an unknown institution, 409 ``operator_exists`` for an id already issued.
        """
        self.institution_row(institution_id)
        oid = operator_id or new_id("op")
        try:
            self.store.execute(
                "INSERT INTO operators (id, institution_id, display_name) VALUES (?, ?, ?)",
                oid,
                institution_id,
                display_name,
            )
        except sqlite3.IntegrityError:
            raise CentreError(409, "operator_exists", f"operator account {oid} already exists") from None
        self.store.audit("admin", "operator.create", oid, "ok")
        return oid

    def deactivate_operator(self, institution_id: str, operator_id: str) -> Operator:
        """Deactivate an account (the staff member left or changed role): from now on applications
        naming it are refused with ``operator_not_authorised``. Deactivating twice changes nothing.

        Raises:
            CentreError: 404 when the institution has no such operator.
        """
        row = self.store.one(
            "SELECT * FROM operators WHERE id = ? AND institution_id = ?", operator_id, institution_id
        )
        if row is None:
            raise CentreError(404, "not_found", f"institution {institution_id} has no operator {operator_id}")
        if row["active"]:
            self.store.execute(
                "UPDATE operators SET active = 0, deactivated_at = ? WHERE id = ?", now_utc().isoformat(), operator_id
            )
            self.store.audit("admin", "operator.deactivate", operator_id, "ok")
        return next(o for o in self.list_operators(institution_id) if o.operator_id == operator_id)

    def check_operator(self, institution_id: str, operator_id: str, pointer: str = "/declaration/operator_id") -> None:
        """The operator must be an active account of this institution (seed 001 §4.2).

        Raises:
            CentreError: 403 ``operator_not_authorised`` naming why (unknown, deactivated, another institution's).
        """
        row = self.store.one("SELECT institution_id, active FROM operators WHERE id = ?", operator_id)
        if row is None:
            why = f"operator {operator_id} is unknown: no such 业务办理人员 account was issued (经办人账号不存在)"
        elif row["institution_id"] != institution_id:
            why = f"operator {operator_id} is an account of another institution (其他机构的经办人账号)"
        elif not row["active"]:
            why = f"operator {operator_id} was deactivated (经办人账号已停用)"
        else:
            return
        raise CentreError(
            403,
            "operator_not_authorised",
            why,
            errors=[{"code": "operator_not_authorised", "detail": why, "pointer": pointer}],
        )

    def create_admin_token(self, label: str, *, valid_for: timedelta = ADMIN_TOKEN_VALIDITY) -> str:
        """A bearer token for the admin API (kept hashed; shown once), valid for ``valid_for``."""
        token = "rba_" + secrets.token_urlsafe(32)
        now = now_utc()
        self.store.execute(
            "INSERT INTO admin_tokens (token_hash, label, created_at, expires_at) VALUES (?, ?, ?, ?)",
            token_hash(token), label, now.isoformat(), (now + valid_for).isoformat(),
        )  # fmt: skip
        self.store.audit("admin", "admin_token.create", label, "ok")
        return token

    def check_admin_token(self, token: str) -> str | None:
        """The admin token's label, or ``None`` for an unknown or expired token (one made before tokens
        had an expiry counts as made :data:`ADMIN_TOKEN_VALIDITY` before it expires)."""
        row = self.store.one("SELECT * FROM admin_tokens WHERE token_hash = ?", token_hash(token))
        if row is None:
            return None
        expires = row["expires_at"] or (datetime.fromisoformat(row["created_at"]) + ADMIN_TOKEN_VALIDITY).isoformat()
        if datetime.fromisoformat(expires) <= now_utc():
            return None
        return str(row["label"])

    def rotate_admin_token(
        self, token: str, *, valid_for: timedelta = ADMIN_TOKEN_VALIDITY, grace: timedelta = timedelta(minutes=5)
    ) -> tuple[str, str]:
        """A new token with the same label; the old one ends after ``grace`` (or sooner, if it would).

        Answers the new token and when the old one ends (ISO 8601).

        Raises:
            CentreError: 401 ``admin_unauthorised`` for an unknown or expired token.
        """
        label = self.check_admin_token(token)
        if label is None:
            raise CentreError(401, "admin_unauthorised", "the admin token is unknown or expired")
        new = self.create_admin_token(label, valid_for=valid_for)
        row = self.store.one("SELECT * FROM admin_tokens WHERE token_hash = ?", token_hash(token))
        assert row is not None
        current = row["expires_at"] or (datetime.fromisoformat(row["created_at"]) + ADMIN_TOKEN_VALIDITY).isoformat()
        ends = min(datetime.fromisoformat(current), now_utc() + grace).isoformat()
        self.store.execute("UPDATE admin_tokens SET expires_at = ? WHERE token_hash = ?", ends, token_hash(token))
        self.store.audit("admin", "admin_token.rotate", label, "ok")
        return new, ends

    def list_institutions(self) -> list[InstitutionProfile]:
        return [self.profile(r["id"]) for r in self.store.all("SELECT id FROM institutions ORDER BY id")]

    def set_channel(self, institution_id: str, status: str, reason: str | None = None) -> None:
        """Open or suspend the institution's channel (announced as ``channel.suspended``/``channel.resumed``).

        Raises:
            ValueError: for a status other than ``open`` or ``suspended``.
        """
        if status not in ("open", "suspended"):
            raise ValueError("status is open or suspended")
        self.institution_row(institution_id)
        self.store.execute(
            "UPDATE institutions SET channel_status = ?, channel_reason = ?, channel_since = ? WHERE id = ?",
            status,
            reason,
            now_utc().isoformat(),
            institution_id,
        )
        self.store.audit("admin", f"channel.{status}", institution_id, "ok")
        self.events.emit(institution_id, "channel.suspended" if status == "suspended" else "channel.resumed", None,
                         {"reason": reason} if reason else {})  # fmt: skip

    def enrolment_bundle(self, institution_id: str, api_base_url: str, *, valid_for: timedelta) -> dict[str, Any]:
        """A one-time token with everything the bank needs to trust this centre, signed by it."""
        inst = self.institution_row(institution_id)
        token = self.credentials.issue_enrolment_token(institution_id, valid_for=valid_for)
        now = now_utc()
        bundle = {
            "version": BUNDLE_VERSION,
            "api_base_url": api_base_url.rstrip("/"),
            "institution_id": institution_id,
            "institution_name": inst["name"],
            "institution_uscc": inst["uscc"],
            "token": token,
            "issued_at": now.isoformat(),
            "expires_at": (now + valid_for).isoformat(),
            "centre": {"name": self.name, "code": self.code},
            "suite": self.keys.suite.bundle_member(),
            "trust": {
                # the PAdES seal CA, then (gm suite) the SM2 seal CA of the OFD seals: one PEM bundle
                "seal_ca_pem": self.keys.ca_pem + (self.seals.ca_pem if self.seals is not None else ""),
                "esign_ca_pems": self.esign_cas,
                "centre_key_id": self.keys.centre_key_id,
                "centre_key": self.keys.centre_jwk.model_dump(exclude_none=True),
                # the CA of the institution certificates the centre issues on a PKCS#10 request (sandbox.bankca)
                "bank_ca_pem": self.credentials.bank_ca.pem,
                # gm centres asking for the personal-field envelope (suite.envelope): the key to wrap to
                **(
                    {"centre_encryption_key": jwk_from_public_key(self.keys.encryption_key(self.store).public)
                     .model_dump(exclude_none=True)}
                    if self.keys.suite.envelope else {}
                ),
            },
        }
        return {"bundle": bundle, "signature": self.keys.sign_detached(bundle)}

    # --- the institution's own view -----------------------------------------------------

    def profile(self, institution_id: str) -> InstitutionProfile:
        row = self.store.one("SELECT * FROM institutions WHERE id = ?", institution_id)
        if row is None:
            raise CentreError(404, "not_found", "no such institution")
        return InstitutionProfile(
            institution_id=row["id"],
            name=row["name"],
            uscc=row["uscc"],
            financial_licence_number=row["licence_no"],
            district=row["district"],
            channel={"status": row["channel_status"], "reason": row["channel_reason"], "since": row["channel_since"]},
            filing=self._filed(row),
            filing_state=self.filing_state(institution_id),
            webhook_url=row["webhook_url"],
        )

    @staticmethod
    def _filed(row: sqlite3.Row) -> list[FilingDocument]:
        """The filed documents (an older declaration that is no filing document any more counts as not filed)."""
        found = []
        for doc in json.loads(row["filing"]):
            try:
                found.append(FilingDocument.model_validate(doc))
            except ValueError:
                continue
        return found

    def filing_state(self, institution_id: str) -> FilingState:
        """Whether the institution's 银行信息备案 is in order today (China date), and if not, why (seed 001 §5.2)."""
        documents = {d.code: d for d in self._filed(self.institution_row(institution_id))}
        uploaded = {
            (r["material_id"], r["sha256"])
            for r in self.store.all("SELECT material_id, sha256 FROM filing_documents WHERE institution_id = ?",
                                    institution_id)
        }  # fmt: skip
        missing = [name for code, name in FILING_KINDS.items() if code not in documents]
        if missing:
            return FilingState(status="missing", reason=f"未办理银行信息备案：缺少{'、'.join(missing)}")
        waiting = [FILING_KINDS[d.code] for d in documents.values() if (d.id, d.sha256) not in uploaded]
        if waiting:
            return FilingState(status="missing", reason=f"银行信息备案的{'、'.join(waiting)}文件尚未上传")
        today = china_today()
        ends = [d.valid_until for d in documents.values() if d.valid_until is not None]
        expired = [d for d in documents.values() if d.valid_until is not None and d.valid_until < today]
        if expired:
            what = "、".join(f"{FILING_KINDS[d.code]}（{d.number}）有效期至 {d.valid_until}" for d in expired)
            return FilingState(
                status="expired", reason=f"银行信息备案已过期：{what}，请重新备案", valid_until=min(ends)
            )
        return FilingState(status="complete", valid_until=min(ends) if ends else None)

    def check_filing(self, institution_id: str) -> None:
        """Applications come only from an institution whose 银行信息备案 is complete and valid (seed 001 §5.2).

        Raises:
            CentreError: 403 ``filing_required`` (a document not filed or not uploaded) or ``filing_expired``.
        """
        state = self.filing_state(institution_id)
        if state.status == "complete":
            return
        code = "filing_expired" if state.status == "expired" else "filing_required"
        raise CentreError(403, code, f"{state.reason} (POST /v1/institution/filing)")

    def institution_row(self, institution_id: str) -> sqlite3.Row:
        """The institution's stored row.

        Raises:
            CentreError: 404 for an unknown institution.
        """
        row = self.store.one("SELECT * FROM institutions WHERE id = ?", institution_id)
        if row is None:
            raise CentreError(404, "not_found", f"no institution {institution_id}")
        return row

    def operator_ids(self, institution_id: str) -> set[str]:
        """The ids of the institution's active operators (经办人)."""
        rows = self.store.all("SELECT id FROM operators WHERE institution_id = ? AND active = 1", institution_id)
        return {r["id"] for r in rows}

    def list_operators(self, institution_id: str) -> list[Operator]:
        """Every operator account issued to the institution, active or deactivated.

        Raises:
            CentreError: 404 for an unknown institution (not an empty list: a mistyped id is said as such).
        """
        self.institution_row(institution_id)
        rows = self.store.all("SELECT * FROM operators WHERE institution_id = ? ORDER BY id", institution_id)
        return [
            Operator(
                operator_id=r["id"],
                display_name=r["display_name"],
                active=bool(r["active"]),
                deactivated_at=r["deactivated_at"],
            )
            for r in rows
        ]

    def file_institution(self, institution_id: str, filing: InstitutionFiling) -> InstitutionProfile:
        """银行信息备案: declare the institution's 营业执照 and 金融许可证 (uploaded one by one after); replaces
        the previous filing.

        Raises:
            CentreError: 422 ``filing_mismatch`` when the 营业执照's number is not the institution's 统一社会信用代码
                or the 金融许可证's not the licence number on its account.
        """
        row = self.institution_row(institution_id)
        expected = {"business_licence": row["uscc"], "financial_licence": row["licence_no"]}
        wrong = [
            {"code": "filing_mismatch", "pointer": f"/documents/{i}/number",
             "detail": f"{FILING_KINDS[d.code]}的编号 {d.number} 与登记中心记载的本机构编号 {expected[d.code]} 不一致"}
            for i, d in enumerate(filing.documents)
            if d.number.upper() != str(expected[d.code]).upper()
        ]  # fmt: skip
        if wrong:
            raise CentreError(422, "filing_mismatch", "备案材料的证照编号与本机构不一致", errors=wrong)
        docs = [m.model_dump(mode="json") for m in filing.documents]
        self.store.execute(
            "UPDATE institutions SET filing = ? WHERE id = ?", json.dumps(docs, ensure_ascii=False), institution_id
        )
        self.store.audit(institution_id, "institution.filing", institution_id, "ok")
        return self.profile(institution_id)

    def upload_filing_document(self, institution_id: str, material_id: str, content: bytes) -> InstitutionProfile:
        """Receive one declared filing document.

        Raises:
            CentreError: 404 for an undeclared document, 422 ``payload_mismatch`` for other content.
        """
        filing = self._filed(self.institution_row(institution_id))
        declared = next((m for m in filing if m.id == material_id), None)
        if declared is None:
            raise CentreError(404, "not_found", f"document {material_id} is not declared in the filing")
        check_payload(material_id, declared, content)
        self.store.execute(
            "INSERT OR REPLACE INTO filing_documents VALUES (?, ?, ?, ?)",
            institution_id,
            material_id,
            declared.sha256,
            content,
        )
        return self.profile(institution_id)

    def set_webhook(self, institution_id: str, url: str) -> InstitutionProfile:
        """Deliver the institution's events to ``url`` from now on.

        Raises:
            CentreError: 422 ``webhook_url_refused`` for an internal address on a real centre (sandbox.urls).
        """
        check_webhook_url(url, development=self.development)
        self.store.execute("UPDATE institutions SET webhook_url = ? WHERE id = ?", url, institution_id)
        self.store.audit(institution_id, "institution.webhook", institution_id, "ok")
        return self.profile(institution_id)
