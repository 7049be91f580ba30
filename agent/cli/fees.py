"""``regbridge fees`` and ``regbridge fees pay REF``: registration fees (登记费), seed 001 §3.

The centre assesses a fee once it has recorded (登簿) the application; the certificate waits for
the payment. With ``[fees] auto_pay = false`` (the default) nothing is paid until someone runs
``regbridge fees pay REF``; docs/install.md says how to turn automatic payment on.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from agent.cli.common import CONFIG, open_agent, reaching_centre

__all__ = ["fees_app"]

fees_app = typer.Typer(
    help="Registration fees: what is due, paid and refunded; pay one by hand.", invoke_without_command=True
)


@fees_app.callback()
def fees_list(
    ctx: typer.Context,
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """What is due (assessed after 登簿, unpaid), paid, and refunded (元)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from agent.pipeline.fees import fee_listing

    agent = open_agent(config)
    try:
        listing = fee_listing(agent.store)
        auto = agent.config.fees.auto_pay
    finally:
        agent.close()
    if as_json:
        typer.echo(json.dumps({**listing, "auto_pay": auto}, ensure_ascii=False, indent=2))
        return
    console = Console()
    titles = {"due": "Due (应缴)", "paid": "Paid (已缴)", "refunded": "Refunded (已退)"}
    for key, title in titles.items():
        rows = listing[key]
        table = Table(title=f"{title}: {len(rows)}")
        columns = list(rows[0]) if rows else ["reference", "amount"]
        for col in columns:
            table.add_column("amount (元)" if col == "amount" else col)  # 元, two decimals (fen), as the centre says
        for row in rows:
            table.add_row(*[escape(str(row.get(c) if row.get(c) is not None else "")) for c in columns])
        console.print(table)
    if not auto and listing["due"]:
        console.print(
            "auto-pay is off: pay with `regbridge fees pay REF`, or set [fees] auto_pay = true in the config"
        )


@fees_app.command("pay")
def fees_pay(
    reference: str = typer.Argument(..., help="The application's reference (业务编号), e.g. DEMO-001-DYSC."),
    config: Path = CONFIG,
) -> None:
    """Pay one application's fee now: exactly what the centre's notice says is due, once."""
    from agent.pipeline.fees import FeeNotPayable, pay_now

    agent = open_agent(config)
    try:
        with reaching_centre(f"{reference}: 未缴费", "未缴费"):
            receipt = pay_now(agent.context, reference)
    except KeyError:
        typer.secho(f"本机没有业务编号为 {reference} 的申请（no application {reference}）", fg="red", err=True)
        raise typer.Exit(1) from None
    except FeeNotPayable as exc:
        typer.secho(f"{reference}: 无需缴费，未缴费（{exc}）", fg="yellow", err=True)
        raise typer.Exit(1) from None
    finally:
        agent.close()
    typer.echo(f"{reference}: paid {receipt.amount} 元, 票据号 {receipt.receipt_number} ({receipt.payment_id})")
