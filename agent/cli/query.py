"""``regbridge query``: 登记资料查询 by branch staff, one at a time or a batch file (seed 001 §3, seed 002 §2.1.7).

The authorisation is checked here first (expired, future-dated, not for the mortgage business, not signed by an
owner named with ``--owner``) and a refused query is never sent; the centre checks it again. An answered query
is the centre's signed 查询结果, verified and stored encrypted, and its sealed 查询结果 (权属查询证明) verified and
stored in the document store — the line says where (:mod:`agent.pipeline.queries`); ``--show QUERY_ID`` prints a
stored one. Exit 1 when any query was refused or a batch row was invalid; 3 when the centre could not be reached
for one at least (each such row says 登记中心无法连接，未查询（…）, the other rows are still asked, and a count
ends the run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from agent.cli.common import CONFIG, EXIT_UNREACHABLE, open_agent, out_of_reach_line, parse_day, parse_moment
from agent.pipeline.queries import EXPECTED

__all__ = ["query", "register"]


def _print(outcomes: list[Any], as_json: bool) -> None:
    from agent.pipeline.queries import result_summary

    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "query": o.label,
                        "outcome": o.outcome,
                        "reasons": [{"code": c, "reason": r} for c, r in o.reasons],
                        "result": result_summary(o.result) if o.result else None,
                        "document": o.document,
                    }
                    for o in outcomes
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    for o in outcomes:
        if o.result is not None:
            r = o.result
            flags = [name for name, on in (("查封", r.seized), ("异议", r.objection), ("已抵押", r.mortgaged)) if on]
            typer.secho(f"{o.label}: 查询结果 {r.query_id}  {r.location}  {'、'.join(flags) or '无限制'}", fg="green")
            for right in r.rights:
                rank = f" 顺位{right.rank}" if right.rank else ""
                amount = f"  {right.amount}元" if right.amount is not None else ""
                typer.echo(f"    {KINDS.get(right.kind, right.kind)}{rank}  {right.certificate_number or ''}{amount}")
            if o.document:
                typer.echo(f"    查询结果证明（已验章）存放于 {o.document}")
            for _code, reason in o.reasons:
                typer.secho(f"    {reason}", fg="yellow")
        elif o.outcome in ("unreachable", "failed") and len(o.reasons) == 1 and o.result is None:
            typer.secho(f"{o.label}: {o.reasons[0][1]}", fg="red")  # one line: 登记中心无法连接，未查询（…）
        else:
            label = {"refused_here": "本机拒绝（未发送）", "refused_by_centre": "登记中心拒绝", "invalid": "行无效",
                     "unverified": "查询结果验证未通过（未保存）", "failed": "查询未完成",
                     "unreachable": "未查询"}  # fmt: skip
            typer.secho(f"{o.label}: {label.get(o.outcome, o.outcome)}", fg="red")
            for _code, reason in o.reasons:
                typer.echo(f"    {reason}")


def _yes(on: bool) -> str:
    return "是" if on else "否"


def _show(result: Any, document: str | None, tz: str) -> None:
    """A stored 查询结果 as branch staff read it: its fields with Chinese labels, then each right or restriction
    (种类, 顺位, 权利人 masked, 证书号/证明号, 金额 元, 登记时间); ``--json`` gives machines the summary."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from agent.labels import when
    from sdk.privacy import mask_name, mask_text

    ranks = sorted(r.rank for r in result.rights if r.kind == "mortgage" and r.rank)
    mortgaged = _yes(result.mortgaged) + (f"（顺位 {', '.join(str(n) for n in ranks)}）" if ranks else "")
    purpose = {"mortgage": "办理不动产抵押登记业务"}.get(result.purpose or "", result.purpose or "-")
    fields = [
        ("查询编号", result.query_id),
        ("不动产单元号", result.unit_id),
        ("坐落", result.location),
        ("不动产类型", result.property_type.label),
        ("不动产权证书号", result.title_certificate or "-"),
        ("查封", _yes(result.seized)),
        ("异议", _yes(result.objection)),
        ("抵押", mortgaged),
        ("查询时间", when(result.answered_at.isoformat(), tz)),
        ("经办人", result.operator_id or "-"),
        ("授权书编号", result.authorisation_reference or "-"),
        ("查询目的", purpose),
        ("查询结果证明", f"{document}（已验章）" if document else "未保存"),
    ]
    console = Console(highlight=False, soft_wrap=True)
    console.print("登记资料查询结果（登记中心签名已验证）", style="bold")
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        console.print(f"  {label}{'　' * (width - len(label))}  {escape(mask_text(str(value)))}")
    table = Table(title=f"权利及限制：{len(result.rights)} 项")
    for column in ("种类", "顺位", "权利人", "证书号/证明号", "金额（元）", "登记时间"):
        table.add_column(column)
    order = {kind: n for n, kind in enumerate(KINDS)}
    for r in sorted(result.rights, key=lambda r: (order.get(r.kind, len(order)), r.rank or 0)):
        table.add_row(
            KINDS.get(r.kind, r.kind),
            str(r.rank) if r.rank else "",
            escape(mask_name(r.holder)) if r.holder else "",
            escape(r.certificate_number or ""),
            f"{r.amount:,.2f}" if r.amount is not None else "",
            when(r.registered_at.isoformat(), tz) if r.registered_at else "",
        )
    console.print(table)


#: a right's kind as branch staff read it
KINDS = {"ownership": "所有权", "mortgage": "抵押权", "seizure": "查封", "objection": "异议登记", "notice": "预告登记"}
#: each field of a single query → (its option, its name for branch staff: the batch file's column)
OPTIONS: dict[str, tuple[str, str]] = {
    "unit_id": ("--unit", "不动产单元号"),
    "title_certificate": ("--certificate", "不动产权证书号"),
    "location": ("--location", "坐落"),
    "authorisation.reference": ("--auth-ref", "授权书编号"),
    "authorisation.applicant.name": ("--authoriser-name", "授权人姓名"),
    "authorisation.applicant.id_number": ("--authoriser-id", "授权人证件号码"),
    "authorisation.signed_at": ("--signed-at", "签署时间"),
    "authorisation.valid_from": ("--valid-from", "有效期起"),
    "authorisation.valid_until": ("--valid-until", "有效期止"),
    "authorisation.purpose": ("--auth-purpose", "授权用途"),
    "authorisation.signature_id": ("--signature-id", "电子签名"),
    "operator_id": ("--operator", "经办人"),
}


def _missing(given: dict[str, Any]) -> list[str]:
    """What a single query lacks, every gap at once, in the words branch staff read (nothing is sent)."""
    keys = [k for k in ("unit_id", "title_certificate", "location") if given.get(k)]
    out = []
    if len(keys) != 1:
        named = "、".join(OPTIONS[k][0] for k in keys)
        out.append("请只用 --unit（不动产单元号）、--certificate（不动产权证书号）或 --location（坐落）中的一项"
                   + (f"指明不动产（现在给了 {named}）" if keys else "指明不动产（现在一项也没有）"))  # fmt: skip
    for field in ("authorisation.reference", "authorisation.applicant.name", "authorisation.applicant.id_number",
                  "authorisation.signed_at", "authorisation.signature_id", "operator_id"):  # fmt: skip
        if not given.get(field):
            option, column = OPTIONS[field]
            hint = "（或在配置中设 default_operator）" if field == "operator_id" else "（见申请人签署的查询授权书）"
            out.append(f"缺少 {option}（{column}）：应为{EXPECTED[column]}{hint}")
    return out


def _invalid(exc: Any, given: dict[str, Any]) -> list[str]:
    """A single query's invalid values: the option, the value (personal data masked) and what was expected."""
    from agent.messages import zh
    from sdk.privacy import mask_id, mask_name

    out = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("person", "organisation")))
        if where == "authorisation.applicant":  # the party's own checks are of its 证件号码
            where = "authorisation.applicant.id_number"
        if where not in OPTIONS:
            out.append(f"查询无效：{zh(str(e['msg']))}")
            continue
        option, column = OPTIONS[where]
        value = str(given.get(where) or "")
        if where.endswith("id_number"):
            value = mask_id(value)
        elif where.endswith(".name"):
            value = mask_name(value)
        out.append(f"{option}（{column}）值 {value!r} 无效：应为{EXPECTED[column]}（{zh(str(e['msg']))}）")
    return out


def query(
    unit: str = typer.Option(None, "--unit", help="不动产单元号 (28 characters)."),
    certificate: str = typer.Option(None, "--certificate", help="不动产权证书号."),
    location: str = typer.Option(None, "--location", help="坐落, as registered."),
    reference: str = typer.Option(None, "--auth-ref", help="授权书编号."),
    name: str = typer.Option(None, "--authoriser-name", help="授权人姓名或名称."),
    id_number: str = typer.Option(None, "--authoriser-id", help="授权人证件号码 (居民身份证 or 统一社会信用代码)."),
    signed_at: str = typer.Option(
        None, "--signed-at", help="签署时间: 2026-11-30, 2026/11/30, 2026年11月30日 (that day), 2026/11/30 09:00, ISO."
    ),
    valid_from: str = typer.Option(None, "--valid-from", help="授权有效期起: 2026-12-31, 2026/12/31, 2026年12月31日."),
    valid_until: str = typer.Option(None, "--valid-until", help="授权有效期止, written as --valid-from."),
    purpose: str = typer.Option("mortgage", "--auth-purpose", help="授权用途 as written (only mortgage is allowed)."),
    signature_id: str = typer.Option(None, "--signature-id", help="电子签名引用 of the authorisation."),
    operator: str = typer.Option(None, "--operator", help="经办人 account (default: the config's default_operator)."),
    owners: list[str] = typer.Option(None, "--owner", help="权利人证件号码 on the title certificate (repeatable)."),
    batch: Path = typer.Option(None, "--batch", help="A CSV of queries (columns: docs/agent.md)."),
    show: str = typer.Option(None, "--show", help="Print a stored 查询结果 by its query id."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable (with --show: the summary as JSON)."),
    branch: str = typer.Option(
        None,
        "--branch",
        help="Ask as this branch (a key of the config's [branches]): behind a platform the query carries its"
        " 统一社会信用代码 and the sealed 查询结果 is kept in its folder; default: as the head office.",
    ),
    config: Path = CONFIG,
) -> None:
    """登记资料查询 with the applicant's authorisation: one query, or --batch FILE; --show QUERY_ID."""
    from pydantic import ValidationError

    from agent.pipeline.queries import (
        QueryOutcome,
        read_batch,
        result_summary,
        stored_document,
        stored_result,
    )
    from sdk.models import PropertyQuery

    agent = open_agent(config)
    try:
        if branch is not None and branch not in agent.config.branches:
            known = "、".join(agent.config.branches) or "（配置中没有 [branches]）"
            typer.secho(f"未知的支行 --branch {branch!r}：应为配置 [branches] 中的一个：{known}；未发送任何查询"
                        f"（unknown branch {branch!r}）", fg="red", err=True)  # fmt: skip
            raise typer.Exit(2)
        known_branch = agent.config.branches.get(branch) if branch else None
        # a branch's own 经办人 when the staff name none (the head office's is not the branch's at the centre)
        default_operator = (known_branch.default_operator if known_branch else None) or agent.config.default_operator
        if show:
            found = stored_result(agent.context, show)
            if found is None:
                typer.secho(f"本机没有保存查询编号为 {show} 的查询结果（no stored query result {show}）", fg="red",
                            err=True)  # fmt: skip
                raise typer.Exit(1)
            where = stored_document(agent.context, show)
            if as_json:  # for machines: the summary as before
                typer.echo(json.dumps({**result_summary(found), "document": where}, ensure_ascii=False, indent=2))
            else:
                _show(found, where, agent.config.timezone)
            return
        outcomes: list[QueryOutcome] = []
        if batch is not None:
            try:
                rows = read_batch(batch, default_operator=default_operator)
            except OSError as exc:
                typer.secho(f"无法读取批量文件 {batch}：{exc.strerror or exc}（请确认路径，且是 CSV 文件）", fg="red",
                            err=True)  # fmt: skip
                raise typer.Exit(2) from None
            except ValueError as exc:
                typer.secho(str(exc), fg="red", err=True)
                raise typer.Exit(2) from None
            for line, q, owner_ids, errors in rows:
                if q is None:
                    outcomes.append(QueryOutcome(f"{batch.name}:{line}", "invalid", errors))
                else:
                    outcomes.append(_asked(agent, q, owner_ids, f"{batch.name}:{line}", branch))
        else:
            kind = "organisation" if id_number and not id_number[:17].isdigit() else "person"
            dates: list[str] = []  # as staff type them, by the parser of the batch file and the exports

            def when(text: str | None, field: str) -> Any:
                if not text:
                    return None
                try:
                    if field == "authorisation.signed_at":  # a day alone: its start (not later than the signing)
                        return parse_moment(text, agent.config.timezone)[0]
                    return parse_day(text)
                except ValueError as exc:
                    option, column = OPTIONS[field]
                    dates.append(f"{option}（{column}）值 {text!r} 无效：应为{exc}")
                    return None

            data: dict[str, Any] = {
                "unit_id": unit,
                "title_certificate": certificate,
                "location": location,
                "operator_id": operator or default_operator,
                "authorisation": {
                    "reference": reference,
                    "applicant": {"kind": kind, "name": name, "id_number": id_number},
                    "signed_at": when(signed_at, "authorisation.signed_at"),
                    "signature_id": signature_id,
                    "valid_from": when(valid_from, "authorisation.valid_from"),
                    "valid_until": when(valid_until, "authorisation.valid_until"),
                    "purpose": purpose,
                },
            }
            given = {"unit_id": unit, "title_certificate": certificate, "location": location,
                     "authorisation.reference": reference, "authorisation.applicant.name": name,
                     "authorisation.applicant.id_number": id_number, "authorisation.signed_at": signed_at,
                     "authorisation.signature_id": signature_id, "operator_id": data["operator_id"]}  # fmt: skip
            problems = _missing(given) + dates
            if not problems:
                try:
                    q = PropertyQuery.model_validate(data)
                except ValidationError as exc:
                    problems = _invalid(exc, given)
            if problems:
                for line in problems:
                    typer.secho(line, fg="red", err=True)
                typer.secho("未发送任何查询。用法见 regbridge query --help", err=True)
                raise typer.Exit(2) from None
            outcomes.append(_asked(agent, q, set(owners) if owners else None, "", branch))
    finally:
        agent.close()
    _print(outcomes, as_json)
    unasked = sum(o.outcome == "unreachable" for o in outcomes)
    if unasked:
        typer.secho(f"{unasked} 条未查询：登记中心无法连接或暂时无法处理（共 {len(outcomes)} 条，已答复 "
                    f"{sum(o.outcome == 'answered' for o in outcomes)} 条）；请检查网络、代理和配置中的 [centre] url"
                    "（regbridge doctor），稍后对未查询的行重新查询", fg="red", err=True)  # fmt: skip
        raise typer.Exit(EXIT_UNREACHABLE)
    if any(o.outcome != "answered" for o in outcomes):
        raise typer.Exit(1)


def _asked(agent: Any, q: Any, owner_ids: set[str] | None, label: str, branch: str | None = None) -> Any:
    """One query sent (:func:`agent.pipeline.queries.run_query`), as ``branch`` (``[branches]``: its
    统一社会信用代码 behind a platform, its document folder) when given, else as the head office; the centre out
    of reach, or an error the centre answers that the query path does not name (an authentication refusal…), is
    this row's outcome — ``unreachable`` or ``failed``, one line, audited — and the batch goes on with its next
    row."""
    import sdk
    from agent.pipeline.queries import QueryOutcome, run_query

    label = label or str(q.unit_id or q.title_certificate or q.location)
    try:
        return run_query(agent.context, q, owner_ids=owner_ids, label=label, document=True, branch=branch)
    except sdk.RegBridgeError as exc:
        from sdk.privacy import mask_text

        line = out_of_reach_line(exc, "未查询")
        target = str(q.unit_id or q.title_certificate or q.location)
        outcome = "unreachable" if line else "failed"
        code = "centre_unreachable" if line else (getattr(exc, "code", None) or type(exc).__name__)
        line = line or f"登记中心应答错误，未完成查询（{code}: {mask_text(str(exc))}）"
        agent.audit.append("property.query", target, outcome, reasons=code, operator=q.operator_id,
                           authorisation=q.authorisation.reference, purpose=q.purpose)  # fmt: skip
        return QueryOutcome(label, outcome, [(code, line)])


def register(app: typer.Typer) -> None:
    app.command()(query)
