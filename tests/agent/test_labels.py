"""What branch staff read, in Chinese (agent/labels.py, agent/messages.py): no code, no UTC, no path leaks
even from an entry nobody wrote a sentence for."""

from __future__ import annotations

from typing import Any

from agent import labels
from agent.messages import field_line, pointer_column, zh
from agent.pipeline.outbox import record_excerpt
from sdk.privacy import mask_text


def test_times_are_local_and_a_need_for_a_correction_names_its_materials_and_local_deadline() -> None:
    assert labels.when("2026-11-30T18:11:35.800062+00:00", "Asia/Shanghai") == "2026-12-01 02:11:35 +08:00"
    assert labels.when("2026-11-30T18:11:35+00:00", "Europe/Berlin") == "2026-11-30 19:11:35 +01:00"
    entry = {"why": "补正", "detail": "deadline 2026-12-03T00:00:00+00:00: main_contract", "since": None,
             "deadline": "2026-12-03T00:00:00+00:00", "items": ["main_contract", "field"]}  # fmt: skip
    shown = labels.need(entry, "Asia/Shanghai")
    assert shown == {"why": "需补正", "detail": "期限 2026-12-03 08:00:00 +08:00：主债权合同、数据项更正", "since": ""}


def test_an_unknown_code_or_note_is_never_shown_raw() -> None:
    timeline: list[dict[str, Any]] = [
        {"at": "2026-11-30T18:00:00+00:00", "reference": "R-1", "kind": "audit", "action": "brand.new_action",
         "outcome": "ok", "detail": {"location": "/srv/docs/x.pdf", "id_number": "110101199003077777"}},
        {"at": "2026-11-30T18:00:01+00:00", "reference": "R-1", "kind": "stage", "stage": "tracking",
         "centre_status": "accepted", "note": "some new english note at /var/lib/x"},
        {"at": "2026-11-30T18:00:02+00:00", "reference": "R-1", "kind": "audit", "action": "certificate.stored",
         "outcome": "ok", "actor": "console:li", "detail": {"certificate_number": "皖(2026)长丰县不动产证明第0100001号",
                                                          "location": "/srv/documents/a.pdf"}},
    ]  # fmt: skip
    a, b, c = labels.narrate(timeline, "Asia/Shanghai")
    assert a["sentence"] == "系统记录了一项操作（详情见技术视图）" and a["actor"] == "系统"
    assert b["sentence"] == "阶段：办理中（登记中心：受理）" and b["at"] == "2026-12-01 02:00:01 +08:00"
    assert c["sentence"] == "登记证明 皖(2026)长丰县不动产证明第0100001号 签章验证通过，已存档"
    assert c["actor"] == "控制台用户 li"
    assert labels.alert_title("certificate:/srv/documents/a.pdf") == "登记证明验证失败"
    assert labels.alert_title("inbox:corebank") == "收件夹不可用（corebank）"
    assert labels.stage("brand_new") == "其他阶段" and labels.centre_status("brand_new") == "其他状态"


def test_a_broken_record_and_a_bilingual_reason_read_in_chinese() -> None:
    reason = "长 60 字节，一条记录应为 208 字节 (is 60 bytes long; a record is 208 bytes)"
    line = field_line(4, None, "(record)", record_excerpt("LEG-004 " + "x" * 52), reason)
    assert line == (
        "第4行 字段 (record)：LEG-004…（共 60 个字符，其余不显示：可能含个人信息），"
        "应为 长 60 字节，一条记录应为 208 字节"
    )
    assert zh(reason) == "长 60 字节，一条记录应为 208 字节"
    assert zh("the loan number (贷款编号)") == "贷款编号（不能为空）"  # the rules still come first


def test_staff_read_a_pre_flight_hold_without_its_code_nor_a_pointer_and_not_as_a_certificate_failure() -> None:
    """break23: the console's overview said 登记证明验证失败 for loans the pre-flight held (never sent, no
    certificate), and showed `property_seized`, `/mortgagors` and `(record)` to branch staff."""
    held = "抵押人与登记簿记载的权利人不一致（登记簿预检：提交后将不予登记，mortgagor_not_owner）"
    line = field_line(14, None, "/mortgagors", "", held)
    assert (
        labels.for_staff(line)
        == "第14行 抵押人：（空），应为 抵押人与登记簿记载的权利人不一致（登记簿预检：提交后将不予登记）"
    )
    broken = field_line(4, None, "(record)", record_excerpt("LEG-004 " + "x" * 52), "长 60 字节")
    assert labels.for_staff(broken).startswith("第4行 整条记录：LEG-004…")
    assert "字段 /x：" not in labels.for_staff("第1行 字段 /declaration/x：（空），应为 不能为空")
    need = labels.need({"why": "quarantined", "detail": held, "since": None}, "Asia/Shanghai")
    assert (
        need["why"] == "已放入隔离区"
        and need["detail"] == "抵押人与登记簿记载的权利人不一致（登记簿预检：提交后将不予登记）"
    )
    cert = labels.need({"why": "quarantined", "detail": "a certificate failed verification"}, "Asia/Shanghai")
    assert cert["detail"] == "登记证明签章验证未通过，请银行IT处理（隔离区）"
    assert labels.for_staff("张三 340121196203030027") == mask_text("张三 340121196203030027")
    [event] = labels.narrate(
        [{"kind": "quarantine", "item": 6, "qkind": "preflight", "reasons": held}], "Asia/Shanghai"
    )
    assert "mortgagor_not_owner" not in event["sentence"] and "将不予登记）" in event["sentence"]


def test_validation_tails_and_json_pointers_reach_staff_in_chinese_and_the_profile_columns() -> None:
    """Review of issue 24: a pydantic message tail ("Value error, property unit id: …") and the JSON path of a check
    of a whole party (/mortgagors) reached branch staff as they were."""
    assert zh("Value error, property unit id: expected 28 characters, got 3") == "28位不动产单元号（实为3位）"
    assert zh("Value error, resident id: check character is 7, expected 4").startswith("正确的居民身份证号码")
    assert zh("Input should be a valid datetime, invalid character in year") == "日期时间，如 2026-11-30T09:00:00+08:00"
    columns = {"/mortgagors/0/name": [14, "抵押人"], "/mortgagors/0/id_type": [14, "证件类型"],
               "/mortgagors/0/id_number": [14, "证件号码"], "/mortgagors/1/name": [15, "抵押人"],
               "/properties/0/unit_id": [14, "不动产单元号"]}  # fmt: skip
    assert pointer_column(columns, "/mortgagors") == (14, "抵押人、证件号码")  # the party's name and 证件号码 columns
    assert pointer_column(columns, "/mortgagors/0/id_number") == (14, "证件号码")
    assert pointer_column(columns, "/properties/0/unit_id/2") == (14, "不动产单元号")  # a part of a cell
    assert pointer_column(columns, "/properties") == (14, "不动产单元号")
    assert pointer_column(columns, "/terms/secured_amount") is None
    held = "不动产已被查封，不予登记（登记簿预检：提交后将不予登记，property_seized）"
    line = field_line(13, None, "不动产单元号", None, held)  # a finding about the cell: not said to be empty
    assert line == f"第13行 字段 不动产单元号：{held}"
    staff = labels.for_staff(line)
    assert staff == "第13行 字段 不动产单元号：不动产已被查封，不予登记（登记簿预检：提交后将不予登记）"
