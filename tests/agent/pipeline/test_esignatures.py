"""The agent checks each applicant's e-signature before sending (seed 003 细则 (四)): the signed 申请书 a
column names is declared as a material and referred to from the declaration when it holds; a forged,
mis-addressed, untrusted or wrong-signer one holds the row with a Chinese reason naming file, row and
column. The 询问笔录 answers and the 承诺 come from the export's columns."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.demo import samples
from agent.mapping import map_records
from agent.mapping.profile import declaration_problems, parse_profile, profile_source
from agent.pipeline.build import BuildContext, BuiltApplication, build
from agent.state.blobs import BlobStore
from config import load_checklists
from connectors.readers import SourceRecord
from sandbox import register
from sandbox.esign import EsignAuthority, memory_authority
from sandbox.samples import esigned, material_content
from tests import factories as f

DECLARATION = """[declaration]
operator = "经办人"
esignatures = "电子签名文件"
commitment = "承诺"
[[declaration.inquiry]]
code = "true_intent"
question = "申请登记事项是否为申请人的真实意思表示"
column = "询问_真实意思"
[[declaration.inquiry]]
code = "property_disputed"
question = "申请登记的不动产是否存在争议"
column = "询问_权属争议"
"""


EXTRA = ["电子签名文件", "承诺", "询问_真实意思", "询问_权属争议"]


def _profile() -> Any:
    text, _ = profile_source("corebank_csv")
    head = text[: text.index("# The applicants' own declaration")]
    tail = text[text.index("[materials]") :]
    return parse_profile(head + DECLARATION + tail, "test.toml")


def _build(inbox: Path, rows: list[dict[str, str]], cas: list[str] | None) -> BuiltApplication:
    profile = _profile()
    records = [SourceRecord(i + 2, r) for i, r in enumerate(rows)]
    (mapped,) = map_records(records, profile, "export.csv")
    ctx = BuildContext("中国示例银行股份有限公司合肥分行", f.BANK_USCC, None, load_checklists(),
                       BlobStore(inbox / "blobs"), esign_cas=cas)  # fmt: skip
    return build(mapped, profile, ctx, inbox)


def _rows(inbox: Path, loan: str, n: int, signed: list[bytes] | None = None) -> list[dict[str, str]]:
    """The loan's rows with the declaration's columns; each owner's signed 申请书 written under esign/."""
    samples.write_materials(inbox / "materials", loan, "mortgage_first")
    rows = samples.mortgage_rows(loan, n, amount="150")
    (inbox / "esign").mkdir(exist_ok=True)
    form = material_content("application_form", loan)
    for i, (row, owner) in enumerate(zip(rows, register.owners_of(n), strict=True)):
        name = f"esign/{loan}_{i + 1}.pdf"
        (inbox / name).write_bytes(signed[i] if signed else esigned(form, owner))
        row.update({"电子签名文件": name, "承诺": "是", "询问_真实意思": "是", "询问_权属争议": "否"})
    return rows


def _csv(rows: list[dict[str, str]]) -> bytes:
    """The core banking export with the declaration's four columns (GB18030, as the loan system writes it)."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, list(dict.fromkeys([*samples.COREBANK_COLUMNS, *EXTRA])), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("gb18030")


def _messages(built: BuiltApplication) -> list[str]:
    return [f"{e.row}|{e.field}|{e.value}|{e.expected}" for e in built.errors]


def test_a_valid_signature_is_declared_as_a_material_and_referenced(tmp_path: Path) -> None:
    built = _build(tmp_path, _rows(tmp_path, "ES-1", 7), [memory_authority().ca_pem])  # unit 7: two co-owners
    assert built.ok, _messages(built)
    declaration = built.payload["declaration"]
    assert [s["party"] for s in declaration["signatures"]] == ["/mortgagors/0", "/mortgagors/1"]
    materials = {m["id"]: m for m in built.payload["materials"]}
    for k, sig in enumerate(declaration["signatures"], 1):
        assert sig["material_id"] == f"esign{k}" and materials[sig["document_id"]]["code"] == "application_form"
        content = (tmp_path / f"esign/ES-1_{k}.pdf").read_bytes()
        assert materials[sig["material_id"]]["sha256"] == hashlib.sha256(content).hexdigest()
    assert {q["question_code"]: q["answer"] for q in declaration["inquiry"]} == {
        "true_intent": "是",
        "property_disputed": "否",
    }
    assert "signature_id" not in str(declaration)  # no literal for the bank either
    # the signed PDFs travel as materials (uploaded from the blob store), never inside the JSON body
    assert {m["id"] for m in built.materials} >= {"esign1", "esign2"}


def _refused(tmp_path: Path, loan: str, n: int, signed: bytes) -> str:
    built = _build(tmp_path, _rows(tmp_path, loan, n, [signed]), [memory_authority().ca_pem])
    assert not built.ok
    messages = _messages(built)
    assert len(messages) == 1, messages
    message = messages[0]
    assert message.startswith(f"2|电子签名文件|esign/{loan}_1.pdf|电子签名文件 esign/{loan}_1.pdf（/mortgagors/0）")
    return message


def test_a_forged_signature_holds_the_row(tmp_path: Path) -> None:
    owner = register.owners_of(1)[0]
    signed = bytearray(esigned(material_content("application_form", "ES-F"), owner))
    signed[signed.index(b"ApplicantSignature", 700)] = ord("B")
    assert "电子签名文件在签名后被改动" in _refused(tmp_path, "ES-F", 1, bytes(signed))


def test_a_signature_over_another_loans_form_holds_the_row(tmp_path: Path) -> None:
    owner = register.owners_of(1)[0]
    other = esigned(material_content("application_form", "ES-OTHER"), owner)
    assert "电子签名不是对所引用文件的签名" in _refused(tmp_path, "ES-M", 1, other)


def test_a_signature_by_an_untrusted_ca_holds_the_row(tmp_path: Path) -> None:
    owner = register.owners_of(1)[0]
    stranger = EsignAuthority.generate("别处的电子认证服务")
    signed = esigned(material_content("application_form", "ES-U"), owner, authority=stranger)
    assert "电子签名证书不是受信任的电子认证机构签发" in _refused(tmp_path, "ES-U", 1, signed)


def test_a_signature_under_an_expired_certificate_holds_the_row_as_expired(tmp_path: Path) -> None:
    owner = register.owners_of(1)[0]
    start = datetime.now(UTC) - timedelta(days=60)
    signed = memory_authority().sign(material_content("application_form", "ES-X"), name=owner.name,
                                     id_number=owner.id_number, valid_from=start, valid_days=30)  # fmt: skip
    message = _refused(tmp_path, "ES-X", 1, signed)
    assert "电子签名证书不在有效期内" in message and "过期" in message and "名称相同" not in message


def test_a_signature_by_someone_else_holds_the_row_and_shows_ids_masked(tmp_path: Path) -> None:
    owner = register.owners_of(1)[0]
    signed = esigned(material_content("application_form", "ES-W"), f.person("李四", seq=778))
    message = _refused(tmp_path, "ES-W", 1, signed)
    assert "电子签名人不是所列申请人" in message and owner.id_number not in message


def test_a_missing_answer_or_file_is_named_by_its_column(tmp_path: Path) -> None:
    rows = _rows(tmp_path, "ES-A", 1)
    rows[0]["询问_权属争议"] = ""
    rows[0]["电子签名文件"] = "esign/nowhere.pdf"
    messages = _messages(_build(tmp_path, rows, [memory_authority().ca_pem]))
    assert any("|询问_权属争议||" in m and "询问笔录" in m for m in messages), messages
    assert any("|电子签名文件|esign/nowhere.pdf|" in m for m in messages), messages


def test_a_commitment_not_given_is_one_error_on_its_own_column(tmp_path: Path) -> None:
    """承诺 否 (or empty): one error on the 承诺 column — the model's own refusal of the declaration was reported as
    well, on the 经办人 column (the first cell under /declaration), sending staff to the wrong cell."""
    for loan, answer in (("ES-C1", "否"), ("ES-C2", "")):
        rows = _rows(tmp_path, loan, 1)
        rows[0]["承诺"] = answer
        messages = _messages(_build(tmp_path, rows, [memory_authority().ca_pem]))
        assert messages == [f"2|承诺|{answer}|是：申请人已签署真实性承诺 (承诺)"], messages


def test_a_profile_that_does_not_map_the_declaration_has_gaps_in_chinese() -> None:
    assert declaration_problems(_profile()) == []
    text, _ = profile_source("legacy_fixed")
    assert declaration_problems(parse_profile(text, "legacy.toml")) == []  # every shipped profile maps it
    text = text[: text.index("# The applicants' own declaration")] + text[text.index("[materials]") :]
    gaps = declaration_problems(parse_profile(text, "legacy.toml"))
    assert any("询问笔录" in g for g in gaps) and any("承诺" in g for g in gaps) and any("电子签名" in g for g in gaps)
    # the applicants sign the 申请书 or the 询问笔录, nothing else: the centre refuses a signature over another material
    profile = _profile()
    contract = profile.model_copy(update={"declaration": profile.declaration.model_copy(
        update={"signed_document": "main_contract"})})  # fmt: skip
    (gap,) = declaration_problems(contract)
    assert "signed_document = 'main_contract'" in gap and "申请书或询问笔录" in gap


def test_the_signed_documents_go_through_the_agent_to_the_centre_that_checks_them(centre: Any, tmp_path: Path) -> None:
    """End to end: an inbox whose profile maps the declaration from the export; the agent trusts the e-signature
    CA the enrolment bundle named, uploads each signed PDF as a material, and the centre (checking them on receipt)
    registers the loan; the row with another person's signature never leaves the branch."""
    from tests.agent.conftest import drop, make_branch

    text, _ = profile_source("corebank_csv")
    profile = tmp_path / "declared.toml"
    profile.write_text(
        text[: text.index("# The applicants' own declaration")] + DECLARATION + text[text.index("[materials]") :],
        encoding="utf-8",
    )
    inbox_spec = {"name": "declared", "path": "inbox/declared", "profile": str(profile), "completion": "rename"}
    branch = make_branch(centre, tmp_path / "branch", inboxes=[inbox_spec])
    config = branch.config.read_text(encoding="utf-8")
    assert "esign_ca_file" in config  # the bundle carried the centre's e-signature CA
    inbox = branch.root / "inbox" / "declared"
    rows = _rows(inbox, "ES-E2E", 7)  # two co-owners, each signed
    wrong = esigned(material_content("application_form", "ES-BAD"), f.person("李四", seq=779))
    rows += _rows(inbox, "ES-BAD", 1, [wrong])
    agent = branch.agent()
    try:
        drop(inbox, "export.csv", _csv(rows))
        assert agent.run_until_idle(timeout=90)
        apps = {a.reference: a for a in agent.store.applications()}
        assert apps["ES-E2E-DYSC"].stage == "done"
        assert "ES-BAD-DYSC" not in apps or apps["ES-BAD-DYSC"].stage == "quarantined"
        [held] = [q for q in agent.store.quarantined() if q["loan_no"] == "ES-BAD"]
        assert any("电子签名人不是所列申请人" in str(e) for e in held["errors"])
        record = centre.centre.find_application(branch.institution_id, "ES-E2E-DYSC")
        assert {"esign1", "esign2"} <= set(record.materials_received)
        assert [s.material_id for s in record.application.declaration.signatures] == ["esign1", "esign2"]
    finally:
        agent.close()
