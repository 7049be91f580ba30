"""What branch staff read about a loan, in Chinese: stages, centre statuses, quarantine, alerts and
the events of a loan's timeline, each as one clear sentence with local time (the web console and
``regbridge show``).

The pipeline, the state store and the audit log keep codes (``tracking``, ``centre.status``,
``fee_paid``…) and their details as key/value pairs, in English, for bank IT and the auditors;
that raw form stays available (``regbridge show --raw``, the console's 技术视图). This module
turns each code into Chinese: a known code gets its word or its sentence, built from the details
it needs — never a file system path, never a raw ``key=value`` list, never a full ID number; an
unknown one gets a neutral Chinese sentence that points to the technical view, never the code.

- :func:`when`: a stored time as the branch reads it (``2026-12-01 02:11:35 +08:00``);
- :func:`stage`, :func:`centre_status`, :func:`business_type`, :func:`fee_status`,
  :func:`certificate_stage`, :func:`quarantine_kind`, :func:`quarantine_status`: one word each;
- :func:`alert_title`, :func:`alert_fix_zh`: what an alert is about and what to do;
- :func:`need`: one loan needing a person (``agent.state.status.needing_person``) in Chinese;
- :func:`narrate`: a loan's timeline (``agent.state.lookup.loan_history``) as sentences;
- :data:`AUDIT_ZH`: a sentence for every audit action the agent writes (a test walks the code).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from agent.messages import for_staff  # the one staff rendering of a stored reason
from agent.state.store import local_time
from sdk.privacy import mask_text

__all__ = [
    "AUDIT_ZH",
    "actor",
    "alert_fix_zh",
    "alert_title",
    "business_type",
    "centre_status",
    "certificate_stage",
    "chinese_or",
    "fee_status",
    "for_staff",
    "material",
    "narrate",
    "need",
    "quarantine_kind",
    "quarantine_status",
    "requeue_outcome",
    "stage",
    "when",
]

STAGES = {
    "queued": "排队待提交",
    "created": "已在中心创建",
    "submitted": "已提交",
    "tracking": "办理中",
    "supplementing": "补正中",
    "done": "已办结",
    "rejected": "未通过",
    "quarantined": "已隔离",
}
CERTIFICATE_STAGES = {
    "pending": "待下载",
    "storing": "存档中",
    "stored": "签章已验证并存档",
    "quarantined": "验证失败（已隔离）",
}
FEE_STATUSES = {"unpaid": "待缴", "paid": "已缴", "refunded": "已退费", "cancelled": "已取消"}
PAPER_STATUSES = {"owed": "待移交", "listed": "已列入移交清单", "delivered": "已送达", "none": "无需移交"}
QUARANTINE_KINDS = {
    "row": "数据行",
    "file": "整个文件",
    "certificate": "登记证明",
    "centre": "登记中心退回",
    "preflight": "登记簿预检未通过",
    "operator_check": "经办人账号无效（未提交）",
    "notice": "登记中心通知书",
}
QUARANTINE_STATUSES = {"open": "未处理", "dismissed": "已撤销", "requeued": "已重新处理", "resolved": "已解决"}
RECEIPT_EVENTS = {
    "accepted": "已受理",
    "correction": "需补正",
    "rejected": "未通过",
    "fee_paid": "已缴费",
    "fee_refunded": "已退费",
    "overdue": "超过承诺办结时限",
    "reapplied": "已重新申请",
    "quarantined": "已隔离",
    "registered": "已办结",
    "superseded": "登记证明已被取代",
    "collateral": "抵押物状态变化",
    "property_query": "登记资料查询",
}
ALERT_TITLES = {
    "paused": "提交已暂停",
    "centre_unreachable": "连不上登记中心",
    "disk_full": "磁盘空间不足",
    "key": "密钥无法加载",
    "metrics": "监控端口被占用",
    "inbox": "收件夹不可用",
    "inbox-file": "收件夹中有无法读取的文件",
    "completion": "无法判断导出文件是否写完",
    "deadline": "补正期限将至",
    "document_store": "文档存储不可用",
    "certificate": "登记证明验证失败",
    "fee_cap": "已达每日缴费上限",
    "overdue": "登记中心超过承诺办结时限",
    "calendar": "工作日历缺少该年份",
    "query": "查询结果签名无法验证",
    "console": "控制台无法启动",
    "reload": "重新加载配置失败",
    "collateral": "抵押物状态变化",
    "bank_certificate": "本行机构证书即将到期或已失效",
    "notice": "登记中心通知书验证失败",
}
ALERT_FIXES = {
    "paused": "登记中心拒绝了本行凭证或暂停了通道：请银行IT运行 regbridge doctor 并联系登记中心；中心恢复后自动继续。",
    "centre_unreachable": "请银行IT检查网络、代理和DNS；待提交的申请都已保留，中心恢复后自动发送。",
    "disk_full": "请银行IT清理数据目录所在磁盘；空间足够后自动继续。",
    "key": "请银行IT检查配置中的密钥（regbridge keys show），改正后重新加载。",
    "metrics": "请银行IT更换监控端口后重启代理程序。",
    "inbox": "收件夹所在共享目录断开：请重新连接；导出文件和回执会等待。",
    "inbox-file": "请把该文件移出收件夹（或换成真实文件），它不会被读取。",
    "completion": "请银行IT为该收件夹设置写完标记方式（rename 或 marker）后重新加载。",
    "deadline": "请在期限前把所列补正材料放入收件夹的材料目录（贷款详情页列出所需材料）。",
    "document_store": "请银行IT检查文档存储（空间、权限、凭证）；恢复后自动继续存档。",
    "certificate": "请银行IT检查信任锚（regbridge doctor），然后在隔离区重新处理。",
    "fee_cap": "请提高每日缴费上限，或由经办人在“登记费”页手工缴费。",
    "overdue": "请凭受理号向登记中心询问；中心作出决定后告警自动消除。",
    "calendar": "请银行IT更新工作日历；在此之前该年份的工作日为估算。",
    "query": "请银行IT检查信任锚后重新查询。",
    "console": "请银行IT检查控制台配置（端口、TLS），然后重启。",
    "reload": "修改后的配置或模板无法加载：请银行IT改正后再次重新加载；代理程序继续按原配置运行。",
    "collateral": "请通知客户经理核实抵押物情况（回执已写明查封、异议或新设抵押及不动产单元）；核实后撤销告警。",
    "bank_certificate": "请银行IT向登记中心申请新的机构证书并重新注册（regbridge enroll）。",
    "notice": "请银行IT检查信任锚（regbridge doctor），然后在隔离区重新处理。",
}
WHY = {"refused": "登记中心不予登记", "补正": "需补正", "fee due": "待缴登记费", "quarantined": "已放入隔离区"}

def when(at: Any, tz: str = "Asia/Shanghai") -> str:
    """A stored time in the branch's zone, as staff read it: ``2026-12-01 02:11:35 +08:00`` ('' when none)."""
    if not at:
        return ""
    text = local_time(str(at), tz)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?([+-]\d\d:\d\d)", text)
    return f"{m[1]} {m[2]} {m[3]}" if m else text


def _word(table: dict[str, str], code: Any, unknown: str) -> str:
    return table.get(str(code), unknown) if code else "-"


def stage(code: Any) -> str:
    return _word(STAGES, code, "其他阶段")


def centre_status(code: Any) -> str:
    from sdk.models import ApplicationStatus

    try:
        return ApplicationStatus(str(code)).label if code else "-"
    except ValueError:
        return "其他状态"


def business_type(code: Any) -> str:
    from sdk.models import APPLICATION_TYPES

    kind = APPLICATION_TYPES.get(str(code))
    return str(kind.business_name) if kind is not None else "其他业务"


def fee_status(code: Any) -> str:
    return _word(FEE_STATUSES, code, "其他")


def paper_status(code: Any) -> str:
    return _word(PAPER_STATUSES, code, "其他")


def certificate_stage(code: Any) -> str:
    return _word(CERTIFICATE_STAGES, code, "其他")


def quarantine_kind(code: Any) -> str:
    return _word(QUARANTINE_KINDS, code, "其他")


def quarantine_status(code: Any) -> str:
    return _word(QUARANTINE_STATUSES, code, "其他")


def alert_title(kind: str) -> str:
    """``inbox:corebank`` → ``收件夹不可用（corebank）``."""
    head, _, subject = kind.partition(":")
    title = ALERT_TITLES.get(head, "其他告警")
    if subject and head not in ("certificate", "query"):  # those name a file or a query id: the IT view has them
        title += f"（{PurePath(subject).name}）"
    return title


def alert_fix_zh(kind: str) -> str:
    return ALERT_FIXES.get(kind.split(":", 1)[0], "请银行IT查看技术视图中的告警内容，并运行 regbridge doctor。")


def actor(who: Any) -> str:
    """``agent`` → 系统; ``console:wang`` → 控制台用户 wang; an 经办人 account as it is."""
    text = str(who or "")
    if not text or text == "agent":
        return "系统"
    if text.startswith("console:"):
        return f"控制台用户 {text.split(':', 1)[1]}"
    if text.startswith("shell:"):
        return f"命令行用户 {text.split(':', 1)[1]}"
    return text


def need(entry: dict[str, Any], tz: str) -> dict[str, str]:
    """One loan needing a person (``needing_person``): ``{why, detail, since}`` in Chinese, local time."""
    why = str(entry.get("why") or "")
    detail = for_staff(entry.get("detail"))
    why_zh = f"隔离区 #{why.split('#', 1)[1]}" if why.startswith("quarantine #") else WHY.get(why, "需要人工处理")
    if why == "补正":
        items = "、".join(material(i) for i in entry.get("items") or [])
        detail = f"期限 {when(entry.get('deadline'), tz) or '未定'}" + (f"：{items}" if items else "")
    elif why == "refused":
        detail = chinese_or(detail, "详见登记中心的不予登记告知书")
    elif why == "quarantined":  # held by the pre-flight or the operator check (their reason), or a certificate
        detail = chinese_or(detail, "登记证明签章验证未通过，请银行IT处理（隔离区）")
    return {"why": why_zh, "detail": detail, "since": when(entry.get("since"), tz)}


_CJK = re.compile(r"[\u4e00-\u9fff]")


def chinese_or(text: Any, otherwise: str) -> str:
    """``text`` if it is Chinese (centre reasons are), else ``otherwise``: no English sentence reaches staff."""
    t = for_staff(text)
    return t if t and _CJK.search(t) and not re.search(r"[A-Za-z]{3,} [A-Za-z]{2,} [A-Za-z]{2,}", t) else otherwise


REQUEUE_OUTCOMES = {
    "requeued": "已重新处理",
    "still_bad": "仍有错误，留在隔离区",
    "not_found": "没有这一项",
    "not_open": "已处理过或缺少原因",
    "dismissed": "已撤销",
}


def requeue_outcome(outcome: str, detail: str) -> str:
    """The result of a requeue or a dismiss (:class:`agent.pipeline.requeue.RequeueResult`) in Chinese."""
    words = REQUEUE_OUTCOMES.get(outcome, "已处理")
    extra = chinese_or(detail, "")
    if outcome == "dismissed" and detail.startswith("by "):
        extra = "原因：" + mask_text(detail.split(": ", 1)[1]) if ": " in detail else ""
    return words + (f"（{extra}）" if extra else "")


def material(code: Any) -> str:
    """A 补正 item's material code by its checklist name (``main_contract`` → 主债权合同); ``field`` → 数据项."""
    if str(code) == "field":
        return "数据项更正"
    return _material_names().get(str(code), "其他材料")


_NAMES: dict[str, str] = {}


def _material_names() -> dict[str, str]:
    if not _NAMES:
        from config import load_checklists

        for checklist in load_checklists().values():
            for item in checklist.items:
                _NAMES.setdefault(item.code, item.name)
    return _NAMES


# --- the timeline ------------------------------------------------------------------------------

Detail = dict[str, Any]
_D = Callable[[Detail, str, str], str]  # (detail, outcome, tz) -> sentence


def _num(d: Detail, key: str, suffix: str = "") -> str:
    v = d.get(key)
    return f"{mask_text(str(v))}{suffix}" if v not in (None, "") else ""


AUDIT_ZH: dict[str, _D] = {
    "agent.paused": lambda d, o, tz: "代理程序暂停提交",
    "agent.reloaded": lambda d, o, tz: "代理程序重新加载了配置",
    "agent.restored": lambda d, o, tz: "从备份恢复后，代理程序与登记中心核对完毕",
    "file.reingested": lambda d, o, tz: "从备份恢复后，重新读取了保存的导出文件",
    "application.readopted": lambda d, o, tz: (
        f"从备份恢复后，按登记中心记录接续申请，受理号 {_num(d, 'application_id')}"
    ),
    "agent.resumed": lambda d, o, tz: "代理程序恢复提交",
    "agent.started": lambda d, o, tz: "代理程序启动",
    "agent.stopped": lambda d, o, tz: "代理程序停止",
    "application.created": lambda d, o, tz: f"已在登记中心创建申请，受理号 {_num(d, 'application_id')}",
    "application.done": lambda d, o, tz: f"办结，收到登记证明 {_num(d, 'certificates') or 0} 份",
    "application.overdue": lambda d, o, tz: f"登记中心已超过承诺办结时限（应于 {when(d.get('due'), tz)} 前办结）",
    "application.queued": lambda d, o, tz: (
        f"由导出文件 {PurePath(str(d.get('file') or '')).name} 第{_num(d, 'row')}行生成申请"
        f"（{business_type(d.get('type'))}），排队待提交"
    ),
    "application.submitted": lambda d, o, tz: f"已提交登记中心（{centre_status(d.get('status'))}）",
    "application.resubmitted": lambda d, o, tz: f"补正后已重新提交登记中心（{centre_status(d.get('status'))}）",
    "application.held_centre": lambda d, o, tz: "登记中心拒收，申请已放入隔离区",
    "application.reapplied": lambda d, o, tz: f"重新申请，替代前一申请 {_num(d, 'reapplies')}",
    "application.refused_invalid": lambda d, o, tz: "登记中心认为申请数据无效而拒收，已放入隔离区",
    "centre.decision": lambda d, o, tz: (
        f"登记中心决定：{centre_status(o)}"
        + (f"，告知书编号 {_num(d, 'notice')}" if d.get("notice") else "")
        + (f"，理由：{chinese_or(str(d.get('reason') or ''), '见告知书')}" if d.get("reason") else "")
    ),
    "centre.reachable": lambda d, o, tz: "与登记中心恢复连接",
    "centre.status": lambda d, o, tz: f"登记中心状态变为「{centre_status(o)}」",
    "centre.unreachable": lambda d, o, tz: "连不上登记中心，申请暂留本地",
    "certificate.quarantined": lambda d, o, tz: "登记证明签章验证未通过，已放入隔离区",
    "certificate.stored": lambda d, o, tz: f"登记证明 {_num(d, 'certificate_number')} 签章验证通过，已存档",
    "certificate.rechecked": lambda d, o, tz: f"登记证明复核：{chinese_or(o, '已复核')}",
    "notice.rechecked": lambda d, o, tz: f"通知书复核：{chinese_or(o, '已复核')}",
    "certificate.superseded": lambda d, o, tz: "登记证明已被新的登记证明取代",
    "console.audit_export": lambda d, o, tz: "导出了审计记录",
    "console.certificate_opened": lambda d, o, tz: (
        "下载了登记证明" if d.get("how") == "attachment" else "打开了登记证明"
    ),
    "console.fee_pay": lambda d, o, tz: (
        f"在控制台缴纳登记费 {_num(d, 'amount', ' 元')}" if o == "ok" else "在控制台缴费未成功"
    ),
    "console.login": lambda d, o, tz: {"ok": "登录控制台", "failed": "登录失败（密码错误）"}.get(
        o, "登录被拒绝（失败次数过多）"
    ),
    "console.logout": lambda d, o, tz: "退出控制台",
    "console.search": lambda d, o, tz: f"在控制台查找，找到 {_num(d, 'found') or 0} 笔",
    "console.started": lambda d, o, tz: "控制台启动",
    "console.transmittal_made": lambda d, o, tz: f"生成纸质材料移交清单（{_num(d, 'count') or 0} 件）",
    "console.user_removed": lambda d, o, tz: "删除了控制台用户",
    "console.user_set": lambda d, o, tz: "设置了控制台用户",
    "correction.answer_queued": lambda d, o, tz: "补正材料已备齐，排队待发送",
    "correction.deadline_near": lambda d, o, tz: f"补正期限将至：{when(d.get('deadline'), tz) or '未定'}",
    "correction.supplement_sent": lambda d, o, tz: "补正材料已发送登记中心",
    "disk.full": lambda d, o, tz: "磁盘空间不足，暂停处理",
    "disk.ok": lambda d, o, tz: "磁盘空间恢复",
    "fee.not_due": lambda d, o, tz: "无需缴费",
    "fee.paid": lambda d, o, tz: f"已缴登记费 {_num(d, 'amount', ' 元')}，票据号 {_num(d, 'receipt')}",
    "fee.refunded": lambda d, o, tz: f"登记费已退 {_num(d, 'amount', ' 元')}",
    "fees.cap_reached": lambda d, o, tz: "已达每日缴费上限，缴费暂缓",
    "file.duplicate": lambda d, o, tz: "导出文件与之前读过的相同，未重复处理",
    "file.ingested": lambda d, o, tz: "读取了导出文件",
    "file.quarantined": lambda d, o, tz: "整个导出文件被隔离",
    "inbox.back": lambda d, o, tz: "收件夹恢复可用",
    "inbox.completion_unprovable": lambda d, o, tz: "无法判断收件夹中的文件是否写完",
    "inbox.file_refused": lambda d, o, tz: "收件夹中有无法读取的文件",
    "inbox.gone": lambda d, o, tz: "收件夹不可用",
    "inbox.missing": lambda d, o, tz: "收件夹不存在",
    "inbox.rearmed": lambda d, o, tz: "收件夹恢复监视",
    "instance.leader": lambda d, o, tz: "本实例成为主实例",
    "instance.reaped": lambda d, o, tz: "清理了已停止的实例",
    "institution.filing": lambda d, o, tz: "机构备案状态更新",
    "key.erased": lambda d, o, tz: "旧密钥已销毁",
    "key.rotated": lambda d, o, tz: "密钥已轮换",
    "key.switched": lambda d, o, tz: "已切换到新密钥",
    "application.preflight": lambda d, o, tz: (
        "登记簿预检通过"
        if o == "passed"
        else (f"登记簿预检未执行（{mask_text(str(d.get('reason') or ''))}），申请照常提交")
    ),
    "application.held_preflight": lambda d, o, tz: "登记簿预检未通过：申请未提交，已放入隔离区",
    "application.held_operator_check": lambda d, o, tz: "经办人不是本行在登记中心的有效账号：申请未提交，已放入隔离区",
    "collateral.seized": lambda d, o, tz: f"抵押物已被查封（不动产登记证明 {_num(d, 'certificate')}），已回执贷款系统",
    "collateral.released": lambda d, o, tz: f"抵押物已解封（不动产登记证明 {_num(d, 'certificate')}），已回执贷款系统",
    "collateral.objection": lambda d, o, tz: f"抵押物上有异议登记（不动产登记证明 {_num(d, 'certificate')}）",
    "collateral.later_mortgage": lambda d, o, tz: f"抵押物上新设抵押权（不动产登记证明 {_num(d, 'certificate')}）",
    "collateral.not_current": lambda d, o, tz: (
        f"本抵押权在登记簿中已不是现势（不动产登记证明 {_num(d, 'certificate')}）"
    ),
    "platform.notice": lambda d, o, tz: "收到省级平台推送的通知，已回执贷款系统",
    "platform.notify_url": lambda d, o, tz: f"已在省级平台变更通知地址（{d.get('url', '')}）",
    "platform.notice.refused": lambda d, o, tz: (
        f"拒收省级平台推送的通知 {d.get('count', '')} 次（来源 {d.get('source', '')}，超过每分钟记录上限，仅计数）"
        if o == "suppressed" else "拒收省级平台推送的通知（验证未通过）"
    ),
    "notice.stored": lambda d, o, tz: "登记机构的电子文书已验证并保存",
    "notice.quarantined": lambda d, o, tz: "登记机构的电子文书验证未通过，已放入隔离区",
    "console.certificate_refused": lambda d, o, tz: "控制台未提供复核未通过的登记证明",
    "property.query": lambda d, o, tz: "不动产登记信息查询" + ("已返回结果" if o == "answered" else "未成功"),
    "quarantine.dismissed": lambda d, o, tz: (
        f"隔离区 #{_num(d, 'item')} 已撤销，原因：{mask_text(str(d.get('reason') or ''))}"
    ),
    "quarantine.requeued": lambda d, o, tz: "隔离项已重新处理",
    "receipts.written": lambda d, o, tz: f"回执文件已写出（{_num(d, 'lines') or 0} 行）",
    "row.duplicate": lambda d, o, tz: f"导出文件第{_num(d, 'row')}行与已处理的行重复，未重复提交",
    "row.quarantined": lambda d, o, tz: f"导出文件第{_num(d, 'row')}行数据有误，已放入隔离区",
    "transmittal.created": lambda d, o, tz: f"生成纸质材料移交清单（{_num(d, 'applications') or 0} 件）",
    "transmittal.delivered": lambda d, o, tz: f"纸质材料已确认送达（{_num(d, 'applications') or 0} 件）",
    "webhook.refused": lambda d, o, tz: "拒收了一条未通过验证的中心推送",
}

_NOTES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^built from export$"), lambda m: "由导出文件生成"),
    (re.compile(r"^draft created at the centre$|^created at the centre$"), lambda m: "已在登记中心创建"),
    (re.compile(r"^(re)?submitted$"), lambda m: "已提交登记中心" if not m[1] else "已重新提交登记中心"),
    (re.compile(r"^event (\d+) at .*$"), lambda m: f"登记中心第 {m[1]} 号通知"),
    (re.compile(r"^fee paid, 票据号 (\S+)$"), lambda m: f"已缴登记费，票据号 {m[1]}"),
    (re.compile(r"^fee refunded"), lambda m: "登记费已退"),
    (re.compile(r"^fee notice cancelled by the centre$"), lambda m: "登记中心取消了缴费通知"),
    (re.compile(r"^certificate requeued$"), lambda m: "登记证明重新下载验证"),
    (re.compile(r"^requeued after a fix$"), lambda m: "改正后重新处理"),
    (re.compile(r"^applied for again as (\S+)"), lambda m: f"已重新申请，新业务编号 {m[1]}"),
    (re.compile(r"^application id learnt from an event$"), lambda m: "从中心通知得知受理号"),
    (re.compile(r"^read from the centre$"), lambda m: "从登记中心读取了最新状态"),
    (re.compile(r"^补正 answered by dropped materials$"), lambda m: "补正材料已放入材料目录"),
    (re.compile(r"^补正 answered by a corrected row$"), lambda m: "补正：导出文件给出了改正后的行"),
    (re.compile(r"^补正 answer"), lambda m: "补正答复"),
    (re.compile(r"^补正 sent$"), lambda m: "补正材料已发送"),
    (re.compile(r"^operator not an account of this bank$"), lambda m: "经办人账号不属于本行，申请被拒收"),
    (
        re.compile(r"^operator not an active account of this bank: held before sending$"),
        lambda m: "经办人不是本行在登记中心的有效账号，申请未提交",
    ),
    (re.compile(r"^refused by the centre as invalid$"), lambda m: "登记中心认为数据无效而拒收"),
    (re.compile(r"^a certificate failed verification$"), lambda m: "登记证明签章验证未通过"),
    (re.compile(r"^办结$"), lambda m: "办结"),
]


def _note(note: Any) -> str:
    text = str(note or "").strip()
    for pattern, render in _NOTES:
        m = pattern.match(text)
        if m:
            return render(m)
    return ""  # an untranslated note stays in the technical view


def _sentence(e: dict[str, Any], tz: str) -> tuple[str, str]:
    """(category, sentence) of one timeline entry."""
    kind = e.get("kind")
    if kind == "stage":
        words = f"阶段：{stage(e.get('stage'))}"
        if e.get("centre_status"):
            words += f"（登记中心：{centre_status(e.get('centre_status'))}）"
        note = _note(e.get("note"))
        return "进度", words + (f"。{note}" if note else "")
    if kind == "certificate":
        return "登记证明", f"登记中心出具登记证明 {mask_text(str(e.get('note') or ''))}"
    if kind == "receipt":
        status = str(e.get("receipt_status") or "") or RECEIPT_EVENTS.get(str(e.get("event")), "状态更新")
        batch = f"，批次号 {e['batch']}" if e.get("batch") else "，待写出"
        return (
            "回执",
            f"回执给贷款系统：{chinese_or(status, RECEIPT_EVENTS.get(str(e.get('event')), '状态更新'))}{batch}",
        )
    if kind == "quarantine":
        if e.get("resolved"):
            return "隔离区", f"隔离区 #{e.get('item')} {quarantine_status(e.get('status'))}"
        return "隔离区", f"放入隔离区 #{e.get('item')}（{quarantine_kind(e.get('qkind'))}）：{e.get('reasons') or ''}"
    if kind == "audit":
        render = AUDIT_ZH.get(str(e.get("action")))
        raw = e.get("detail")
        detail: Detail = raw if isinstance(raw, dict) else {}
        if render is None:
            return "记录", "系统记录了一项操作（详情见技术视图）"
        return "记录", render(detail, str(e.get("outcome") or ""), tz)
    return "记录", "系统记录了一项操作（详情见技术视图）"


def narrate(timeline: list[dict[str, Any]], tz: str) -> list[dict[str, str]]:
    """A loan's timeline for branch staff: ``[{at, reference, category, sentence, actor}]``, all Chinese,
    local time, masked; the raw entries (``loan_history(...).timeline``) are the technical view."""
    out = []
    for e in timeline:
        category, sentence = _sentence(e, tz)
        out.append(
            {
                "at": when(e.get("at"), tz),
                "reference": str(e.get("reference") or ""),
                "category": category,
                "sentence": for_staff(sentence),
                "actor": actor(e.get("actor")),
            }
        )
    return out
