"""``regbridge demo``: the sandbox centre, an agent and sample exports, end to end, with a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]


def demo(
    workdir: Path = typer.Option(
        Path("regbridge-demo"),
        "--dir",
        help="Where the demo works: a new or empty folder, or a previous demo folder (emptied first).",
    ),
    suite: str = typer.Option("intl", "--suite", help="The centre's crypto suite: intl, or gm (SM2/SM3/SM4)."),
    envelope: str = typer.Option(
        None, "--envelope", help="gm: the centre asks for the parties' names and ID numbers SM4-encrypted both ways:"
        " SM4-GCM or SM4-CBC.",
    ),
    dialect: str | None = typer.Option(
        None,
        "--dialect",
        help="province: one head-office agent, two branches, two county centres behind a provincial platform "
        "(docs/dialects.md), as `regbridge sandbox serve --dialect province` serves it.",
    ),
) -> None:
    """Sandbox centre + agent + sample exports, end to end; a summary at the end."""
    from rich.console import Console
    from rich.table import Table

    from agent.demo import DemoFolderRefused, run_demo
    from agent.messages import for_staff

    console = Console()
    if dialect is not None:
        _province_demo(console, workdir, dialect)
        return
    if suite not in ("intl", "gm"):
        typer.secho("--suite is intl or gm", fg="red")
        raise typer.Exit(2)
    if envelope is not None and (suite != "gm" or envelope not in ("SM4-GCM", "SM4-CBC")):
        typer.secho("--envelope is SM4-GCM or SM4-CBC, with --suite gm", fg="red")
        raise typer.Exit(2)
    try:
        summary = run_demo(workdir.resolve(), say=lambda text: console.print(text), suite=suite, envelope=envelope)
    except DemoFolderRefused as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    table = Table(title="RegBridge demo: every loan operation")
    for col in ("贷款编号", "业务", "结果", "不动产登记证明号 / 原因", "证书位置"):
        table.add_column(col, overflow="fold")
    from sdk.models import APPLICATION_TYPES

    outcome = {"not_accepted": "不予受理", "refused": "不予登记", "cancelled": "作废", "withdrawn": "撤回"}
    for a in summary["applications"]:
        label = APPLICATION_TYPES[a["type"]].business_name
        if a["stage"] == "done":
            state = "[green]已办结[/]" + (" (经补正)" if "correction_required" in a["history"] else "")
        elif a["stage"] == "quarantined":  # held before sending (pre-flight, operator, e-signature): its row below
            state = "[yellow]已隔离（未提交）[/]"
        else:
            state = f"[red]{outcome.get(a['centre_status'], a['stage'])}[/]"
        numbers = "\n".join(c["number"] + (" [dim](已注销)[/]" if c["superseded"] else "") for c in a["certificates"])
        folders = sorted({str(Path(c["document"]).parent) + "/" for c in a["certificates"] if c["document"]})
        reason = a["reason"] or ("原因见下方隔离记录" if a["stage"] == "quarantined" else "")
        table.add_row(a["loan_no"], label, state, numbers or reason, "\n".join(folders))
    for q in summary["quarantined"]:
        row = f" 第{q['row']}行" if q["row"] else ""
        shown = [for_staff(r) for r in q["reasons"]]  # no pre-flight code nor JSON pointer
        reasons = "\n".join(r if len(r) < 90 else r[:87] + "…" for r in shown)
        table.add_row(q["loan_no"] or "?", f"{q['file']}{row}", "[yellow]已隔离[/]", reasons, "")
    console.print(table)
    if summary.get("notices"):
        from sdk.models import NOTICE_KINDS

        notices = Table(title=f"sealed notices stored: {len(summary['notices'])} (受理凭证, 通知书)")
        for col in ("贷款编号", "文书", "文书编号", "位置"):
            notices.add_column(col, overflow="fold")
        for n in summary["notices"]:
            where = Path(n["document"])
            notices.add_row(n["loan_no"], NOTICE_KINDS.get(n["kind"], n["kind"]), n["number"],
                            f"{where.parent.name}/{where.name}")  # fmt: skip
        console.print(notices)
    console.print(
        f"paper originals: transmittal {summary['transmittal']['id']} lists {summary['transmittal']['count']}"
        f" application(s) ({summary['transmittal']['pdf']})"
    )
    console.print(
        f"audit chain: {'intact' if summary['audit']['ok'] else 'BROKEN'}, {summary['audit']['records']} records"
    )
    console.print("where to look:")
    for what, where in summary["where"].items():
        console.print(f"  {what}: {', '.join(where) if isinstance(where, list) else where}")
    console.print(f"finished in {summary['seconds']} s")
    if summary["problems"]:
        for p in summary["problems"]:
            console.print(f"[bold red]✗ {p}[/]")
        raise typer.Exit(1)
    console.print("[bold green]✓ every application reached its expected end[/]")


def register(app: typer.Typer) -> None:
    app.command()(demo)


def _province_demo(console: Any, workdir: Path, dialect: str) -> None:
    from rich.table import Table

    from agent.demo import DemoFolderRefused
    from agent.demo.province import run_province_demo

    if dialect != "province":
        typer.secho("--dialect is province (config/dialects/province.toml)", fg="red")
        raise typer.Exit(2)
    try:
        summary = run_province_demo(workdir.resolve(), say=lambda text: console.print(text, markup=False))
    except DemoFolderRefused as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    table = Table(title="RegBridge demo (总对总): two branches, two county centres, one platform")
    for col in ("支行", "贷款编号", "登记中心 (行政区划)", "结果", "不动产登记证明号", "证书位置"):
        table.add_column(col, overflow="fold")
    for b in summary["branches"]:
        for a in b["applications"]:
            state = "[green]已办结[/]" if a["stage"] == "done" else f"[red]{a['stage']}[/]"
            table.add_row(b["branch"], a["loan_no"], a["district"] or "", state, "\n".join(a["certificates"]),
                          "\n".join(a["documents"]))  # fmt: skip
    console.print(table)
    for b in summary["branches"]:
        console.print(f"{b['branch']}: receipts in inbox/{b['inbox']}/receipts name {', '.join(b['receipt_loans'])};"
                      f" the platform's 查封 on {', '.join(b['seizures'])} is a receipt line there (notice_seizure)",
                      markup=False)  # fmt: skip
    console.print("regbridge doctor (platform): " + ", ".join(f"{c} {s}" for c, s in summary["doctor"].items()),
                  markup=False)  # fmt: skip
    if summary["problems"]:
        for p in summary["problems"]:
            console.print(f"[red]problem:[/] {p}")
        raise typer.Exit(1)
