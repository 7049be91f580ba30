"""Sealed notices (电子文书, seed 003 (四)): 受理凭证, 不予受理通知书, 不予登记通知书 and 补正通知书, issued as
documents with the same force as paper, sealed like the centre's certificates (OFD with the SM2
seal in the ``gm`` suite, PDF/PAdES in ``intl``), announced by ``notice.issued`` and served like
certificates: signed metadata (``GET /v1/notices/{id}``) and a short-lived download link
(``GET /v1/notices/{id}/content``). docs/api.md §9a defines every kind, collateral ones included.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from sdk.models import NOTICE_KINDS, ApplicationRecord, NoticeMetadata, PropertyQueryResult, SignedNoticeMetadata

from . import certificates as certs
from .certificates_ofd import render_notice_ofd
from .errors import CentreError
from .events import EventFeed
from .pki import CentreKeys
from .register import CHANGFENG, County
from .seals import SealOffice
from .store import Store, new_id, now_utc, token_hash

__all__ = ["NoticeOffice"]

BEIJING = ZoneInfo("Asia/Shanghai")

#: how long a notice's download link lives, in seconds (as a certificate's)
DOWNLOAD_SECONDS = 300


class NoticeOffice:
    """Issues, keeps and serves the centre's sealed notices."""

    def __init__(
        self,
        store: Store,
        *,
        keys: CentreKeys,
        events: EventFeed,
        name: str,
        code: str,
        seals: SealOffice | None = None,
        county: County = CHANGFENG,
    ) -> None:
        self.store = store
        self.county = county
        self.keys = keys
        self.events = events
        self.name = name
        self.code = code
        self.seals = seals

    def issue(
        self,
        institution_id: str,
        record: ApplicationRecord,
        kind: str,
        *,
        number: str | None = None,
        reason_code: str | None = None,
        reason: str | None = None,
        deadline: datetime | None = None,
        units: list[str] | None = None,
        restriction_id: str | None = None,
    ) -> str:
        """Decide one notice about ``record`` (number, fields, text), keep it and emit ``notice.issued``; answer
        its id. It is drawn and sealed when first read (the same document every time after). A collateral notice
        names the unit it concerns (``units``; else the application's) and the restriction (``restriction_id``)."""
        now = now_utc()
        nid = new_id("ntc")
        title = NOTICE_KINDS[kind]
        if number is None:
            seq = self.store.next_number(f"notice:{kind}")
            number = f"{self.county.short}不动产{title}〔{now:%Y}〕{seq}号"
        units = units or [p.unit_id for p in record.application.properties]
        fields = [
            ("文书编号", number),
            ("申请编号", record.application_id),
            ("业务类型", record.type),
            ("不动产单元号", "\n".join(units)),
        ]
        if reason:
            fields.append(("原因" if kind != "correction" else "补正内容", reason))
        if deadline is not None:
            fields.append(("补正期限", f"{deadline:%Y年%m月%d日}"))
        body = {
            "acceptance_receipt": "你单位提交的不动产登记申请材料齐全、符合法定形式，本机构予以受理。",
            "not_accepted": "你单位提交的不动产登记申请不符合受理条件，本机构决定不予受理。",
            "refusal": "经审核，你单位申请的不动产登记不符合登记条件，本机构决定不予登记。",
            "correction": "你单位提交的申请材料需要补正，请在补正期限内补正；逾期未补正的，申请作废。",
        }.get(kind, title)
        meta = NoticeMetadata(
            notice_id=nid,
            kind=kind,
            title=title,
            notice_number=number,
            application_id=record.application_id,
            unit_ids=units,
            restriction_id=restriction_id,
            issuing_authority=self.name,
            issuing_authority_code=self.code,
            issued_at=now,
            reason_code=reason_code,
            reason=reason,
            deadline=deadline,
            media_type="application/ofd" if self.seals is not None else "application/pdf",
            sha256="0" * 64,
            size=1,
        )
        with self.store.transaction():
            self._decide(institution_id, meta, fields, body)
            self.events.emit(institution_id, "notice.issued", record,
                             {"notice_id": nid, "kind": kind, "notice_number": number})  # fmt: skip
        return nid

    def _decide(self, institution_id: str, meta: NoticeMetadata, fields: list[tuple[str, str]], body: str) -> None:
        """Keep a document decided now (number, fields, text), drawn and sealed when first asked for
        (:meth:`_render`): the centre's step is not held up by sealing, and what it will show is fixed here."""
        addressee = self.store.one("SELECT name FROM institutions WHERE id = ?", institution_id)
        draft = {"meta": meta.model_dump(mode="json"), "to": addressee["name"] if addressee else institution_id,
                 "fields": fields, "body": body}  # fmt: skip
        self.store.execute(
            "INSERT INTO notices VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            meta.notice_id,
            institution_id,
            meta.application_id,
            meta.kind,
            meta.notice_number,
            json.dumps(draft, ensure_ascii=False),
            "",
            b"",
        )
        self.store.audit("centre", f"notice.{meta.kind}", meta.notice_id, "ok")

    def issue_query_result(self, institution_id: str, result: PropertyQueryResult) -> str:
        """The sealed 查询结果 (权属查询证明) of one answered 登记资料查询: what the register shows of the unit
        (rights by kind, 证号, 顺位 and amount, no names), 查封/异议/抵押, who asked and on which authorisation; a
        document of kind ``query_result`` served and sealed as every notice (no event: the query's answer names
        it). Answers its id."""
        now = now_utc()
        nid = new_id("ntc")
        title = NOTICE_KINDS["query_result"]
        number = f"{self.county.short}不动产查询〔{now:%Y}〕{self.store.next_number('notice:query_result')}号"
        names = {"ownership": "所有权", "mortgage": "抵押权", "seizure": "查封", "objection": "异议登记",
                 "notice": "预告登记"}  # fmt: skip
        yes = {True: "是", False: "否"}
        fields = [
            ("文书编号", number),
            ("查询编号", result.query_id),
            ("不动产单元号", result.unit_id),
            ("坐落", result.location),
            ("不动产权证书号", result.title_certificate or "—"),
            ("查封", yes[result.seized]),
            ("异议", yes[result.objection]),
            ("抵押", yes[result.mortgaged]),
        ]
        for i, r in enumerate(result.rights, start=1):
            parts = [names.get(r.kind, r.kind), f"顺位{r.rank}" if r.rank else "", r.certificate_number or "",
                     f"{r.amount}元" if r.amount is not None else "", r.note or ""]  # fmt: skip
            fields.append((f"登记事项{i}", " ".join(p for p in parts if p)))
        fields += [("授权书编号", result.authorisation_reference or "—"), ("经办人", result.operator_id or "—"),
                   ("查询时间", f"{result.answered_at.astimezone(BEIJING):%Y-%m-%d %H:%M:%S}（北京时间）")]  # fmt: skip
        body = "经查询不动产登记簿，截至查询时间该不动产单元的登记情况如上。本结果仅供办理不动产抵押业务使用。"
        meta = NoticeMetadata(
            notice_id=nid,
            kind="query_result",
            title=title,
            notice_number=number,
            query_id=result.query_id,
            unit_ids=[result.unit_id],
            issuing_authority=self.name,
            issuing_authority_code=self.code,
            issued_at=now,
            media_type="application/ofd" if self.seals is not None else "application/pdf",
            sha256="0" * 64,
            size=1,
        )
        self._decide(institution_id, meta, fields, body)
        return nid

    def notice(self, institution_id: str, notice_id: str) -> SignedNoticeMetadata:
        """The notice's metadata with the centre's detached signature.

        Raises:
            CentreError: 404 for an unknown notice or another institution's.
        """
        row = self.store.one("SELECT institution_id, metadata, signature FROM notices WHERE id = ?", notice_id)
        if row is None or row["institution_id"] != institution_id:
            raise CentreError(404, "not_found", f"no notice {notice_id}")
        if not row["signature"]:
            self._render(notice_id)
            row = self.store.one("SELECT institution_id, metadata, signature FROM notices WHERE id = ?", notice_id)
            assert row is not None
        self.store.audit(institution_id, "notice.read", notice_id, "ok")
        return SignedNoticeMetadata.model_validate(
            {"metadata": json.loads(row["metadata"]), "signature": json.loads(row["signature"])}
        )

    def _render(self, notice_id: str) -> None:
        """Draw and seal a notice decided by :meth:`issue`, fixing its digest and signing its metadata (once)."""
        row = self.store.one("SELECT metadata, signature FROM notices WHERE id = ?", notice_id)
        if row is None or row["signature"]:
            return
        draft = json.loads(row["metadata"])
        meta = NoticeMetadata.model_validate(draft["meta"])
        fields = [(str(a), str(b)) for a, b in draft["fields"]]
        if self.seals is not None:
            content = render_notice_ofd(
                title=meta.title,
                number=meta.notice_number,
                authority=self.name,
                addressee=draft["to"],
                fields=fields,
                body=draft["body"],
                issued_at_text=f"{meta.issued_at:%Y年%m月%d日}",
                seals=self.seals,
                custom_data={"文书类型": meta.kind, "文书编号": meta.notice_number,
                             "申请编号": meta.application_id or meta.query_id or ""},
            )  # fmt: skip
        else:
            pdf = certs.render_notice_pdf(title=meta.title, number=meta.notice_number, authority=self.name,
                                          addressee=draft["to"], fields=fields, body=draft["body"],
                                          issued_at=meta.issued_at)  # fmt: skip
            content = certs.seal_pdf(pdf, self.keys, authority=self.name)
        meta = meta.model_copy(update={"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)})
        doc = meta.model_dump(mode="json")
        self.store.execute(
            "UPDATE notices SET metadata = ?, signature = ?, content = ? WHERE id = ? AND signature = ''",
            json.dumps(doc, ensure_ascii=False), json.dumps(self.keys.sign_detached(doc)), content, notice_id,
        )  # fmt: skip

    def download_token(self, institution_id: str, notice_id: str) -> str:
        """A one-time download token valid for :data:`DOWNLOAD_SECONDS` (the certificates' download route serves it)."""
        self.notice(institution_id, notice_id)
        token = secrets.token_urlsafe(24)
        self.store.execute(
            "INSERT INTO downloads VALUES (?, ?, ?)", token_hash(token), notice_id, time.time() + DOWNLOAD_SECONDS
        )
        return token

    def content(self, notice_id: str) -> tuple[NoticeMetadata, bytes] | None:
        self._render(notice_id)
        row = self.store.one("SELECT institution_id, metadata, content FROM notices WHERE id = ?", notice_id)
        if row is None:
            return None
        self.store.audit(row["institution_id"], "notice.download", notice_id, "ok")
        return NoticeMetadata.model_validate_json(row["metadata"]), bytes(row["content"])
