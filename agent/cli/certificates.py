"""``regbridge certificates check [LOAN]``: re-check stored certificates and sealed notices online (在线核验)
and locally before they are used (seed 003 (四)); :mod:`agent.pipeline.recheck` does the work.

Exit codes (for scripts): 0 every document valid; 1 one at least is revoked, invalid, superseded or unknown
to the centre; 3 none failed but one at least could not be checked now (centre or CRL out of reach);
2 the config or the agent secret cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from agent.cli.common import CONFIG, open_agent

__all__ = ["certificates_app"]

certificates_app = typer.Typer(help="Stored certificates and notices: re-check them before use.", no_args_is_help=True)


@certificates_app.command("check")
def check(
    loan: str | None = typer.Argument(None, help="Only this loan's documents (贷款编号)."),
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable, one object per document."),
) -> None:
    """复核已入库的登记证明和通知书: the centre's online verification and locally (seal and its validity now,
    chain with today's CRL, digest, visible text); superseded, revoked or failing ones are marked in the store
    and the receipts and alerted. Exit 0 all valid, 1 one failed, 3 one could not be checked now."""
    from agent.pipeline.deliver import mark_superseded_due
    from agent.pipeline.receipts import write_receipts
    from agent.pipeline.recheck import VERDICTS, recheck_certificates

    agent = open_agent(config)
    try:
        results = recheck_certificates(agent.context, loan_no=loan)
        mark_superseded_due(agent.context)  # superseded ones: their sidecars and receipt lines now
        write_receipts(agent.context)
    finally:
        agent.close()
    if as_json:
        typer.echo(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(f"复核文书 {len(results)} 份" + (f"（贷款 {loan}）" if loan else "")))
        for col in ("贷款编号", "文书", "编号", "在线核验", "本地核验", "结论", "原因"):
            table.add_column(col)
        online = {"valid": "有效", "superseded": "已被替代", "unknown": "查无此文书", "unreachable": "无法连接"}
        local = {"valid": "通过", "invalid": "未通过", "unknown": "未能核验"}
        for r in results:
            table.add_row(escape(r["loan_no"]), escape(r["title"]), escape(r["number"] or r["document_id"]),
                          online[r["online"]], local[r["local"]], VERDICTS[r["verdict"]],
                          escape("；".join(r["reasons"])))  # fmt: skip
        Console(width=200).print(table)
        if not results:
            typer.echo("没有已入库的文书" + (f"（贷款 {loan}）" if loan else ""))
    verdicts = {r["verdict"] for r in results}
    raise typer.Exit(1 if verdicts - {"valid", "unchecked"} else 3 if "unchecked" in verdicts else 0)
