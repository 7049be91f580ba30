"""One registration centre, composed: its offices over one :class:`Store`.

The offices, each a module of its own and given only what it works with::

    Centre ─┬─ accounts      (accounts.py)      institutions, operators, channel, filing, bundle
            ├─ credentials   (credentials.py)   enrolment tokens, keys: enrol, rotate, revoke; their
            │                                   certificates from the institution CA (bankca.py)
            ├─ applications  (applications.py)  create, materials, submit, 补正, withdraw
            ├─ fees          (fees.py)          assess, notice, pay, receipt
            ├─ certificates  (issuance.py)      缮证, 注销, download, 在线核验
            ├─ queries       (queries.py)       登记资料查询
            ├─ idempotency   (idempotency.py)   Idempotency-Key answers
            └─ workflow      (workflow.py)      受理 → 审核 → 登簿 → 缮证 → 办结, on the schedule
    below them: ledger (records, transitions), events (feed, webhook queue), schedule, register, keys

HTTP lives in :mod:`sandbox.app` and :mod:`sandbox.routes`; the admin CLI and the API share the
offices. The centre keeps the acts' old names (``centre.submit``, ``centre.pay``…) for its callers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from config import load_checklists, load_fees
from sdk.identifiers import uscc_check_char

from .accounts import Accounts
from .applications import Applications
from .bankca import BANK_CRL_PATH, BankCa
from .credentials import BANK_CERTIFICATE_VALIDITY, Credentials, seal_for_bank
from .errors import CentreError
from .esign import EsignAuthority
from .events import EventFeed
from .fees import FeeOffice
from .idempotency import Idempotency, IdempotentResult, request_fingerprint
from .issuance import CertificateOffice
from .ledger import Ledger
from .notices import NoticeOffice
from .pki import CentreKeys
from .queries import PropertyQueries
from .register import CHANGFENG, County, Register
from .schedule import Schedule, Timing
from .seals import SM2_CRL_PATH, SealOffice
from .store import Store
from .workflow import Workflow

if TYPE_CHECKING:
    from sdk.suites import Suite

__all__ = ["CENTRE_CODE", "Centre", "IdempotentResult", "centre_code", "request_fingerprint"]


def centre_code(district: str) -> str:
    """A sandbox county centre's own 统一社会信用代码 (机关 1 1, its 行政区划代码, then a fixed body)."""
    body = f"11{district}MB0000001"
    return body + uscc_check_char(body)


#: the default (长丰县) sandbox centre's own 统一社会信用代码
CENTRE_CODE = centre_code("340121")
#: where the CA's CRL is published, under the centre's public URL (named in every seal certificate)
CRL_PATH = "/pki/ca.crl"


class Centre:
    """One registration centre's state and rules.

    Args:
        name: the centre's name, as on its certificates.
        timing: how fast reviews move (instant by default).
        passphrase: unlocks the centre's keys of a file-backed store.
        public_url: the base URL certificates' QR codes point at (else learnt from the first request).
        suite: the crypto suite (:mod:`sdk.suites`) for a new centre; a stored one keeps its own.
        development: accept webhook URLs on loopback and private addresses (``sandbox.urls``); a
            centre serving beyond this machine is not one.
        esign_cas: e-signature CAs (PEM) trusted besides the sandbox's own test e-signature CA
            (:mod:`sandbox.esign`): the signing platforms this centre recognises (seed 003 细则 (四)).
        certificate_validity: how long the institution certificates it issues are valid.
        county: the county it registers for (its 行政区划代码, the seeded register's units and numbers).
    """

    def __init__(
        self,
        store: Store,
        *,
        name: str = "长丰县不动产登记中心",
        timing: Timing | None = None,
        passphrase: bytes | None = None,
        public_url: str | None = None,
        suite: Suite | None = None,
        development: bool = True,
        esign_cas: Sequence[str] = (),
        certificate_validity: timedelta = BANK_CERTIFICATE_VALIDITY,
        county: County = CHANGFENG,
    ) -> None:
        self.store = store
        self.county = county
        self.name = name
        self.code = centre_code(county.district)
        self.register = Register(store, county)
        self.register.seed()
        self.keys = CentreKeys.load_or_create(store, name=name, passphrase=passphrase, suite=suite)
        self.suite = self.keys.suite
        #: the gm suite's electronic seal system (SM2 seal CA, seal, OFD certificates); none in intl
        self.seals = (
            SealOffice.load_or_create(store, name=name, passphrase=passphrase) if self.suite.name == "gm" else None
        )
        self.checklists = load_checklists()
        self.events = EventFeed(store)
        self.ledger = Ledger(store, self.events)
        self.schedule = Schedule(store, timing or Timing())
        self.idempotency = Idempotency(store)
        #: the sandbox's own test e-signature CA (a separate CA from the seal CA), kept like the other keys
        self.esign = EsignAuthority.load_or_create(store, passphrase=passphrase)
        self.esign_cas = [self.esign.ca_pem, *esign_cas]
        self.credentials = Credentials(
            store,
            suite=self.suite,
            bank_ca=lambda: BankCa.load_or_create(store, name=name, suite=self.suite, passphrase=passphrase),
            certificate_validity=certificate_validity,
        )
        self.accounts = Accounts(
            store,
            keys=self.keys,
            events=self.events,
            credentials=self.credentials,
            name=name,
            code=self.code,
            development=development,
            seals=self.seals,
            esign_cas=self.esign_cas,
        )
        self.applications = Applications(
            store,
            ledger=self.ledger,
            schedule=self.schedule,
            accounts=self.accounts,
            esign_cas=self.esign_cas,
        )
        self.fees = FeeOffice(store, ledger=self.ledger, events=self.events, schedule=self.schedule, table=load_fees(),
                              county=county)  # fmt: skip
        self.certificates = CertificateOffice(
            store,
            keys=self.keys,
            events=self.events,
            name=name,
            code=self.code,
            public_url=public_url,
            seals=self.seals,
            county=county,
        )
        self.notices = NoticeOffice(
            store, keys=self.keys, events=self.events, name=name, code=self.code, seals=self.seals, county=county
        )
        self.queries = PropertyQueries(
            store, register=self.register, accounts=self.accounts, keys=self.keys, notices=self.notices
        )
        self.workflow = Workflow(
            store,
            schedule=self.schedule,
            ledger=self.ledger,
            events=self.events,
            accounts=self.accounts,
            register=self.register,
            checklists=self.checklists,
            fees=self.fees,
            certificates=self.certificates,
            notices=self.notices,
        )
        # the acts under the names the admin CLI, the tests and the harnesses call them by
        accounts, credentials, applications = self.accounts, self.credentials, self.applications
        self.create_institution = accounts.create_institution
        self.create_operator = accounts.create_operator
        self.deactivate_operator = accounts.deactivate_operator
        self.create_admin_token = accounts.create_admin_token
        self.check_admin_token = accounts.check_admin_token
        self.list_institutions = accounts.list_institutions
        self.set_channel = accounts.set_channel
        self.enrolment_bundle = accounts.enrolment_bundle
        self.profile = accounts.profile
        self.institution_row = accounts.institution_row
        self.operator_ids = accounts.operator_ids
        self.list_operators = accounts.list_operators
        self.file_institution = accounts.file_institution
        self.upload_filing_document = accounts.upload_filing_document
        self.set_webhook = accounts.set_webhook
        self.issue_enrolment_token = credentials.issue_enrolment_token
        self.enroll = credentials.enroll
        self.list_credentials = credentials.list_credentials
        self.rotate = credentials.rotate
        self.revoke = credentials.revoke
        self.revoke_bank_certificate = credentials.revoke_certificate
        self.idempotent = self.idempotency.run
        self.save = self.ledger.save
        self.transition = self.ledger.transition
        self.emit = self.events.emit
        self.create_application = applications.create
        self.get_application = self.ledger.load
        self.find_application = applications.find
        self.list_applications = applications.list
        self.upload_material = applications.upload_material
        self.submit = applications.submit
        self.supplement = applications.supplement
        self.withdraw = applications.withdraw
        self.fee_notice = self.fees.fee_notice
        self.pay = self.fees.pay
        self.receipt = self.fees.receipt
        self.verification_url = self.certificates.verification_url
        self.issue_certificate = self.certificates.issue_certificate
        self.supersede = self.certificates.supersede
        self.certificate = self.certificates.certificate
        self.download_token = self.certificates.download_token
        self.download = self.certificates.download
        self.verify = self.certificates.verify
        self.query_property = self.queries.query_property
        self.query_trace = self.queries.trace
        self.void_application = self.workflow.void
        if public_url:
            self.public_url = public_url  # names the CRL in the seal certificate

    def restrict_unit(self, unit_id: str, kind: str, *, authority: str, document: str) -> str:
        """Record a 查封 (``seizure``) or an 异议 (``objection``) on a unit (scripted by the admin); the right's id.

        Raises:
            CentreError: 404 for a unit not in the register.
        """
        if self.register.unit(unit_id) is None:
            raise CentreError(404, "not_found", f"no unit {unit_id} in the register")
        what = "查封" if kind == "seizure" else "异议登记"
        with self.store.transaction():
            right = self.register.restrict(unit_id, kind, authority=authority, note=f"{document} {what}")
            self.store.audit("admin", f"unit.{kind}", unit_id, "ok")
            self._notify_mortgagees(unit_id, kind, f"{authority} {document} {what}：不动产单元 {unit_id}", right.id)
        return right.id

    def _notify_mortgagees(self, unit_id: str, kind: str, reason: str, restriction_id: str) -> None:
        """Push a sealed collateral notice (docs/api.md §9a: 查封/解封/异议 登记通知书, ``notice.issued``) to each bank
        holding a current mortgage on the unit it registered here, about that mortgage's application."""
        for r in self.register.rights(unit_id, current_only=True):
            if r.kind != "mortgage" or not r.application_id:
                continue
            owner = self.store.one("SELECT institution_id FROM applications WHERE id = ?", r.application_id)
            if owner is None:
                continue
            record = self.ledger.load(owner["institution_id"], r.application_id)
            self.notices.issue(owner["institution_id"], record, kind, reason_code=kind, reason=reason, units=[unit_id],
                               restriction_id=restriction_id)  # fmt: skip

    def lift_restriction(self, right_id: str) -> None:
        """解封 / 异议注销 of a restriction recorded on a unit (404 when there is no such current restriction)."""
        lifted = self.store.one(
            "SELECT unit_id, kind FROM rights WHERE id = ? AND kind IN ('seizure', 'objection') AND status = 'current'",
            right_id,
        )
        if lifted is None:
            raise CentreError(404, "not_found", f"no current seizure or objection {right_id}")
        with self.store.transaction():
            self.register.cancel(right_id, "解除")
            self.store.audit("admin", "unit.restriction_lifted", right_id, "ok")
            if lifted["kind"] == "seizure":
                unit = lifted["unit_id"]
                self._notify_mortgagees(unit, "seizure_release", f"解除查封：不动产单元 {unit}", right_id)

    @property
    def public_url(self) -> str | None:
        """The base URL the certificates' QR codes and the bundles point at."""
        return self.certificates.public_url

    @public_url.setter
    def public_url(self, url: str | None) -> None:
        self.certificates.public_url = url
        if url:  # the CA's CRL is published there: the seal certificate names it (sandbox.pki)
            self.keys.publish_crl_at(self.store, url.rstrip("/") + CRL_PATH, name=self.name)
            if self.seals is not None:
                self.seals.publish_crl_at(self.store, url.rstrip("/") + SM2_CRL_PATH)
            self.credentials.crl_url = url.rstrip("/") + BANK_CRL_PATH  # named in institution certificates

    def open_envelope(self, method: str, body: bytes) -> bytes:
        """A signed JSON body with its personal-field envelope opened (:mod:`sdk.gm.envelope`), for the
        routes to read; a body without one as it is. A gm centre whose suite asks for the envelope
        refuses a POST body that carries personal fields in the clear.

        Raises:
            CentreError: 422 ``envelope_invalid`` (not for this centre's key, altered, malformed),
                422 ``encryption_required`` (personal fields in the clear where the envelope is asked for).
        """
        if self.suite.name != "gm" or body[:1] != b"{":
            return body
        from sdk.gm.envelope import ENVELOPE_MEMBER, open_fields, personal_pointers

        try:
            document = json.loads(body)
        except ValueError:
            return body  # the route refuses it as any malformed body
        if not isinstance(document, dict):
            return body
        if ENVELOPE_MEMBER in document:
            try:
                opened = open_fields(document, self.keys.encryption_key(self.store))
            except (ValueError, KeyError, TypeError) as e:
                raise CentreError(
                    422, "envelope_invalid", f"the personal-field envelope does not open: {e}",
                    errors=[{"code": "envelope_invalid", "detail": str(e), "pointer": f"/{ENVELOPE_MEMBER}"}],
                ) from None  # fmt: skip
            if self.suite.envelope:  # what the centre asks for: its own mode, and every personal field inside
                alg, fields = document[ENVELOPE_MEMBER].get("alg"), document[ENVELOPE_MEMBER].get("fields")
                if alg != self.suite.envelope:
                    detail = f"the envelope is {alg}; this centre asks for {self.suite.envelope}"
                    where = f"/{ENVELOPE_MEMBER}/alg"
                    problem = {"code": "envelope_invalid", "detail": detail, "pointer": where}
                    raise CentreError(422, "envelope_invalid", detail, errors=[problem])
                left = next((p for p in personal_pointers(opened) if p not in fields), None)
                if left is not None:
                    detail = f"{left} is personal data outside the envelope; this centre asks for it {alg}-encrypted"
                    problem = {"code": "encryption_required", "detail": detail, "pointer": left}
                    raise CentreError(422, "encryption_required", detail, errors=[problem])
            return json.dumps(opened, ensure_ascii=False).encode()
        clear = next(personal_pointers(document), None)
        if self.suite.envelope and method == "POST" and clear is not None:
            detail = f"{clear} is personal data in the clear; this centre asks for it {self.suite.envelope}-encrypted"
            raise CentreError(422, "encryption_required", detail,
                              errors=[{"code": "encryption_required", "detail": detail, "pointer": clear}])  # fmt: skip
        return body

    def seal_answer(self, institution_id: str, body: bytes) -> bytes:
        """A JSON answer to ``institution_id`` with its personal fields sealed to the bank's encryption
        key (registered at enrolment) when this centre asks for the envelope; as it is otherwise (or
        when it carries no personal field, or is no JSON object)."""
        if not self.suite.envelope or body[:1] != b"{":
            return body
        try:
            document = json.loads(body)
        except ValueError:
            return body
        sealed = seal_for_bank(self.store, self.suite, institution_id, document)
        return body if sealed is None else json.dumps(sealed, ensure_ascii=False).encode()

    def revoke_seal(self, reason: str = "key_compromise") -> int:
        """Revoke the seal certificate (onto the CA's CRL) and seal with a new key from now on."""
        serial = self.keys.revoke_seal(self.store, name=self.name, reason=reason)
        if self.seals is not None:  # the gm suite seals with the SM2 seal: that one is revoked (and answered)
            serial = self.seals.revoke_seal(self.store, reason)
        self.store.audit("admin", "seal.revoke", str(serial), reason[:100])
        return serial
