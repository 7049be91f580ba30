"""``regbridge audit verify | export``: the hash-chained audit log, checked, and exported for auditors."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import typer

from agent.cli.common import CONFIG, parse_moment

__all__ = ["audit_app"]


audit_app = typer.Typer(help="The agent's hash-chained audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(config: Path = CONFIG) -> None:
    """Walk the audit chain; exit 1 if a record was altered, removed or cut off."""
    from agent.cli.common import load_config_or_exit
    from agent.state.audit import verify_audit
    from agent.state.sqlite import SQLiteStore
    from agent.state.store import StateStore

    cfg = load_config_or_exit(config)
    data = cfg.resolve(cfg.data_dir)
    store: StateStore
    key = "audit_head"
    if cfg.state.url:  # a shared state: each instance's head under its own id (its data_dir's instance.id)
        from agent.state.sql import SQLStore

        store = SQLStore(cfg.state.url)
        instance = data / "instance.id"
        key = f"audit_head:{instance.read_text(encoding='utf-8').strip()}" if instance.exists() else ""
    else:
        store = SQLiteStore(data / "state.db")
    try:
        head = store.get_meta(key) if key else None
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


@audit_app.command("export")
def audit_export(
    config: Path = CONFIG,
    start: str = typer.Option(
        None,
        "--from",
        help="From this day or time (2026-11-30, 2026/11/30, 2026年11月30日, 2026/11/30 09:00, ISO 8601;"
        " the branch's time zone unless an offset).",
    ),
    end: str = typer.Option(None, "--to", help="Up to this day (inclusive) or time, written as --from."),
    fmt: str = typer.Option("csv", "--format", help="csv (UTF-8 with BOM, opens in Excel) or jsonl."),
    out: Path = typer.Option(None, "--out", help="A file (default: standard output)."),
) -> None:
    """The audit records of a period for auditors: who (operator, console user) did what, the centre's decisions.

    Records are masked as written; the export says whether the chain was intact when it was taken.
    """
    from agent.config import load_config
    from agent.state.audit import export_audit, verify_audit

    try:
        cfg = load_config(config)
    except ValueError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    bounds: list[datetime | None] = []
    for option, text in (("--from", start), ("--to", end)):
        try:  # the dates staff type, by the parser of every date option (a day: its start, for --to its end)
            moment, whole_day = parse_moment(text, cfg.timezone) if text else (None, False)
        except ValueError as exc:
            typer.secho(f"{option} 值 {text!r} 无效：应为{exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        if moment is not None and whole_day and option == "--to":
            moment += timedelta(days=1) - timedelta(microseconds=1)
        bounds.append(moment)
    since, until = bounds
    if fmt not in ("csv", "jsonl"):
        typer.secho("--format is csv or jsonl", fg="red", err=True)
        raise typer.Exit(2)
    log = cfg.resolve(cfg.data_dir) / "audit.log"
    data, count = export_audit(log, since, until, fmt, cfg.timezone)
    intact = verify_audit(log).ok
    if out is None:
        typer.echo(data.decode("utf-8-sig"), nl=False)
    else:
        out.write_bytes(data)
    typer.secho(
        f"{count} record(s) exported; audit chain {'intact' if intact else 'BROKEN: run `regbridge audit verify`'}",
        fg="green" if intact else "red",
        err=True,
    )
