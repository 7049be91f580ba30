"""登记资料查询 (issue 24 item 1): refused at the agent AND at the centre for each bad authorisation, with its reason;
every query answered is in the centre's trace, signed, verified and kept by the agent."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import sdk
from agent.cli import app as cli
from agent.pipeline.queries import read_batch, run_query, stored_result
from sandbox import register
from sdk.models import PropertyQuery
from sdk.privacy import mask_name

from ..conftest import SECRET, Branch

UNIT = 10  # a seeded unit with two mortgages on it


def _query(n: int = UNIT, **auth: Any) -> PropertyQuery:
    owner = register.owners_of(n)[0]
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "reference": "SQ-001",
        "applicant": owner.model_dump(mode="json"),
        "signed_at": (now - timedelta(days=2)).isoformat(),
        "signature_id": "esig-001",
        "valid_until": (now + timedelta(days=30)).date().isoformat(),
        **auth,
    }
    return PropertyQuery.model_validate(
        {"unit_id": register.unit_id(n), "operator_id": "op-001", "authorisation": data}
    )


def _trace(branch: Branch, query: PropertyQuery | None = None) -> list[dict[str, Any]]:
    """The centre's trace of this branch's queries (of ``query``'s authorisation only, when given)."""
    trace = branch.centre.centre.query_trace(institution_id=branch.institution_id)
    if query is None:
        return trace
    return [t for t in trace if t["authorisation_reference"] == query.authorisation.reference]


BAD = {
    "expired": ({"valid_until": (date.today() - timedelta(days=1)).isoformat()}, "authorisation_expired", 422),
    "future-dated": (
        {"signed_at": "2099-01-01T00:00:00+00:00", "valid_until": "2099-12-31"},
        "authorisation_future_dated",
        422,
    ),
    "wrong purpose": ({"purpose": "贷后管理"}, "authorisation_wrong_purpose", 422),
}


def test_a_bad_authorisation_is_refused_at_the_agent_and_at_the_centre(branch: Branch) -> None:
    agent = branch.agent()  # one branch for every case (each its own 授权书编号, its own trace): one centre started
    try:
        for case in sorted(BAD):
            auth, code, status = BAD[case]
            q = _query(UNIT, reference=f"SQ-BAD-{case}", **auth)
            here = run_query(agent.context, q)
            assert here.outcome == "refused_here" and [c for c, _ in here.reasons] == [code]
            assert _trace(branch, q) == []  # never sent
            # the same query sent anyway (a bank's own system on the SDK): the centre refuses it with the same reason
            with pytest.raises(sdk.ValidationFailed) as exc:
                agent.context.centre.query_property(q, idempotency_key=f"direct:{case}")
            assert exc.value.status == status and code in [e.code for e in exc.value.errors]
            trace = _trace(branch, q)
            assert [(t["outcome"], [r["code"] for r in t["reasons"]]) for t in trace] == [("refused", [code])]
            assert trace[0]["shown"] is None and trace[0]["query_id"] is None
    finally:
        agent.close()


def test_a_non_owner_authorisation_is_refused_at_the_agent_and_at_the_centre(branch: Branch) -> None:
    stranger = register.owners_of(UNIT + 1)[0]  # the owner of another unit
    q = _query(applicant=stranger.model_dump(mode="json"))
    owners = {o.id_number for o in register.owners_of(UNIT)}  # the 权利人 on the title certificate the staff checked
    agent = branch.agent()
    try:
        here = run_query(agent.context, q, owner_ids=owners)
        assert here.outcome == "refused_here"
        assert here.reasons == [("authorisation_not_owner", "授权人不是该不动产的权利人")]
        assert _trace(branch) == []
        centre = run_query(agent.context, q)  # owners unknown here: the centre's register decides
        assert centre.outcome == "refused_by_centre"
        assert [c for c, _ in centre.reasons] == ["authorisation_not_owner"]
        assert [t["outcome"] for t in _trace(branch)] == ["refused"]
    finally:
        agent.close()


def test_an_answered_query_is_signed_verified_stored_and_in_the_centres_trace(branch: Branch) -> None:
    agent = branch.agent()
    try:
        by_unit = run_query(agent.context, _query())
        by_title = run_query(agent.context, _query(13).model_copy(
            update={"unit_id": None, "title_certificate": register.title_certificate(13)}))  # fmt: skip
        by_location = run_query(
            agent.context, _query(14).model_copy(update={"unit_id": None, "location": register.location(14)})
        )
        assert [o.outcome for o in (by_unit, by_title, by_location)] == ["answered"] * 3
        assert by_unit.result and by_unit.result.mortgaged and by_unit.result.signature is not None
        assert by_title.result and by_title.result.seized  # the seeded seized unit
        assert by_location.result and by_location.result.objection
        kept = stored_result(agent.context, by_unit.result.query_id)
        assert kept == by_unit.result
        audit = [json.loads(line) for line in (branch.root / "var" / "audit.log").read_text().splitlines()]
        answered = [a for a in audit if a["action"] == "property.query" and a["outcome"] == "answered"]
        assert len(answered) == 3 and answered[0]["detail"]["authorisation"] == "SQ-001"
    finally:
        agent.close()
    trace = _trace(branch)
    assert [(t["outcome"], t["key_kind"]) for t in trace] == [
        ("answered", "unit_id"), ("answered", "title_certificate"), ("answered", "location")
    ]  # fmt: skip
    first = trace[0]
    assert first["query_id"] == by_unit.result.query_id and first["operator_id"] == "op-001"
    assert first["purpose"] == "mortgage" and first["authorisation_reference"] == "SQ-001"
    assert sorted(r["rank"] for r in first["shown"]["rights"] if r["kind"] == "mortgage") == [1, 2]
    owner = register.owners_of(UNIT)[0]
    assert owner.id_number not in json.dumps(trace, ensure_ascii=False)  # the authoriser is masked in the trace
    # the centre's admin lists and exports the trace
    token = branch.centre.centre.create_admin_token("test")
    headers = {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{branch.centre.url}/admin/v1/property-queries", headers=headers)
    assert listed.status_code == 200 and len(listed.json()) == 3
    exported = httpx.get(f"{branch.centre.url}/admin/v1/property-queries?format=csv", headers=headers)
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [r["query_id"] for r in rows] == [t["query_id"] for t in trace]
    assert httpx.get(f"{branch.centre.url}/admin/v1/property-queries").status_code == 401
    # since as an admin types it, compared as a time (a +08:00 time or 2026/11/30 compared as text chose wrong rows)
    china = datetime.now(UTC).astimezone(timezone(timedelta(hours=8)))
    url = f"{branch.centre.url}/admin/v1/property-queries"
    for since, count in ((china.strftime("%Y/%m/%d"), 3), ((china + timedelta(days=1)).strftime("%Y年%m月%d日"), 0),
                         ((china - timedelta(hours=1)).isoformat(timespec="minutes"), 3),
                         ((china + timedelta(hours=1)).isoformat(timespec="minutes"), 0)):  # fmt: skip
        got = httpx.get(url, params={"since": since}, headers=headers)
        assert got.status_code == 200 and len(got.json()) == count, (since, got.text)
    bad = httpx.get(url, params={"since": "yesterday"}, headers=headers)
    assert bad.status_code == 422 and "应为日期或时间" in bad.text


def test_a_query_result_with_a_broken_seal_is_refused(branch: Branch) -> None:
    """A signed answer altered does not verify; the centre's sealed 查询结果 altered after sealing (its metadata
    re-signed to match the altered file, so only the seal tells): the agent refuses the answer, keeps nothing and
    raises an alert."""
    q = _query()
    centre = branch.centre.centre
    agent = branch.agent()
    try:
        ctx = agent.context
        answer = ctx.centre.query_property(q, idempotency_key="broken-seal")  # what run_query will be answered
        assert answer.document_id
        # the signed answer itself, altered, does not verify
        forged = answer.model_copy(update={"seized": True})
        with pytest.raises(sdk.SignatureError):
            sdk.certificates.verify_query_result(forged, ctx.trust)
        office = centre.notices
        drawn = office.content(answer.document_id)  # drawn and sealed
        assert drawn is not None
        meta, content = drawn
        at = content.index(b"(D:") + 5
        tampered = content[:at] + bytes([content[at] ^ 1]) + content[at + 1 :]  # one digit of a date, inside the seal
        doc = meta.model_copy(update={"sha256": hashlib.sha256(tampered).hexdigest(), "size": len(tampered)})
        signed = doc.model_dump(mode="json")
        centre.store.execute(
            "UPDATE notices SET metadata = ?, signature = ?, content = ? WHERE id = ?",
            json.dumps(signed, ensure_ascii=False), json.dumps(office.keys.sign_detached(signed)), tampered,
            answer.document_id,
        )  # fmt: skip
        refused = run_query(ctx, q, idempotency_key="broken-seal", document=True)
        assert refused.outcome == "unverified" and refused.document is None
        assert refused.reasons and all(code == "document_rejected" for code, _ in refused.reasons)
        assert stored_result(ctx, answer.query_id) is None  # nothing kept
        assert "the seal is broken: the signed content was changed" in [r for _, r in refused.reasons]
        assert not [k for k in ctx.documents.keys() if "查询结果" in k]  # noqa: SIM118 (a store, not a dict)
        assert any(a["kind"] == f"query:{answer.query_id}" for a in ctx.store.alerts())
        # the genuine document is accepted and stored
        good = run_query(ctx, _query(13), document=True)
        assert good.outcome == "answered" and good.document and Path(good.document).is_file()
        # a branch's query row (总对总: a head office acts for its branches) keeps it beside that branch's
        # certificates, <branch>/<loan>/, not in a loan folder shared by every branch
        kept = run_query(ctx, _query(14), document=True, loan_no="FX-001", branch="肥西支行")
        assert kept.outcome == "answered" and kept.document and Path(kept.document).is_file()
        assert (Path(kept.document).parent.parent.name, Path(kept.document).parent.name) == ("肥西支行", "FX-001")
    finally:
        agent.close()


def test_a_batch_file_accounts_for_every_row(branch: Branch, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = register.owners_of(UNIT)[0]
    good = _query()
    header = [
        "不动产单元号",
        "授权书编号",
        "授权人姓名",
        "授权人证件号码",
        "签署时间",
        "有效期止",
        "授权用途",
        "电子签名",
    ]
    signed = good.authorisation.signed_at.isoformat()
    until = str(good.authorisation.valid_until)
    lines = [
        [register.unit_id(UNIT), "SQ-B1", owner.name, owner.id_number, signed, until, "mortgage", "e1"],
        [register.unit_id(UNIT), "SQ-B2", owner.name, owner.id_number, signed, "2020-01-01", "mortgage", "e2"],
        [register.unit_id(UNIT), "SQ-B3", owner.name, "110101199003077777", signed, until, "mortgage", "e3"],
    ]
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *lines])
    batch = tmp_path / "inbox" / "queries.csv"  # a loan-system export: input, allowed to hold names
    batch.parent.mkdir()
    batch.write_bytes(buf.getvalue().encode("gb18030"))
    rows = read_batch(batch, default_operator="op-001")
    assert [line for line, *_ in rows] == [2, 3, 4]
    bad = rows[2][3]
    assert len(bad) == 1 and bad[0][0] == "授权人证件号码" and "1101**********7777" in bad[0][1]
    assert "第 4 行" in bad[0][1] and "应为有效的居民身份证号码" in bad[0][1]
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    out = CliRunner().invoke(cli, ["query", "--batch", str(batch), "--json", "--config", str(branch.config)])
    assert out.exit_code == 1, out.output
    got = json.loads(out.output)
    assert [(o["query"], o["outcome"]) for o in got] == [
        ("queries.csv:2", "answered"), ("queries.csv:3", "refused_here"), ("queries.csv:4", "invalid")
    ]  # fmt: skip
    assert got[1]["reasons"][0]["code"] == "authorisation_expired"
    assert owner.id_number not in out.output
    show = ["query", "--show", got[0]["result"]["query_id"], "--config", str(branch.config)]
    shown = CliRunner().invoke(cli, [*show, "--json"])  # for machines (the readable view is the default)
    assert shown.exit_code == 0 and json.loads(shown.output)["mortgaged"] is True
    assert json.loads(shown.output)["document"] == got[0]["document"] and Path(got[0]["document"]).is_file()
    assert [t["authorisation_reference"] for t in _trace(branch)] == ["SQ-B1"]
    # branch staff read a kept 查询结果 with Chinese labels, the right holders masked
    readable = CliRunner().invoke(cli, show, env={"COLUMNS": "200"})
    assert readable.exit_code == 0 and not readable.output.lstrip().startswith("{"), readable.output
    lines = [line.split() for line in readable.output.splitlines()]
    assert ["查询编号", got[0]["result"]["query_id"]] in [[w.strip("　") for w in line] for line in lines]
    for said in ("抵押　　　　　  是（顺位 1, 2）", "查封　　　　　  否", "授权书编号　　  SQ-B1", "权利及限制：3 项"):
        assert said in readable.output, readable.output
    assert "抵押权 │ 1" in readable.output and "所有权" in readable.output and "（已验章）" in readable.output
    assert owner.name not in readable.output and mask_name(owner.name) in readable.output


def test_regbridge_query_for_one_unit(branch: Branch, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = register.owners_of(UNIT)[0]
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    common = [
        "query", "--auth-ref", "SQ-C1", "--authoriser-name", owner.name, "--authoriser-id", owner.id_number,
        "--signature-id", "e-c1", "--config", str(branch.config),
    ]  # fmt: skip
    now = datetime.now(UTC)
    ok = CliRunner().invoke(
        cli,
        [*common, "--unit", register.unit_id(UNIT), "--signed-at", (now - timedelta(hours=1)).isoformat(),
         "--valid-until", (now + timedelta(days=10)).strftime("%Y-%m-%d")],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "查询结果" in ok.output and "已抵押" in ok.output
    assert "抵押权 顺位1" in ok.output and "所有权" in ok.output  # the rights in the words staff read
    # the sealed 查询结果 (权属查询证明), verified, is in the document store: the line says where
    where = Path(ok.output.split("查询结果证明（已验章）存放于 ")[1].split()[0])
    sidecar = json.loads(where.with_suffix(".json").read_text(encoding="utf-8"))
    assert where.read_bytes().startswith(b"%PDF") and sidecar["kind"] == "query_result"
    assert sidecar["unit_ids"] == [register.unit_id(UNIT)] and "seal" in sidecar["verified"]
    future = CliRunner().invoke(
        cli, [*common, "--unit", register.unit_id(UNIT), "--signed-at", "2099-01-01T00:00:00+00:00"]
    )
    assert future.exit_code == 1 and "本机拒绝" in future.output and "晚于当前时间" in future.output
    assert [t["outcome"] for t in _trace(branch)] == ["answered"]
    # --branch: asked as a branch of [branches] (behind a platform its USCC; here its folder); an unknown one
    # is refused naming the known ones, nothing sent
    with branch.config.open("a", encoding="utf-8") as f:
        f.write('\n[branches."肥西支行"]\ninstitution_name = "肥西支行"\ninstitution_uscc = "91340123MA2N000001"\n')
    signed = ["--signed-at", (now - timedelta(hours=1)).isoformat(), "--valid-until", "2099-01-01"]
    unknown = CliRunner().invoke(cli, [*common, "--unit", register.unit_id(UNIT), *signed, "--branch", "长丰支行"])
    assert unknown.exit_code == 2 and "未知的支行" in unknown.output and "肥西支行" in unknown.output, unknown.output
    assert len(_trace(branch)) == 1
    as_branch = CliRunner().invoke(
        cli, [*common, "--auth-ref", "SQ-C2", "--unit", register.unit_id(UNIT), *signed, "--branch", "肥西支行"]
    )
    assert as_branch.exit_code == 0, as_branch.output
    kept = Path(as_branch.output.split("查询结果证明（已验章）存放于 ")[1].split()[0])
    assert "肥西支行" in kept.parts and "肥西支行" not in where.parts, kept


def test_branch_staff_mistakes_are_said_in_chinese_and_nothing_is_sent(
    branch: Branch, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile first day at `regbridge query`: a unit number too short, the authorisation forgotten, an ID number
    with a wrong check digit — each named with its option and what was expected, in Chinese, every gap at once, and
    nothing sent; a batch file as the branch's Excel saves it (GBK, or 「Unicode 文本」: UTF-16 and tabs, dates as
    2026/11/30) is read as any other."""
    monkeypatch.setenv("REGBRIDGE_AGENT_SECRET", SECRET.decode())
    owner = register.owners_of(UNIT)[0]
    bare = CliRunner().invoke(cli, ["query", "--unit", "123", "--config", str(branch.config)])
    assert bare.exit_code == 2
    missing = ("缺少 --auth-ref（授权书编号）", "缺少 --authoriser-name（授权人姓名）", "缺少 --signed-at（签署时间）")
    for expected in (*missing, "未发送任何查询"):
        assert expected in bare.output, bare.output
    wrong = owner.id_number[:-1] + ("0" if owner.id_number[-1] != "0" else "1")
    typo = CliRunner().invoke(cli, [
        "query", "--unit", "123", "--auth-ref", "A1", "--authoriser-name", owner.name, "--authoriser-id", wrong,
        "--signed-at", "2026-11-01", "--signature-id", "e1", "--config", str(branch.config),
    ])  # fmt: skip
    assert typo.exit_code == 2
    assert "--unit（不动产单元号）值 '123' 无效：应为28 位不动产单元号" in typo.output
    assert "--authoriser-id（授权人证件号码）" in typo.output and "校验位正确" in typo.output
    assert wrong not in typo.output and owner.name not in typo.output  # masked
    # the model's own words are said in Chinese: no pydantic "Value error, property unit id: …" tail
    assert "Value error" not in typo.output and "property unit id" not in typo.output
    assert "（28位不动产单元号（实为3位））" in typo.output
    assert _trace(branch) == []  # nothing reached the centre
    # a well-formed unit number the register does not hold: the centre's refusal is said in Chinese
    unknown = CliRunner().invoke(cli, [
        "query", "--unit", register.unit_id(9999), "--auth-ref", "A1", "--authoriser-name", owner.name,
        "--authoriser-id", owner.id_number, "--signed-at", (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "--signature-id", "e1", "--valid-until", "2030年12月31日", "--config", str(branch.config),
    ])  # fmt: skip
    assert unknown.exit_code == 1 and "登记中心拒绝" in unknown.output and "登记簿中查无此不动产" in unknown.output
    assert [t["outcome"] for t in _trace(branch)] == ["refused"]
    signed = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y/%m/%d")
    until = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y年%m月%d日")
    # 授权用途 copied from the document as written (办理不动产抵押登记业务) is the mortgage business
    header = ["不动产单元号", "授权书编号", "授权人姓名", "授权人证件号码", "签署时间", "有效期止", "授权用途"]
    header.append("电子签名")
    line = [register.unit_id(UNIT).lower(), "SQ-G1", owner.name, owner.id_number, signed, until,
            "办理不动产抵押登记业务", "e-g1"]  # fmt: skip
    folder = tmp_path / "inbox"
    folder.mkdir()
    gbk = folder / "gbk.csv"
    gbk.write_bytes((",".join(header) + "\r\n" + ",".join(line) + "\r\n").encode("gbk"))
    utf16 = folder / "unicode.txt"
    tabbed = "\t".join(header) + "\r\n" + "\t".join([*line[:1], "SQ-G2", *line[2:]]) + "\r\n"
    utf16.write_bytes(tabbed.encode("utf-16"))
    absent = CliRunner().invoke(cli, ["query", "--batch", str(folder / "none.csv"), "--config", str(branch.config)])
    assert absent.exit_code == 2 and "无法读取批量文件" in absent.output
    for batch in (gbk, utf16):
        out = CliRunner().invoke(cli, ["query", "--batch", str(batch), "--json", "--config", str(branch.config)])
        assert out.exit_code == 0, out.output
        [answered] = json.loads(out.output)
        assert answered["outcome"] == "answered" and answered["document"], answered
    assert [t["authorisation_reference"] for t in _trace(branch)] == ["A1", "SQ-G1", "SQ-G2"]
