"""What branch staff read, in Chinese: the reasons a row was held, as quarantine reports, receipts and
``status`` show them.

The checks themselves (the SDK's models, the mapping, the build) say what they expected in the
words of their own layer, mostly English, for the developers and the logs. :func:`zh` renders one
such reason in Chinese for the people who fix the export: a known reason is translated (its
figures, codes and columns kept), a reason already in Chinese is kept, and anything else is shown
as it is after ``应为``. :func:`field_line` is the one way an error is written in a report or a
receipt: ``第5行（文件第7行） 字段 贷款金额(万元)：'1500000'，应为 …`` (rows as a spreadsheet shows them,
see :func:`connectors.readers.row_label`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.readers import row_label
from sdk.privacy import mask_text

__all__ = [
    "STAFF_FIELDS",
    "accounting_line",
    "centre_out_of_reach",
    "error_value",
    "field_line",
    "for_staff",
    "pointer_column",
    "refused_key_advice",
    "zh",
]

_CJK = re.compile(r"[\u4e00-\u9fff]")

_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _r(pattern: str, render: Callable[[re.Match[str]], str]) -> _Rule:
    return re.compile(pattern, re.S), render


_RULES: list[_Rule] = [
    _r(r"^an amount in (\S+) such as 1,234\.56$", lambda m: f"金额（单位{m[1]}），如 1,234.56"),
    _r(r"^a non-negative amount in (\S+)$", lambda m: f"不为负数的金额（单位{m[1]}）"),
    _r(r"^an amount in (\S+) below 10¹⁵ 元$", lambda m: f"合理范围内的金额（单位{m[1]}）"),
    _r(r"^an amount exact to the fen \(分\) in (\S+)$", lambda m: f"精确到分的金额（单位{m[1]}）"),
    _r(r"^a date such as .*, or a time such as .*$", lambda m: "日期或时间，如 2026-03-05、2026/3/5、2026年3月5日 或 "
       "2026/3/5 09:00"),
    _r(r"^a date such as .*$", lambda m: "日期，如 2026-03-05、2026/3/5 或 2026年3月5日"),
    _r(r"^a whole number$", lambda m: "整数"),
    _r(r"^是 or 否 \(yes or no\)$", lambda m: "是 或 否"),
    _r(r"^one of (.+)$", lambda m: f"以下之一：{m[1].replace(', ', '、')}"),
    _r(r"^the loan number \(贷款编号\)$", lambda m: "贷款编号（不能为空）"),
    _r(r"^a loan number of letters, digits.*$", lambda m: "贷款编号：字母、数字或 - _ . :，至多48个字符"),
    _r(
        r"^one business type per application.*$",
        lambda m: "同一申请只能有一种业务类型（或在配置中用 [[type.combine]] 合并）",
    ),
    _r(
        r"^the same value as row (\d+) \((.*)\) — rows of one application must agree$",
        lambda m: f"与第{m[1]}行相同的值（{m[2]}）：同一申请的各行必须一致",
    ),
    _r(
        r"^(\d+) e-signature id\(s\), one per applicant in order.*$",
        lambda m: f"{m[1]} 个电子签名编号，每位申请人一个，按申请人顺序",
    ),
    _r(r"^the 经办人 account that prepared the row$", lambda m: "经办人账号（不能为空）"),
    _r(
        r"^the material (.+?) \(([a-z_]+)\): a file (\S+) \(or (\S+)\) in (\S+)$",
        lambda m: f"材料「{m[1]}」：请在 {m[5]} 中放入文件 {m[3]}（或 {m[4]}）",
    ),
    _r(
        r"^the material (.+?) \(([a-z_]+)\) listed in the manifest column$",
        lambda m: f"材料清单列中应列出材料「{m[1]}」",
    ),
    _r(r"^a value for (\S+)( \(no column in the profile maps to it\))?$", lambda m: f"{m[1]} 的值（必填）"),
    _r(r"^resident id: expected 18 characters, got (\d+)$", lambda m: f"18位居民身份证号码（实为{m[1]}位）"),
    _r(r"^resident id: the first 17 characters must be digits$", lambda m: "居民身份证号码：前17位应为数字"),
    _r(
        r"^resident id: birth date (\d+) is (not a real date|out of range)$",
        lambda m: f"居民身份证号码中的出生日期 {m[1]} 无效",
    ),
    _r(
        r"^resident id: check character is (\S), expected (\S)$",
        lambda m: f"正确的居民身份证号码：校验位是 {m[1]}，按前17位应为 {m[2]}（号码有误，请核对）",
    ),
    _r(r"^USCC: expected 18 characters, got (\d+)$", lambda m: f"18位统一社会信用代码（实为{m[1]}位）"),
    _r(
        r"^USCC: check character is (\S), expected (\S)$",
        lambda m: f"正确的统一社会信用代码：校验位是 {m[1]}，应为 {m[2]}（代码有误，请核对）",
    ),
    _r(r"^USCC: .*$", lambda m: "正确的统一社会信用代码（GB 32100）"),
    _r(r"^property unit id: expected 28 characters, got (\d+)$", lambda m: f"28位不动产单元号（实为{m[1]}位）"),
    _r(r"^property unit id: .*$", lambda m: "符合 GB/T 37346 的不动产单元号"),
    _r(r"^certificate number: .*$", lambda m: "不动产权证书号或证明号，如 皖(2024)长丰县不动产权第0000001号"),
    _r(r"^a property unit is listed twice$", lambda m: "同一不动产单元不能出现两次"),
    _r(r"^applicants without an electronic signature: (.+)$", lambda m: f"每位申请人的电子签名（缺：{m[1]}）"),
    _r(r"^every property needs its title_certificate.*$", lambda m: "每个不动产单元的不动产权证书号"),
    _r(r"^(.+): end (\S+) is before start (\S+)$", lambda m: f"晚于起始日期 {m[3]} 的到期日期（实为 {m[2]}）"),
    _r(r"^一般抵押 needs secured_amount.*$", lambda m: "一般抵押的被担保主债权数额"),
    _r(r"^最高额抵押 needs maximum_amount.*$", lambda m: "最高额抵押的最高债权额"),
    _r(r"^maximum_amount, determination period.*$", lambda m: "最高债权额等只用于最高额抵押（本行是一般抵押）"),
    _r(r"^amounts must be greater than zero$", lambda m: "大于零的金额"),
    _r(r"^determined_amount exceeds the maximum amount$", lambda m: "不超过最高债权额的确定债权额"),
    _r(
        r"^a new operation: (\S+) was already sent and is (\S+);.*$",
        lambda m: f"新的业务编号：{m[1]} 已提交（状态 {m[2]}），同一贷款的另一申请需要自己的业务编号",
    ),
    _r(
        r"^the profile says all-or-nothing and another row of this file has errors$",
        lambda m: "配置要求整个文件一并处理，而本文件另有行出错",
    ),
    _r(r"^a file that stays unchanged while it is read$", lambda m: "读取期间不被改动的材料文件"),
    _r(r"^String should have at most (\d+) characters?$", lambda m: f"至多 {m[1]} 个字符"),
    _r(r"^String should have at least (\d+) characters?$", lambda m: f"至少 {m[1]} 个字符"),
    _r(r"^Field required$", lambda m: "必填项"),
    _r(r"^Input should be a valid datetime.*$", lambda m: "日期时间，如 2026-11-30T09:00:00+08:00"),
    _r(r"^Input should be a valid date.*$", lambda m: "日期，如 2026-11-30"),
    _r(r"^Input should be a valid integer.*$", lambda m: "整数"),
    _r(r"^Input should be a valid (?:number|decimal).*$", lambda m: "数字"),
    _r(r"^Input should be a valid string.*$", lambda m: "文字"),
    _r(r"^Input should be a valid boolean.*$", lambda m: "是 或 否"),
    _r(r"^Input should be greater than or equal to (\S+)$", lambda m: f"不小于 {m[1]} 的数"),
    _r(r"^Input should be greater than (\S+)$", lambda m: f"大于 {m[1]} 的数"),
    _r(r"^Input should be less than or equal to (\S+)$", lambda m: f"不大于 {m[1]} 的数"),
    _r(r"^Input should be '([^']*)'$", lambda m: f"「{m[1]}」"),
    _r(r"^Input should be (.+)$", lambda m: f"应为 {m[1]}"),
    _r(r"^Extra inputs are not permitted$", lambda m: "不应有此项"),
]


#: the prefixes pydantic puts before a validator's own message ("Value error, property unit id: …")
_PYDANTIC_PREFIX = re.compile(r"^(?:Value error|Assertion failed), ")


def zh(reason: str) -> str:
    """A reason for branch staff, in Chinese (see the module docstring); never raises."""
    text = _PYDANTIC_PREFIX.sub("", reason.strip())
    for pattern, render in _RULES:
        m = pattern.match(text)
        if m:
            return render(m)
    # bilingual reasons carry their Chinese in brackets: "… (金额 … 是否应为 元？)" → the Chinese part
    m = re.search(r"\(([^()]*[\u4e00-\u9fff][^()]*)\)\s*$", text)
    if m and len(_CJK.findall(m.group(1))) >= 4:
        return m.group(1)
    # or first, with the English in brackets after it: "长 60 字节… (is 60 bytes long; …)" → the Chinese part
    m = re.match(r"^([^()]*[\u4e00-\u9fff][^()]*?)\s*\([\x00-\x7f]*\)\s*$", text)
    if m and len(_CJK.findall(m.group(1))) >= 4:
        return m.group(1)
    return text


_EXCERPT = re.compile(r"^(.*)… \((\d+) characters; the rest is not shown, it may hold personal data\)$", re.S)


def _shown_value(value: str) -> str:
    """A value as a report shows it: masked; a broken record's excerpt (``record_excerpt``) said in Chinese."""
    m = _EXCERPT.match(value)
    if m:
        return f"{mask_text(m[1])}…（共 {m[2]} 个字符，其余不显示：可能含个人信息）"
    return repr(mask_text(value))


def field_line(row: int | None, line: int | None, column: str, value: str | None, reason: str) -> str:
    """One error as every report, receipt and status line writes it. Values should come masked; an ID
    number in a column where none was expected would not be, so every ID number in it is masked here.
    ``value`` None: a finding about the cell rather than its value (a register check, the centre's refusal — the
    cell is not repeated): ``第13行 字段 不动产单元号：不动产已被查封，不予登记（…）``."""
    if value is None:
        return f"{row_label(row, line)} 字段 {column}：{zh(reason)}"
    shown = _shown_value(value) if value else "（空）"
    return f"{row_label(row, line)} 字段 {column}：{shown}，应为 {zh(reason)}"


def error_value(error: dict[str, Any]) -> str | None:
    """The value of a stored error (quarantine item, receipt) for :func:`field_line`: None when the error is a
    finding about the cell that does not repeat it (stored ``"value": None``), else the masked value or ``""``."""
    if "value" in error and error["value"] is None:
        return None
    return str(error.get("value") or "")


def accounting_line(records: int, rows: dict[str, int], encoding: str | None = None) -> str:
    """An export's accounting as receipts, ``status`` and ``regbridge ingest`` show it:
    ``读取 7 条记录：排队 3，答复补正 0，重复 1，隔离 3（编码 gb18030 (BOM)）``."""
    text = (
        f"读取 {records} 条记录：排队 {rows.get('queue', 0)}，答复补正 {rows.get('supplement', 0)}，"
        f"重复 {rows.get('duplicate', 0)}，隔离 {rows.get('quarantine', 0)}"
    )
    return text + (f"（编码 {encoding}）" if encoding else "")


_REFUSED_KEY = re.compile(r"code (certificate_revoked|certificate_expired|key_revoked|unknown_key)\b")


def refused_key_advice(refusal: str, config: Path | None) -> str:
    """What bank IT does when the centre refuses the agent's key for good (its institution certificate revoked
    or expired, the key revoked or unknown): a new enrolment bundle into the same folder (``regbridge enroll``
    replaces the key and keeps the state); a rotation cannot help, it is signed by the refused key. ``""`` for
    any other refusal."""
    found = _REFUSED_KEY.search(refusal)
    if found is None:
        return ""
    folder = str(config.parent) if config is not None else "."
    what = {
        "certificate_revoked": "本行机构证书已被登记中心吊销（列入 CRL）",
        "certificate_expired": "本行机构证书已过有效期",
        "key_revoked": "本机签名密钥已被登记中心注销",
        "unknown_key": "登记中心不认识本机签名密钥",
    }[found.group(1)]
    return (
        f" — {what}：请向登记中心申请新的注册包，运行 `regbridge enroll 新注册包.json --dir {folder}`，"
        "换用新密钥（本机状态与队列保留，代理自动恢复提交）；`regbridge keys rotate` 无效，它须用原密钥签名"
        f" (ask the centre for a new enrolment bundle and run `regbridge enroll BUNDLE --dir {folder}`: it replaces"
        " the key and keeps this agent's state; a rotation cannot, it is signed by the refused key)"
    )


#: what a transport failure's text says → its cause in the words bank IT read (first match wins)
_TRANSPORT_CAUSES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|hostname mismatch", re.I), "TLS 证书校验失败"),
    (re.compile(r"SSL|TLS|WRONG_VERSION_NUMBER|handshake", re.I), "TLS 握手失败"),
    (re.compile(r"timed? ?out|Timeout", re.I), "连接超时"),
    (re.compile(r"Connection refused|ECONNREFUSED", re.I), "连接被拒绝：服务未运行或端口不对"),
    (re.compile(r"Name or service not known|nodename|getaddrinfo|name resolution|No address", re.I), "域名无法解析"),
    (re.compile(r"Network is unreachable|No route to host", re.I), "网络不可达"),
    (re.compile(r"Connection reset|RemoteProtocolError|Server disconnected|closed", re.I), "连接被中断"),
    (re.compile(r"[Pp]roxy"), "代理连接失败"),
]


def centre_out_of_reach(exc: BaseException) -> tuple[str, str] | None:
    """``(head, cause)`` when ``exc`` says the centre (or platform) could not be reached or cannot serve now —
    a network, timeout or TLS failure (``sdk.TransportError``, ``sdk.TimeoutError``, httpx's, ``ssl.SSLError``,
    ``ConnectionError``), the retry budget spent (``sdk.RetryBudgetExhausted``), 5xx (``sdk.ServerError``) or
    429 (``sdk.RateLimited``) — else None. ``head`` is 登记中心无法连接 or 登记中心暂时无法处理; ``cause`` is in
    Chinese with the error's own text (masked) after it, for bank IT: ``连接被拒绝：服务未运行或端口不对：
    ConnectError: [Errno 111] Connection refused``. Every command that calls the centre says it this way."""
    import ssl

    import httpx

    import sdk

    text = mask_text(str(exc) or type(exc).__name__)
    if isinstance(exc, sdk.RetryBudgetExhausted):
        return "登记中心暂时无法处理", f"登记中心连续出错，本机已暂停重试以免加重其负担：{text}"
    if isinstance(exc, sdk.ServerError):
        return "登记中心暂时无法处理", f"登记中心服务器错误：{text}"
    if isinstance(exc, sdk.RateLimited):
        return "登记中心暂时无法处理", f"登记中心限流，请稍后再试：{text}"
    if isinstance(exc, sdk.TimeoutError | TimeoutError | httpx.TimeoutException):
        return "登记中心无法连接", f"连接超时：{text}"
    if not isinstance(exc, sdk.TransportError | httpx.TransportError | ssl.SSLError | ConnectionError):
        return None
    cause = next((said for pattern, said in _TRANSPORT_CAUSES if pattern.search(text)), "网络错误")
    return "登记中心无法连接", f"{cause}：{text}"


#: the pseudo-columns and JSON pointers an error may name when no export column is behind it, as staff read them
STAFF_FIELDS = {"(record)": "整条记录", "(application)": "整笔申请", "/mortgagors": "抵押人", "/obligors": "债务人"}
_PREFLIGHT_CODE = re.compile(r"(（登记簿预检：[^（），]*)，[a-z_]+）")
_STAFF_FIELD = re.compile(r"字段 (\(record\)|\(application\)|/[A-Za-z_/0-9]+)：")


def for_staff(text: object) -> str:
    """A stored reason as branch staff read it (receipts keep the codes, for the loan system): the
    pre-flight's code dropped (``（登记簿预检：提交后将不予登记，property_seized）`` → ``…将不予登记）``), a
    pseudo-column or JSON pointer named in Chinese (``字段 (record)`` → ``整条记录``), personal data masked.
    Every staff surface shows stored reasons through it: ``status``, ``show``, ``quarantine``, the console, the
    demo's summary, an export's quarantine report."""
    t = _PREFLIGHT_CODE.sub(r"\1）", mask_text(str(text or "")))
    return _STAFF_FIELD.sub(lambda m: f"{STAFF_FIELDS.get(m[1], '申请数据')}：", t)


#: the leaves that name a party, asked first when an error names the whole party (``/mortgagors``)
_PARTY_LEAVES = ("name", "id_number")


def pointer_column(columns: dict[str, Any], pointer: str | None) -> tuple[Any, str] | None:
    """The export row and column(s) behind a JSON pointer an error names (``columns``: an application's source
    ``{pointer: [row, column]}``), in the profile's column names branch staff know: the pointer's own column; for a
    pointer above the columns (``/mortgagors`` of a 抵押人 check) the columns under it — the parties' name and
    证件号码 columns when mapped (``抵押人姓名、抵押人证件号码``), else every one; for one below a column (a part of a
    cell) that column. None when no column of the export is behind it."""
    if not pointer:
        return None
    if pointer in columns:
        return columns[pointer][0], str(columns[pointer][1])
    under = [(p, v) for p, v in columns.items() if p.startswith(pointer.rstrip("/") + "/")]
    if under:
        party = [(p, v) for p, v in under if p.rsplit("/", 1)[-1] in _PARTY_LEAVES]
        chosen = party or under
        return chosen[0][1][0], "、".join(dict.fromkeys(str(v[1]) for _, v in chosen))
    parent = pointer
    while "/" in parent.strip("/"):
        parent = parent.rsplit("/", 1)[0]
        if parent in columns:
            return columns[parent][0], str(columns[parent][1])
    return None
