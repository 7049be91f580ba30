"""``regbridge run | requeue | reapply | ingest | transmittal``: the agent's day-to-day operation."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.cli.common import CONFIG, open_agent
from agent.messages import accounting_line

__all__ = ["register"]


def run(
    config: Path = CONFIG,
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Work until nothing is left to do, then exit (cron or batch use, tests)."
    ),
    timeout: float = typer.Option(600.0, help="With --until-idle: give up after this many seconds (exit 3)."),
) -> None:
    """Run the agent as a daemon (SIGTERM for a clean stop), or once until idle."""
    from agent.daemon import AgentBusy, run_daemon

    agent = open_agent(config, quiet=False)
    try:
        agent.lock_instance()
    except AgentBusy as exc:
        agent.close()
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    if not until_idle:
        run_daemon(agent)
        return
    try:
        idle = agent.run_until_idle(timeout)
    finally:
        agent.close()
    if not idle:
        typer.secho(f"work left after {timeout:g} s; see `regbridge status`", fg="yellow", err=True)
        raise typer.Exit(3)


def requeue(
    items: list[int] = typer.Argument(None, help="Quarantine ids (see `regbridge status`)."),
    all_open: bool = typer.Option(False, "--all", help="Every open quarantine item."),
    by: str = typer.Option(None, "--by", help="Who asks (default: the login name; audited).", envvar="USER"),
    config: Path = CONFIG,
) -> None:
    """Try quarantined items again after the cause was fixed (e.g. the profile): the kept copy of the export is
    read again with the current profile."""
    from agent.pipeline.requeue import requeue as do_requeue

    agent = open_agent(config)
    try:
        ids = [q["id"] for q in agent.store.quarantined()] if all_open else list(items or [])
        if not ids:
            typer.echo("nothing to requeue")
            return
        bad = 0
        for item in ids:
            result = do_requeue(agent.context, item, actor=by or None)
            colour = "green" if result.outcome == "requeued" else "yellow"
            typer.secho(f"{item}: {result.outcome} {result.detail}", fg=colour)
            bad += result.outcome != "requeued"
    finally:
        agent.close()
    if bad:
        raise typer.Exit(1)


def reapply(
    loan: str = typer.Argument(..., help="The loan number (贷款编号), or the refused application's reference."),
    config: Path = CONFIG,
) -> None:
    """Apply again for a refused loan: a new operation (<reference>-R<n>) from the application as last sent."""
    from agent.pipeline.reapply import NotReappliable, reapply_loan

    agent = open_agent(config)
    try:
        new_ref = reapply_loan(agent.context, loan)
    except KeyError:
        typer.secho(f"no application of loan or reference {loan}", fg="red", err=True)
        raise typer.Exit(1) from None
    except NotReappliable as exc:
        typer.secho(str(exc), fg="yellow", err=True)
        raise typer.Exit(1) from None
    finally:
        agent.close()
    typer.echo(f"{loan}: queued again as {new_ref}; the daemon sends it")


def ingest(
    export: Path = typer.Argument(..., help="An export file to read now."),
    inbox: str = typer.Option(..., "--inbox", help="The inbox whose profile reads it."),
    config: Path = CONFIG,
) -> None:
    """Ingest one export now, with a progress bar (long imports); the daemon sends it.

    A file in the inbox's folder is retired as the daemon would; a file anywhere else stays where it is.
    A symbolic link is refused (exit 2).
    """
    from rich.progress import Progress

    from agent.pipeline.ingest import ExportRefused, ingest_file

    if export.is_symlink():
        typer.secho(f"{export} 是符号链接，拒绝读取 (an export reached through a symbolic link)", fg="red", err=True)
        raise typer.Exit(2)
    if not export.is_file():
        typer.secho(f"no such export file: {export}", fg="red", err=True)
        raise typer.Exit(2)
    agent = open_agent(config)
    try:
        target = agent.context.inbox(inbox)
    except StopIteration:
        agent.close()
        typer.secho(f"no inbox {inbox!r} in {config}", fg="red", err=True)
        raise typer.Exit(2) from None
    try:
        with Progress() as bar:
            task = bar.add_task(f"reading {export.name}", total=None)
            report = ingest_file(
                agent.context,
                target,
                export,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except ExportRefused as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    finally:
        agent.close()
    typer.echo(
        f"queued {len(report.queued)}, 补正 answers {len(report.supplements)}, duplicates "
        f"{len(report.duplicates)}, quarantined {len(report.quarantined)}"
        + (" (already processed)" if report.skipped else "")
    )
    if report.records:
        typer.echo(accounting_line(report.records, report.rows, report.encoding))


def transmittal(
    config: Path = CONFIG,
    out: Path = typer.Option(None, "--out", help="Folder for the CSV and PDF (default: transmittal_dir)."),
    confirm: str = typer.Option(None, "--confirm", help="Mark this transmittal's originals as delivered."),
) -> None:
    """The list of paper originals owed to the centre (CSV + printable PDF), or confirm a delivery."""
    from agent.pipeline.transmittal import make_transmittal

    agent = open_agent(config)
    try:
        if confirm:
            try:
                n = agent.store.confirm_transmittal(confirm)
            except KeyError:
                typer.secho(f"no transmittal {confirm}", fg="red", err=True)
                raise typer.Exit(1) from None
            agent.audit.append("transmittal.delivered", confirm, "ok", applications=n)
            typer.echo(f"{confirm}: {n} application(s) marked delivered")
            return
        result = make_transmittal(agent.context, out or agent.config.resolve(agent.config.transmittal_dir))
    finally:
        agent.close()
    if not result.count:
        typer.echo("no paper originals are owed")
        return
    typer.echo(f"{result.id}: {result.count} application(s)\n  {result.csv_path}\n  {result.pdf_path}")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(requeue)
    app.command()(reapply)
    app.command()(ingest)
    app.command()(transmittal)
