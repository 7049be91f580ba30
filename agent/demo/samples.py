"""The sample exports of three loan systems (config/samples/), built from the sandbox's register.

``python -m agent.demo.samples config/samples`` writes them; a test checks the committed files
still say what this module says. They name real units and owners of the sandbox's seeded
register, so what the demo submits is what the register holds — except where a row is wrong
on purpose (a title number that is not the unit's, a mortgage that does not exist, a seized
unit, broken identifiers, a short fixed-width record).
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import load_checklists
from sandbox import register
from sandbox.samples import buyer, esigned, material_content, resident_id

__all__ = [
    "AUTHORISED_UNTIL",
    "COREBANK_COLUMNS",
    "REVIEWER",
    "corebank_rows",
    "followup_rows",
    "write_materials",
    "write_samples",
]

COREBANK_COLUMNS = [
    "贷款编号",
    "业务类型",
    "不动产单元号",
    "坐落",
    "不动产权证书号",
    "抵押人",
    "证件号码",
    "抵押方式",
    "贷款金额(万元)",
    "最高债权额(万元)",
    "起始日期",
    "到期日期",
    "担保范围",
    "主合同编号",
    "原证明号",
    "变更原因",
    "经办人",
    "电子签名",
    "签署日期",
    "查询授权书编号",
    "授权有效期止",
    "电子签名文件",
    "承诺",
    "询问_真实意思",
    "询问_权属争议",
    "经办人姓名",
    "经办人证件号",
]
OPERATOR = "op-001"
#: the end of the applicants' 查询授权书 in the sample exports (seed 001 §3: signed with the application, valid
#: while the loan is registered); with it on file the agent's pre-flight checks each row against the register
AUTHORISED_UNTIL = "2030-12-31"
#: the bank's staff member acting as 代理人 for the applicants (seed 001 银行作为代理人): name and 居民身份证号码
STAFF = ("李经办", resident_id(901, birth="19880808"))
#: each applicant's answers to the 询问笔录 and their 承诺, as the loan system records them (seed 003 细则 (五))
DECLARED = {"承诺": "是", "询问_真实意思": "是", "询问_权属争议": "否"}
SCOPE = "主债权及利息、违约金、损害赔偿金和实现债权的费用"


def esign_path(loan: str, k: int | str) -> str:
    """Where the signing platform leaves applicant ``k``'s signed 申请书 of ``loan``, relative to the export's
    folder (the profiles' e-signature file column)."""
    return f"esign/{loan}_{k}.pdf"


def write_esignatures(
    folder: Path, signers: list[tuple[str, str, str, str]], *, authority: Any = None, keep: bool = False
) -> int:
    """Each applicant's signed 申请书 (PAdES, :func:`sandbox.samples.esigned`; the sandbox's in-memory e-signature CA
    unless ``authority``) where the export says: ``signers`` are (path relative to ``folder``, loan, name, 证件号码),
    the document signed is that loan's 申请书 (``materials/<loan>_application_form.pdf``); with ``keep`` a file
    already there is left as it is. Returns how many were written."""
    count = 0
    for path, loan, name, number in signers:
        if not path or (keep and (folder / path).exists()):
            continue
        signed = esigned(material_content("application_form", loan), {"name": name, "id_number": number},
                         authority=authority)  # fmt: skip
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(signed)
        count += 1
    return count


def corebank_signers(rows: list[dict[str, str]]) -> list[tuple[str, str, str, str]]:
    """The signers of a core banking export's rows: (file, loan, 抵押人, 证件号码) per row naming a file."""
    return [(r["电子签名文件"], r["贷款编号"], r["抵押人"], r["证件号码"]) for r in rows if r.get("电子签名文件")]


def write_corebank_esignatures(folder: Path, content: bytes, *, authority: Any = None) -> int:
    """The signed 申请书 a core banking export (GB18030 CSV, as :func:`corebank_csv` writes it) names, written
    beside it in ``folder`` where none is yet: what the signing platform leaves for the loan system to export."""
    text = content.decode("gb18030")
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "电子签名文件" not in rows[0]:
        return 0
    return write_esignatures(folder, corebank_signers(rows), authority=authority, keep=True)


def _loc(n: int) -> str:
    return register.location(n)


def mortgage_rows(
    loan: str,
    n: int,
    *,
    amount: str = "",
    maximum: str = "",
    title: str | None = None,
    dates: tuple[str, str] = ("2026/3/5", "2046/3/4"),
    method: str = "一般",
    start_date: str | None = None,
    id_override: str | None = None,
    authorised: bool = False,
    county: register.County = register.CHANGFENG,
) -> list[dict[str, str]]:
    rows = []
    for i, owner in enumerate(register.owners_of(n)):
        rows.append(
            {
                "贷款编号": loan,
                "业务类型": "抵押首次",
                "不动产单元号": register.unit_id(n, county),
                "坐落": register.location(n, county),
                "不动产权证书号": title or register.title_certificate(n, county) or "",
                "抵押人": owner.name,
                "证件号码": id_override or owner.id_number,
                "抵押方式": method,
                "贷款金额(万元)": amount,
                "最高债权额(万元)": maximum,
                "起始日期": start_date or dates[0],
                "到期日期": dates[1],
                "担保范围": SCOPE,
                "主合同编号": f"HT-{loan}",
                "原证明号": "",
                "变更原因": "",
                "经办人": OPERATOR,
                "电子签名": f"ESIG-{loan}-{i + 1}",
                "签署日期": "2026-03-05",
                **_authorisation(loan, authorised),
                "电子签名文件": esign_path(loan, i + 1),
                **DECLARED,
                "经办人姓名": STAFF[0],
                "经办人证件号": STAFF[1],
            }
        )
    return rows


def _authorisation(loan: str, authorised: bool) -> dict[str, str]:
    if not authorised:
        return {"查询授权书编号": "", "授权有效期止": ""}
    return {"查询授权书编号": f"SQ-{loan}", "授权有效期止": AUTHORISED_UNTIL}


def existing_rows(
    loan: str, kind: str, n: int, certificate: str, *, amount: str = "", reason: str = "", authorised: bool = False
) -> list[dict[str, str]]:
    owner = register.owners_of(n)
    signatures = "" if kind == "抵押注销" else ";".join(f"ESIG-{loan}-{i + 1}" for i in range(len(owner)))
    rows = []
    for i, o in enumerate(owner):
        rows.append(
            {
                "贷款编号": loan,
                "业务类型": kind,
                "不动产单元号": register.unit_id(n),
                "坐落": _loc(n),
                "不动产权证书号": register.title_certificate(n) or "",
                "抵押人": o.name,
                "证件号码": o.id_number,
                "抵押方式": "",
                "贷款金额(万元)": amount,
                "最高债权额(万元)": "",
                "起始日期": "",
                "到期日期": "",
                "担保范围": "",
                "主合同编号": "",
                "原证明号": certificate,
                "变更原因": reason,
                "经办人": OPERATOR,
                "电子签名": signatures if i == 0 else "",
                "签署日期": "2026-06-01",
                **_authorisation(loan, authorised),
                "电子签名文件": "" if kind == "抵押注销" else esign_path(loan, i + 1),
                **DECLARED,
                "经办人姓名": STAFF[0],
                "经办人证件号": STAFF[1],
            }
        )
    return rows


#: a mortgagor who owns none of the units the sample exports name (the owner of unit 160)
STRANGER = 160
#: the unit DEMO-014 asks a 登记资料查询 about (two mortgages on it in the seeded register)
QUERIED = 10


def corebank_rows() -> list[dict[str, str]]:
    """The first export of the core banking system: most rows good, some wrong on purpose.

    Every row carries the applicants' 查询授权书 (授权书编号, 有效期止), so the agent's pre-flight checks it against
    the register before sending: the rows a register check foresees (a seized unit, the discharge of a mortgage that
    does not exist, a mortgagor who is not the owner) are held and never sent. The 补正 (DEMO-004: the reviewer
    finds the 主债权合同 scan illegible) and the refusal (DEMO-013: the reviewer finds the contracts disagree) are
    what no register check foresees: the demo scripts them at the centre (:data:`REVIEWER`). DEMO-014 is a
    登记资料查询 row (业务类型 登记资料查询), answered with the centre's sealed 查询结果.
    """
    rows: list[dict[str, str]] = []
    rows += mortgage_rows("DEMO-001", 1, amount="150", authorised=True)
    # two co-owners
    rows += mortgage_rows("DEMO-002", 7, amount="98.50", dates=("2026-03-05", "2036-03-04"), authorised=True)
    rows += mortgage_rows(
        "DEMO-003", 2, maximum="300", method="最高额", dates=("2026年3月5日", "2031年3月4日"), authorised=True
    )
    # the reviewer asks for a clearer 主债权合同 (a 补正 no register check foresees); a new scan answers it
    rows += mortgage_rows("DEMO-004", 3, amount="80", authorised=True)
    # a discharge of a mortgage the register does not hold: held by the pre-flight
    rows += existing_rows("DEMO-005", "抵押注销", 4, "皖(2024)长丰县不动产证明第0009999号", authorised=True)
    # a broken ID number (wrong check digit): quarantined before sending
    bad_id = register.owners_of(9)[0].id_number
    bad_id = bad_id[:-1] + ("0" if bad_id[-1] != "0" else "1")
    rows += mortgage_rows("DEMO-006", 9, amount="60", id_override=bad_id, authorised=True)
    # an impossible date and an amount in words: quarantined, both errors reported at once
    seven = mortgage_rows("DEMO-007", 11, amount="一百万", start_date="2026-13-45", authorised=True)
    rows += seven
    rows += mortgage_rows("DEMO-008", 6, amount="120", authorised=True)  # changed by the follow-up export
    rows += mortgage_rows("DEMO-009", 8, amount="45.5", authorised=True)  # discharged by the follow-up export
    rows += existing_rows(
        "DEMO-010", "抵押变更", 5, register.seed_mortgage_certificate(5), amount="100", reason="借款人部分还款",
        authorised=True,
    )
    # seized: held by the pre-flight
    rows += mortgage_rows("DEMO-011", register.SEIZED_UNIT, amount="70", authorised=True)
    # the mortgagor is not the unit's owner: held by the pre-flight (the centre refuses the authorisation's query)
    stranger = register.owners_of(STRANGER)[0]
    rows += [
        {**r, "抵押人": stranger.name, "证件号码": stranger.id_number}
        for r in mortgage_rows("DEMO-012", 16, amount="65", authorised=True)
    ]
    rows += mortgage_rows("DEMO-013", 17, amount="75", authorised=True)  # the reviewer refuses it (不予登记)
    # a 登记资料查询 before lending (the profile's [authorisation] query_types): the owner's authorisation on file,
    # answered with the centre's sealed 查询结果, verified and stored under the loan, named on a receipt line
    rows += [
        {**r, "业务类型": "登记资料查询", "抵押方式": "", "贷款金额(万元)": "", "起始日期": "", "到期日期": "",
         "担保范围": "", "主合同编号": "", "电子签名文件": "", **{k: "" for k in DECLARED}}
        for r in mortgage_rows("DEMO-014", QUERIED, authorised=True)[:1]
    ]  # fmt: skip
    return rows


#: what the centre's reviewer decides of rows no register check can judge (scripted at the sandbox by the demo):
#: client reference → (stage, script)
REVIEWER: dict[str, tuple[str, dict[str, Any]]] = {
    "DEMO-004-DYSC": ("acceptance", {"outcome": "correction", "items": [
        {"reason": "主债权合同扫描件模糊无法辨认，请重新扫描上传", "pointer": "/materials",
         "material": "main_contract"}]}),
    "DEMO-013-DYSC": ("examination", {"outcome": "refused", "items": [
        {"code": "contracts_disagree", "reason": "抵押合同所载债务人与主债权合同不一致（审查人员认定）"}]}),
}  # fmt: skip


def followup_rows(certificates: dict[str, str]) -> list[dict[str, str]]:
    """The loan system's next export: a change and a discharge of mortgages registered by the first export
    (their 证明号 read back from the receipts). A loan with no certificate yet (a first pass cut short on a busy
    machine) has no row: the demo's check then names it as not having reached its end, rather than a crash."""
    rows = []
    if "DEMO-008" in certificates:
        rows += existing_rows(
            "DEMO-008", "抵押变更", 6, certificates["DEMO-008"], amount="100", reason="借款人部分还款", authorised=True
        )
    if "DEMO-009" in certificates:
        rows += existing_rows("DEMO-009", "抵押注销", 8, certificates["DEMO-009"], authorised=True)
    return rows


def corebank_csv(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, COREBANK_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("gb18030")


PRESALE_COLUMNS = [
    "借据号",
    "登记事项",
    "单元号",
    "房屋坐落",
    "权证号",
    "借款人",
    "借款人证件号",
    "开发商",
    "开发商信用代码",
    "备案合同号",
    "成交价(元)",
    "贷款金额(元)",
    "放款日",
    "到期日",
    "借款合同号",
    "预告证明号",
    "客户经理",
    "签名编号",
    "签约日期",
    "签名文件",
    "承诺",
    "询问_真实意思",
    "询问_权属争议",
]
#: the declaration's cells of a presale row after its signature files: 承诺, then the two 询问笔录 answers
PRESALE_DECLARED = ["是", "是", "否"]


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def presale_rows() -> list[list[Any]]:
    dev = register.DEVELOPER
    rows: list[list[Any]] = []

    def notice(loan: str, kind: str, n: int, signature: str, person: Any) -> list[Any]:
        return [
            loan,
            kind,
            register.unit_id(n),
            _loc(n),
            None,
            person.name,
            person.id_number,
            dev.name,
            dev.id_number,
            f"YS-{loan}",
            "2,000,000.00",
            "1,500,000.00",
            "2026年3月5日",
            "2046年3月4日",
            f"JK-{loan}",
            None,
            "op-002",
            signature,
            "2026年3月5日",
            ";".join(esign_path(loan, s.rsplit("-", 1)[1]) for s in signature.split(";")),
            *PRESALE_DECLARED,
        ]

    # 预告 + 抵押预告 as two rows of one loan: applied for together, two certificates; the buyer signs on the
    # first row, the developer (a seller) on the second, in the order of the applicants (mortgagors, sellers)
    rows.append(notice("PRE-001", "预告登记", 243, "ESIG-PRE-001-B", buyer(243)))
    rows.append(notice("PRE-001", "抵押权预告登记", 243, "ESIG-PRE-001-D", buyer(243)))
    # a purchase notice alone (the buyer and the developer sign)
    rows.append(notice("PRE-003", "预告登记", 245, "ESIG-PRE-003-B;ESIG-PRE-003-D", buyer(245)))
    # conversion of a 抵押权预告 once the buyer holds the title; the ID typed in full-width digits
    owner = register.owners_of(281)[0]
    rows.append(
        [
            "PRE-002",
            "预告转本登记",
            register.unit_id(281),
            _loc(281),
            register.title_certificate(281),
            owner.name,
            _fullwidth(owner.id_number),
            None,
            None,
            None,
            None,
            "1,500,000.00",
            "2026年3月5日",
            "2046年3月4日",
            "JK-PRE-002",
            register.notice_certificate(281),
            "op-002",
            "ESIG-PRE-002-1",
            "2026年3月5日",
            esign_path("PRE-002", 1),
            *PRESALE_DECLARED,
        ]
    )
    # a unit number one character short: quarantined
    bad = notice("PRE-004", "预告登记", 247, "ESIG-PRE-004-B;ESIG-PRE-004-D", buyer(247))
    bad[2] = register.unit_id(247)[:-1]
    rows.append(bad)
    return rows


def presale_signers(rows: list[list[Any]]) -> list[tuple[str, str, str, str]]:
    """The signers of the presale workbook's rows: (file, loan, name, 证件号码); a file ending ``_D`` is the
    developer's (开发商), any other the borrower's (借款人: the buyer, or the owner converting)."""
    at = {name: i for i, name in enumerate(PRESALE_COLUMNS)}
    found = []
    for row in rows:
        for path in str(row[at["签名文件"]] or "").split(";"):
            if not path:
                continue
            who = ("开发商", "开发商信用代码") if path.endswith("_D.pdf") else ("借款人", "借款人证件号")
            number = str(row[at[who[1]]]).translate({c + 0xFEE0: c for c in range(0x21, 0x7F)})  # full-width digits
            found.append((path, str(row[at["借据号"]]), str(row[at[who[0]]]), number))
    return found


def presale_xlsx(rows: list[list[Any]]) -> bytes:
    from datetime import datetime

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "按揭台账"
    ws.append(PRESALE_COLUMNS)
    for row in rows:
        ws.append(row)
    wb.properties.created = wb.properties.modified = datetime(2026, 3, 5, 9, 0)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


LEGACY_WIDTHS = [
    ("DKBH", 16),
    ("YWLX", 2),
    ("BDCDYH", 28),
    ("YZMH", 40),
    ("DYR", 20),
    ("ZJHM", 18),
    ("JE", 14),
    ("SY", 30),
    ("JBR", 8),
    ("RQ", 8),
    ("QM", 24),
    ("QMWJ", 24),
    ("CN", 2),
    ("XW1", 2),
    ("XW2", 2),
]
#: the declaration's fields of a legacy record: 承诺 (CN) and the two 询问笔录 answers (XW1, XW2)
LEGACY_DECLARED = {"CN": "是", "XW1": "是", "XW2": "否"}


def _fixed(values: dict[str, str]) -> bytes:
    out = b""
    for name, width in LEGACY_WIDTHS:
        raw = values.get(name, "").encode("gb18030")
        if len(raw) > width:
            raise ValueError(f"{name}: {values.get(name)!r} is longer than {width} bytes")
        out += raw + b" " * (width - len(raw))
    return out


def legacy_records() -> list[bytes]:
    lines = []
    for loan, n in (("LEG-001", 15), ("LEG-002", 25)):
        owner = register.owners_of(n)[0]
        lines.append(
            _fixed(
                {
                    "DKBH": loan,
                    "YWLX": "ZX",
                    "BDCDYH": register.unit_id(n),
                    "YZMH": register.seed_mortgage_certificate(n),
                    "DYR": owner.name,
                    "ZJHM": owner.id_number,
                    "JBR": OPERATOR,
                    "RQ": "20260601",
                    **LEGACY_DECLARED,
                }
            )
        )
    owner = register.owners_of(100)[0]
    lines.append(
        _fixed(
            {
                "DKBH": "LEG-003",
                "YWLX": "QD",
                "BDCDYH": register.unit_id(100),
                "YZMH": register.seed_mortgage_certificate(100),
                "DYR": owner.name,
                "ZJHM": owner.id_number,
                "JE": "800000.00",
                "SY": "债权确定期间届满",
                "JBR": OPERATOR,
                "RQ": "20260601",
                "QM": "ESIG-LEG-003-1",
                "QMWJ": esign_path("LEG-003", 1),
                **LEGACY_DECLARED,
            }
        )
    )
    lines.append(_fixed({"DKBH": "LEG-004", "YWLX": "ZX"})[:60])  # a record cut short
    return lines


def legacy_signers() -> list[tuple[str, str, str, str]]:
    """The signers of the legacy batch: LEG-003's owner (the discharges are the bank's alone)."""
    owner = register.owners_of(100)[0]
    return [(esign_path("LEG-003", 1), "LEG-003", owner.name, owner.id_number)]


def legacy_dat(lines: list[bytes]) -> bytes:
    return b"\r\n".join(lines) + b"\r\n"


SAMPLES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "corebank_gb18030.csv": ("corebank_csv", lambda: corebank_csv(corebank_rows())),
    "presale_loans.xlsx": ("presale_xlsx", lambda: presale_xlsx(presale_rows())),
    "legacy_batch.dat": ("legacy_fixed", lambda: legacy_dat(legacy_records())),
}

#: each sample's signers (file, loan, name, 证件号码): the signed 申请书 its rows name (:func:`write_esignatures`)
SAMPLE_SIGNERS: dict[str, Callable[[], list[tuple[str, str, str, str]]]] = {
    "corebank_gb18030.csv": lambda: corebank_signers(corebank_rows()),
    "presale_loans.xlsx": lambda: presale_signers(presale_rows()),
    "legacy_batch.dat": legacy_signers,
}


#: the all-valid sample (config/samples/valid/, profile corebank_csv): first mortgages on free units of the
#: sandbox's register, operator op-001 — every row registers as it is (docs/install.md, the walkthrough)
VALID_LOANS = {"VAL-001": 101, "VAL-002": 102, "VAL-003": 103, "VAL-004": 104}


def valid_rows() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for loan, n in VALID_LOANS.items():
        rows += mortgage_rows(loan, n, amount="120")
    return rows


def write_valid_sample(folder: Path) -> list[Path]:
    """``corebank_valid.csv`` and its materials (``materials/<loan>_<code>.pdf``): what an inbox receives."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corebank_valid.csv").write_bytes(corebank_csv(valid_rows()))
    for loan in VALID_LOANS:
        write_materials(folder / "materials", loan, "mortgage_first")
    return [folder / "corebank_valid.csv", *sorted((folder / "materials").iterdir())]


def write_samples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (_, make) in SAMPLES.items():
        (folder / name).write_bytes(make())
        written.append(folder / name)
    return written + write_valid_sample(folder / "valid")


#: which business type each sample loan's materials are for
def loans_by_type() -> dict[str, str]:
    kinds = {"抵押首次": "mortgage_first", "抵押变更": "mortgage_change", "抵押注销": "mortgage_discharge"}
    found = {r["贷款编号"]: kinds[r["业务类型"]] for r in corebank_rows() if r["业务类型"] in kinds}  # not queries
    found.update(
        {
            "PRE-001": "purchase_and_mortgage_notice",
            "PRE-002": "mortgage_notice_conversion",
            "PRE-003": "purchase_notice",
            "PRE-004": "purchase_notice",
            "LEG-001": "mortgage_discharge",
            "LEG-002": "mortgage_discharge",
            "LEG-003": "maximum_determination",
        }
    )
    return found


def write_materials(folder: Path, loan_no: str, kind: str, *, skip: tuple[str, ...] = ()) -> int:
    """A scanned-PDF stand-in for every checklist item of ``kind`` (``<loan>_<code>.pdf``)."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for item in load_checklists()[kind].items:
        if item.code in skip:
            continue
        (folder / f"{loan_no}_{item.code}.pdf").write_bytes(material_content(item.code, loan_no))
        count += 1
    return count


if __name__ == "__main__":
    for path in write_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "config/samples")):
        print(path)
