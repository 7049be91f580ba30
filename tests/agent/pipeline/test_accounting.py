"""The invariant of ingest, as a property: for every export, through every reader, records read = rows queued +
rows answering a 补正 + rows named as duplicates + rows quarantined — and each bucket holds exactly the rows it
should. Generated exports carry co-owned loans of up to three rows, broken records, bad values, duplicate lines,
missing materials and loans already queued; the same rows are written as CSV, XLSX, JSON, JSON Lines, XML and
fixed-width. ``make test`` runs a bounded number of exports; ``make proof`` (REGBRIDGE_PROOF=full) 2,400.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import xml.sax.saxutils
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from agent.demo import samples
from agent.pipeline.ingest import ingest_file
from sandbox import register
from sandbox.esign import document_pdf
from sandbox.local import LocalCentre
from sandbox.samples import esigned
from sdk.identifiers import check_resident_id, check_uscc
from tests.factories import resident_id
from tests.proof import Result, record, size

from ..conftest import make_branch

FORMATS = ["csv", "xlsx", "json", "jsonl", "xml", "fixed"]
EXPORTS = size(200, 2400)  # across the six readers: ≥ 2,000 in make proof
ALIAS = {
    "贷款编号": "LOAN",
    "业务类型": "TYPE",
    "不动产单元号": "UNIT",
    "坐落": "LOC",
    "不动产权证书号": "CERT",
    "抵押人": "NAME",
    "证件号码": "IDNO",
    "抵押方式": "METHOD",
    "贷款金额(万元)": "AMT",
    "最高债权额(万元)": "MAXAMT",
    "起始日期": "START",
    "到期日期": "END",
    "担保范围": "SCOPE",
    "主合同编号": "CONTRACT",
    "原证明号": "OLDCERT",
    "变更原因": "REASON",
    "经办人": "OP",
    "电子签名": "SIG",
    "签署日期": "SIGNED",
    "查询授权书编号": "AUTH",
    "授权有效期止": "AUTHTO",
    "电子签名文件": "ESFILE",
    "承诺": "PROMISE",
    "询问_真实意思": "Q1",
    "询问_权属争议": "Q2",
    "经办人姓名": "AGNAME",
    "经办人证件号": "AGID",
}
WIDTH = {
    "LOAN": 16,
    "TYPE": 8,
    "UNIT": 28,
    "LOC": 90,
    "CERT": 60,
    "NAME": 20,
    "IDNO": 18,
    "METHOD": 6,
    "AMT": 14,
    "MAXAMT": 14,
    "START": 10,
    "END": 10,
    "SCOPE": 100,
    "CONTRACT": 24,
    "OLDCERT": 60,
    "REASON": 20,
    "OP": 8,
    "SIG": 24,
    "SIGNED": 10,
    "AUTH": 24,
    "AUTHTO": 10,
    "ESFILE": 40,
    "PROMISE": 4,
    "Q1": 4,
    "Q2": 4,
    "AGNAME": 20,
    "AGID": 18,
}
COLUMNS = list(WIDTH)
#: the 查询授权书 columns (issue 24) are optional: an export may leave them out (never the fixed-width one: its
#: layout is the profile's), and ingest must account for its rows all the same
AUTHORISATION = ("AUTH", "AUTHTO")
# few units (so few signers: each signs the one generated 申请书 once, and PAdES costs ~0.3 s a signature)
UNITS_ONE = [n for n in register.HOMES if len(register.owners_of(n)) == 1][:12]
UNITS_TWO = [n for n in register.HOMES if len(register.owners_of(n)) == 2][:6]
DAMAGE = ["none", "none", "none", "bad_id", "duplicate_line", "broken_record", "bad_amount", "huge_amount", "nul_name"]


def _profile(fmt: str) -> str:
    text = (Path(__file__).resolve().parents[3] / "config" / "mappings" / "corebank_csv.toml").read_text("utf-8")
    for name, alias in ALIAS.items():
        text = text.replace(f'"{name}"', f'"{alias}"')
    source = {
        "csv": 'format = "csv"\nencoding = ["gb18030"]\npatterns = ["*.csv"]',
        "xlsx": 'format = "xlsx"\npatterns = ["*.xlsx"]',
        "json": 'format = "json"\npatterns = ["*.json"]',
        "jsonl": 'format = "jsonl"\npatterns = ["*.jsonl"]',
        "xml": 'format = "xml"\nrecords = "./R"\npatterns = ["*.xml"]',
        "fixed": 'format = "fixed"\nencoding = "gb18030"\npatterns = ["*.dat"]\nfields = ['
        + ", ".join(
            f'{{ name = "{c}", start = {sum(WIDTH[x] for x in COLUMNS[:i])}, width = {WIDTH[c]} }}'
            for i, c in enumerate(COLUMNS)
        )
        + "]",
    }[fmt]
    text = re.sub(r"\[source\]\n(.*?)\n\n", lambda m: f"[source]\n{source}\n\n", text, count=1, flags=re.S)
    return text.replace('name = "corebank_csv"', f'name = "gen_{fmt}"')


@dataclass
class Loan:
    number: str
    rows: list[dict[str, str]]
    damage: list[str]
    materials: bool
    repeat_of: str | None = None

    @property
    def clean(self) -> bool:
        return all(d == "none" for d in self.damage) and self.materials


def _rows(loan: str, owners: int, k: int) -> list[dict[str, str]]:
    unit = (UNITS_TWO if owners > 1 else UNITS_ONE)[k % (len(UNITS_TWO) if owners > 1 else len(UNITS_ONE))]
    rows = samples.mortgage_rows(loan, unit, amount="150", authorised=k % 2 == 0)
    if owners == 3:  # a third co-owner (made-up, with a valid check character)
        third = dict(rows[-1])
        third.update(
            {
                "抵押人": "测试叁",
                "证件号码": resident_id(900 + k % 4, "19850505"),
                "电子签名": f"ESIG-{loan}-3",
                "电子签名文件": samples.esign_path(loan, 3),
            }
        )
        rows.append(third)
    return [{ALIAS[k2]: v for k2, v in r.items()} for r in rows]


def _damage(rows: list[dict[str, str]], damage: list[str], fmt: str) -> list[dict[str, str] | str]:
    out: list[dict[str, str] | str] = []
    for row, d in zip(rows, damage, strict=True):
        row = dict(row)
        if d == "broken_record" and fmt in ("xlsx", "json", "xml"):
            d = "bad_id"  # those formats have no record a reader cannot split
        if d == "bad_id":  # a wrong check character (that is no valid USCC either: that would be an organisation)
            row["IDNO"] = next(row["IDNO"][:-1] + c for c in "0123456789X" if _invalid(row["IDNO"][:-1] + c))
        elif d == "bad_amount":
            row["AMT"] = "一百五十"
        elif d == "huge_amount":
            row["AMT"] = "1500000"
        elif d == "nul_name":  # inside the name: a NUL at its end is fixed-width padding
            row["NAME"] = row["NAME"][:1] + "\x00" + row["NAME"][1:]
        if d == "broken_record":
            out.append(f"BROKEN:{row['LOAN']}")
            continue
        out.append(row)
        if d == "duplicate_line":
            out.append(dict(row))
    return out


#: every generated loan's 申请书 (one document for all: a signer of several loans signs once, and the agent's check
#: of the same signed bytes is reused — the test is about accounting, not the cost of PAdES)
FORM = document_pdf("application_form", ["generated export"])


def _write_materials(inbox: Path, loan: Loan) -> None:
    """The loan's materials and its applicants' signed 申请书, where the rows name them."""
    samples.write_materials(inbox / "materials", loan.number, "mortgage_first")
    (inbox / "materials" / f"{loan.number}_application_form.pdf").write_bytes(FORM)
    for row in loan.rows:
        signed = esigned(FORM, {"name": row["NAME"], "id_number": row["IDNO"]})
        (inbox / row["ESFILE"]).parent.mkdir(parents=True, exist_ok=True)
        (inbox / row["ESFILE"]).write_bytes(signed)


def _invalid(number: str) -> bool:
    for check in (check_resident_id, check_uscc):
        try:
            check(number)
        except ValueError:
            continue
        return False
    return True


def _write(fmt: str, records: list[dict[str, str] | str], nul_padding: bool, authorisation: bool = True) -> bytes:
    if not authorisation and fmt != "fixed":
        columns = [c for c in COLUMNS if c not in AUTHORISATION]
        records = [r if isinstance(r, str) else {c: r[c] for c in columns} for r in records]
        return _write_columns(fmt, records, nul_padding, columns)
    return _write_columns(fmt, records, nul_padding, COLUMNS)


def _write_columns(fmt: str, records: list[dict[str, str] | str], nul_padding: bool, columns: list[str]) -> bytes:
    if fmt == "csv":
        lines = [",".join(columns)]
        for r in records:  # a broken record: its loan number and too few fields
            lines.append(f"{r.split(':', 1)[1]},short" if isinstance(r, str) else ",".join(r[c] for c in columns))
        return ("\r\n".join(lines) + "\r\n").encode("gb18030")
    if fmt == "xlsx":
        wb = Workbook()
        ws = wb.active
        assert ws is not None
        ws.append(columns)
        for r in records:
            assert isinstance(r, dict)
            ws.append([r[c] if c != "NAME" else r[c].replace("\x00", "\u202e") for c in columns])
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()
    if fmt == "json":
        return json.dumps([r for r in records if isinstance(r, dict)], ensure_ascii=False).encode()
    if fmt == "jsonl":
        return "\n".join(
            json.dumps(r, ensure_ascii=False) if isinstance(r, dict) else '{"LOAN": "' + r.split(":", 1)[1] + '", '
            for r in records
        ).encode()
    if fmt == "xml":
        body = "".join(
            "<R>" + "".join(f"<{c}>{xml.sax.saxutils.escape(_xml_text(r[c]))}</{c}>" for c in columns) + "</R>"
            for r in records
            if isinstance(r, dict)
        )
        return f'<?xml version="1.0" encoding="utf-8"?><Export>{body}</Export>'.encode()
    pad = b"\x00" if nul_padding else b" "
    out = []
    for r in records:
        if isinstance(r, str):
            out.append(r.split(":", 1)[1].encode().ljust(30, b" "))
            continue
        line = b""
        for c in columns:
            value = r[c].encode("gb18030")
            assert len(value) <= WIDTH[c], (c, r[c])
            line += value + pad * (WIDTH[c] - len(value))
        out.append(line)
    return b"\r\n".join(out) + b"\r\n"


def _xml_text(value: str) -> str:
    return value.replace("\x00", "\u202e")  # XML 1.0 cannot carry NUL: a bidi override stands in


def _record_count(fmt: str, records: list[dict[str, str] | str]) -> int:
    return sum(1 for r in records if isinstance(r, dict) or fmt in ("csv", "jsonl", "fixed"))


Plan = tuple[str, list[tuple[int, int, list[str], bool]], bool, bool]


@st.composite
def exports(draw: Any) -> Plan:
    """A format, the loans of one export (owners, unit pick, each row's damage, materials present), a repeat,
    whether the export carries the 查询授权书 columns."""
    fmt = draw(st.sampled_from(FORMATS))
    loans = []
    for _ in range(draw(st.integers(1, 5))):
        owners = draw(st.sampled_from([1, 1, 2, 3]))
        damage = [draw(st.sampled_from(DAMAGE)) for _ in range(owners)]
        loans.append((owners, draw(st.integers(0, 999)), damage, draw(st.booleans()) or draw(st.booleans())))
    return fmt, loans, draw(st.booleans()) and draw(st.booleans()), draw(st.booleans())


def test_every_record_of_every_generated_export_is_accounted_for(centre: LocalCentre, tmp_path: Path) -> None:
    profiles = {}
    for fmt in FORMATS:
        path = tmp_path / f"gen_{fmt}.toml"
        path.write_text(_profile(fmt), encoding="utf-8")
        profiles[fmt] = path
    inboxes = []
    for fmt in FORMATS:
        inboxes.append({"name": fmt, "path": f"inbox/{fmt}", "profile": str(profiles[fmt]), "completion": "rename"})
    gen = make_branch(centre, tmp_path / "gen", inboxes)
    agent = gen.agent()
    counter = itertools.count()
    queued: dict[str, Loan] = {}  # loans queued so far, which a later export may repeat
    totals = {"exports": 0, "records": 0, "queue": 0, "duplicate": 0, "quarantine": 0}

    @settings(
        max_examples=EXPORTS,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(exports())
    def check(case: Plan) -> None:
        fmt, plan, repeat, authorisation = case
        n = next(counter)
        inbox = gen.root / "inbox" / fmt
        records: list[dict[str, str] | str] = []
        expected = {"queue": 0, "duplicate": 0, "quarantine": 0}
        built: list[Loan] = []
        for i, (owners, k, damage, materials) in enumerate(plan):
            loan = Loan(f"G{n:05d}-{i}", _rows(f"G{n:05d}-{i}", owners, k + n), damage, materials)
            if loan.materials:  # the materials and the applicants' signed 申请书
                _write_materials(inbox, loan)
            built.append(loan)
        if repeat and queued:
            again = queued[sorted(queued)[n % len(queued)]]
            _write_materials(inbox, again)
            built.append(Loan(again.number, again.rows, ["none"] * len(again.rows), True, again.number))
        for loan in built:
            part = _damage(loan.rows, loan.damage, fmt)
            records += part
            rows = _record_count(fmt, part)
            if loan.repeat_of:
                expected["duplicate"] += rows
            elif loan.clean:
                expected["queue"] += rows
            else:
                expected["quarantine"] += rows
        data = _write(fmt, records, nul_padding=n % 2 == 0, authorisation=authorisation)
        path = inbox / f"export-{n}.{fmt}"
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        report = ingest_file(agent.context, agent.context.inbox(fmt), path)
        assert not path.exists()
        assert report.file_error is None, report.file_error
        assert report.records == _record_count(fmt, records), (fmt, report.records, len(records))
        assert report.balanced(), report.rows
        assert report.rows == {"supplement": 0, **expected}, (
            fmt,
            [(x.number, x.damage, x.materials, x.repeat_of) for x in built],
            report.queued,
            report.duplicates,
        )
        stored = agent.store.file_seen(sha)
        assert stored is not None and stored["records"] == report.records
        assert [stored[f"rows_{k}"] for k in ("queued", "supplement", "duplicate", "quarantined")] == [
            report.rows[k] for k in ("queue", "supplement", "duplicate", "quarantine")
        ]
        for loan in built:
            if loan.clean and not loan.repeat_of:
                queued[loan.number] = loan
        totals["exports"] += 1
        totals["records"] += report.records
        for bucket in expected:
            totals[bucket] += report.rows[bucket]

    try:
        check()
    finally:
        agent.close()
    assert totals["exports"] >= EXPORTS * 0.9 and totals["queue"] and totals["duplicate"] and totals["quarantine"]
    record(Result("ingest accounting (generated exports, six readers)", totals["exports"], totals["records"], 0, 0))
