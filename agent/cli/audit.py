"""``regbridge audit verify``: the hash-chained audit log."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.cli.common import CONFIG

__all__ = ["audit_app"]


audit_app = typer.Typer(help="The agent's hash-chained audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(config: Path = CONFIG) -> None:
    """Walk the audit chain; exit 1 if a record was altered, removed or cut off."""
    from agent.config import load_config
    from agent.state.audit import verify_audit
    from agent.state.sqlite import SQLiteStore

    cfg = load_config(config)
    data = cfg.resolve(cfg.data_dir)
    store = SQLiteStore(data / "state.db")
    try:
        head = store.get_meta("audit_head")
    finally:
        store.close()
    expected = (int(head.split(":")[0]), head.split(":")[1]) if head else None
    result = verify_audit(data / "audit.log", expected)
    for line in result.torn_lines:
        typer.secho(f"line {line}: an incomplete record (a write cut by a crash); not part of the chain", fg="yellow")
    for problem in result.problems:
        typer.secho(problem, fg="red")
    if not result.ok:
        raise typer.Exit(1)
    typer.secho(f"audit chain intact: {result.records} records", fg="green")
