"""The ``regbridge`` command: the agent (run, status, requeue, ingest, transmittal, audit, enroll), the
demo, and the sandbox centre (``regbridge sandbox …``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    name="regbridge",
    help="RegBridge: bank-side remote mortgage registration (互联网+不动产抵押登记).",
    no_args_is_help=True,
    add_completion=False,
)
audit_app = typer.Typer(help="The agent's hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

CONFIG = typer.Option(Path("agent.toml"), "--config", "-c", help="The agent's config file.", envvar="REGBRIDGE_CONFIG")


def _add_sandbox() -> None:
    try:
        from sandbox.cli import app as sandbox_app
    except ImportError:  # installed without the sandbox extra
        return
    app.add_typer(sandbox_app, name="sandbox")


def _version(value: bool) -> None:
    if value:
        from sdk._version import __version__

        typer.echo(f"regbridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """RegBridge: SDK, agent and sandbox registration centre."""


def _agent(config: Path, *, quiet: bool = True) -> Any:
    from agent.config import load_config
    from agent.daemon import Agent
    from agent.logs import setup_logging
    from agent.state.secrets import SecretUnavailable

    try:
        cfg = load_config(config)
    except ValueError as exc:
        typer.secho(f"config: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    setup_logging(cfg.resolve(cfg.data_dir) / "agent.log", stderr=not quiet)
    try:
        return Agent(cfg)
    except SecretUnavailable as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None


@app.command()
def run(
    config: Path = CONFIG,
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Work until nothing is left to do, then exit (cron or batch use, tests)."
    ),
    timeout: float = typer.Option(600.0, help="With --until-idle: give up after this many seconds (exit 3)."),
) -> None:
    """Run the agent as a daemon (SIGTERM for a clean stop), or once until idle."""
    from agent.daemon import AgentBusy, run_daemon

    agent = _agent(config, quiet=False)
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


@app.command()
def status(config: Path = CONFIG, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """The queue by state, errors, quarantine, deadlines, unpaid fees and alerts."""
    from rich.console import Console
    from rich.table import Table

    from agent.state.status import snapshot

    agent = _agent(config)
    try:
        snap = snapshot(agent.store)
    finally:
        agent.close()
    if as_json:
        typer.echo(json.dumps(snap, ensure_ascii=False, indent=2))
        return
    console = Console()
    if snap["paused"]:
        console.print(f"[bold red]submissions paused: {snap['paused']}[/]")
    table = Table(title="Applications by stage")
    table.add_column("stage")
    table.add_column("count", justify="right")
    for stage, n in sorted(snap["stages"].items()):
        table.add_row(stage, str(n))
    console.print(table)
    for title, key in (
        ("Quarantine", "quarantine"),
        ("补正 deadlines", "deadlines"),
        ("Errors", "errors"),
        ("Unpaid fees", "fees_unpaid"),
        ("Alerts", "alerts"),
    ):
        items = snap[key]
        if not items:
            continue
        t = Table(title=title)
        for col in items[0]:
            t.add_column(col)
        for item in items:
            t.add_row(
                *[("; ".join(v) if isinstance(v, list) else str(v if v is not None else "")) for v in item.values()]
            )
        console.print(t)
    console.print(f"paper originals owed to the centre: {snap['paper_owed']}")


@app.command()
def requeue(
    items: list[int] = typer.Argument(None, help="Quarantine ids (see `regbridge status`)."),
    all_open: bool = typer.Option(False, "--all", help="Every open quarantine item."),
    config: Path = CONFIG,
) -> None:
    """Try quarantined items again after the cause was fixed."""
    from agent.pipeline.requeue import requeue as do_requeue

    agent = _agent(config)
    try:
        ids = [q["id"] for q in agent.store.quarantined()] if all_open else list(items or [])
        if not ids:
            typer.echo("nothing to requeue")
            return
        bad = 0
        for item in ids:
            result = do_requeue(agent.context, item)
            colour = "green" if result.outcome == "requeued" else "yellow"
            typer.secho(f"{item}: {result.outcome} {result.detail}", fg=colour)
            bad += result.outcome != "requeued"
    finally:
        agent.close()
    if bad:
        raise typer.Exit(1)


@app.command()
def ingest(
    export: Path = typer.Argument(..., help="An export file to read now."),
    inbox: str = typer.Option(..., "--inbox", help="The inbox whose profile reads it."),
    config: Path = CONFIG,
) -> None:
    """Ingest one export now, with a progress bar (long imports); the daemon sends it."""
    from rich.progress import Progress

    from agent.pipeline.ingest import ingest_file

    agent = _agent(config)
    try:
        target = agent.context.inbox(inbox)
    except StopIteration:
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
    finally:
        agent.close()
    typer.echo(
        f"queued {len(report.queued)}, 补正 answers {len(report.supplements)}, duplicates "
        f"{len(report.duplicates)}, quarantined {len(report.quarantined)}"
        + (" (already processed)" if report.skipped else "")
    )


@app.command()
def transmittal(
    config: Path = CONFIG,
    out: Path = typer.Option(None, "--out", help="Folder for the CSV and PDF (default: transmittal_dir)."),
    confirm: str = typer.Option(None, "--confirm", help="Mark this transmittal's originals as delivered."),
) -> None:
    """The list of paper originals owed to the centre (CSV + printable PDF), or confirm a delivery."""
    from agent.pipeline.transmittal import make_transmittal

    agent = _agent(config)
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


@app.command()
def enroll(
    bundle: Path = typer.Argument(..., help="The enrolment bundle (JSON) the centre issued."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write agent.toml and keys/."),
    inbox: list[str] = typer.Option(
        ["corebank=inbox/corebank:corebank_csv"], "--inbox", help="NAME=PATH:PROFILE, repeatable."
    ),
    key_store: str = typer.Option(
        "auto", "--key-store", help="auto (the OS keyring where one works, else a file), keyring or file."
    ),
    algorithm: str = typer.Option(
        None, "--algorithm", help="ed25519 or ecdsa-p256-sha256 (intl), sm2-sm3 (gm); default: the bundle's suite's."
    ),
    fingerprint: str = typer.Option(
        None, "--fingerprint", help="The centre key's fingerprint as the centre published it (checked)."
    ),
) -> None:
    """Enrol this agent with a centre: a key made here, registered with the bundle's one-time token."""
    from agent.enrol import BundleError, enrol

    algorithms = (None, "ed25519", "ecdsa-p256-sha256", "sm2-sm3")
    if key_store not in ("auto", "keyring", "file") or algorithm not in algorithms:
        typer.secho("--key-store is auto, keyring or file; --algorithm ed25519, ecdsa-p256-sha256 or sm2-sm3", fg="red")
        raise typer.Exit(2)
    inboxes = _parse_inboxes(inbox)
    doc = _read_bundle(bundle, "enrolment")
    try:
        done = enrol(
            doc,
            directory,
            inboxes=inboxes,
            key_store=key_store,  # type: ignore[arg-type]
            algorithm=algorithm,  # type: ignore[arg-type]
            expected_fingerprint=fingerprint,
        )
    except BundleError as exc:
        typer.secho(f"enrolment failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # the centre's refusal (used token…) or the filesystem
        from sdk.privacy import mask_text

        typer.secho(f"enrolment failed: {mask_text(str(exc))}", fg="red", err=True)
        raise typer.Exit(1) from None
    if done.already:
        typer.echo(f"already enrolled (key {done.key_id}); nothing changed. Config: {done.path}")
        return
    typer.echo(f"enrolled: key {done.key_id}, kept in {done.key_where}")
    if done.secret_where:
        typer.echo(f"agent secret made and kept in {done.secret_where}")
    typer.echo(f"config written to {done.path}; next: regbridge doctor -c {done.path}")


@app.command()
def doctor(config: Path = CONFIG, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """Check config, key, clock, centre, folders, disk, document store and trust anchors; exit 1 on a failure."""
    from agent.doctor import diagnose

    findings = diagnose(config)
    if as_json:
        typer.echo(json.dumps([f.as_dict() for f in findings], ensure_ascii=False, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"regbridge doctor: {config}")
        for col in ("", "check", "finding", "fix"):
            table.add_column(col, overflow="fold")
        mark = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
        for f in findings:
            table.add_row(mark[f.status], f.check, f.detail, f.hint)
        Console().print(table)
    if any(f.status == "fail" for f in findings):
        raise typer.Exit(1)


keys_app = typer.Typer(help="The branch's signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
config_app = typer.Typer(help="The agent's configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _config_and_secret(config: Path) -> tuple[Any, bytes]:
    from agent.config import load_config
    from agent.state.secrets import SecretUnavailable, load_secret

    try:
        cfg = load_config(config)
        secret = load_secret(
            cfg.resolve(cfg.secret_file) if cfg.secret_file else None, keyring_user=cfg.centre.institution_id
        )
    except (ValueError, SecretUnavailable) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    return cfg, secret


@keys_app.command("show")
def keys_show(
    config: Path = CONFIG,
    offline: bool = typer.Option(False, "--offline", help="Do not ask the centre."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """Fingerprint, algorithm, age and keeping of each key; the centre's view; expiry warnings."""
    from agent.centre.client import centre_client
    from agent.credentials.custody import custody_for

    cfg, secret = _config_and_secret(config)
    custody = custody_for(cfg, secret)
    at_centre: dict[str, Any] = {}
    if not offline:
        try:
            with centre_client(cfg, custody.signer(cfg.centre.key_id)) as client:
                at_centre = {r.key_id: r for r in client.credentials.list()}
        except Exception as exc:
            typer.secho(f"the centre could not be asked: {exc}", fg="yellow", err=True)
    rows, warnings = [], []
    for e in custody.entries():
        record = at_centre.get(e.key_id or "")
        rows.append(
            {
                "key_id": e.key_id,
                "state": "in use" if e.key_id == cfg.centre.key_id else e.state,
                "algorithm": e.algorithm,
                "fingerprint": e.fingerprint,
                "age_days": round(e.age_days, 1),
                "kept": custody.where(e) if e.state != "retired" else "erased",
                "at_centre": (record.status + (f", revoked at {record.revoke_at}" if record.revoke_at else ""))
                if record
                else None,
                "retire_at": e.retire_at,
            }
        )
        if e.key_id == cfg.centre.key_id and e.age_days > cfg.centre.key_max_age_days:
            warnings.append(f"key {e.key_id} is {e.age_days:.0f} days old: rotate it (regbridge keys rotate)")
        if e.key_id == cfg.centre.key_id and record is not None and record.revoke_at:
            warnings.append(f"the centre retires the key in use at {record.revoke_at}: rotate now")
        if e.state == "pending":
            warnings.append("a rotation was interrupted: run regbridge keys rotate again to finish it")
    if as_json:
        typer.echo(json.dumps({"keys": rows, "warnings": warnings}, ensure_ascii=False, indent=2))
        return
    typer.echo(f"keys of {cfg.centre.institution_id} ({cfg.centre.institution_name})")
    for r in rows:
        typer.echo(
            f"\n{r['key_id'] or '(pending)'}  {r['state']}  {r['algorithm']}  {r['age_days']} days old"
            f"  at the centre: {r['at_centre'] or '?'}"
        )
        typer.echo(f"  fingerprint {r['fingerprint']}\n  kept in {r['kept']}")
        if r["retire_at"] and r["state"] == "previous":
            typer.echo(f"  erased here after {r['retire_at']}")
    for w in warnings:
        typer.secho(f"! {w}", fg="yellow")


@keys_app.command("rotate")
def keys_rotate(
    config: Path = CONFIG,
    grace: int = typer.Option(86400, "--grace", min=0, help="Seconds the old key stays valid (requests in flight)."),
    algorithm: str = typer.Option(None, "--algorithm", help="Default: the current key's."),
) -> None:
    """Register a new key authorised by the current one; a running agent switches to it within a second."""
    from agent.credentials.rotation import rotate
    from agent.state.audit import AuditLog

    cfg, secret = _config_and_secret(config)
    try:
        result = rotate(cfg, secret, grace_seconds=grace, algorithm=algorithm)  # type: ignore[arg-type]
    except Exception as exc:
        from sdk.privacy import mask_text

        typer.secho(f"rotation failed (run it again to finish it): {mask_text(str(exc))}", fg="red", err=True)
        raise typer.Exit(1) from None
    AuditLog(cfg.resolve(cfg.data_dir) / "audit.log").append(
        "key.rotated", f"{result.old_key_id}->{result.new_key_id}", "ok", retire_at=result.retire_at
    )
    typer.echo(
        f"{'finished the interrupted rotation: ' if result.resumed else ''}signing key is now {result.new_key_id};"
        f" {result.old_key_id} stays valid until {result.retire_at}, then the centre revokes it"
    )


@config_app.command("show")
def config_show(config: Path = CONFIG) -> None:
    """The effective settings (file + environment) with secrets redacted."""
    import tomlkit

    from agent.config import env_overrides, load_config, redacted

    try:
        cfg = load_config(config)
    except ValueError as exc:
        typer.secho(f"config: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"# {cfg.source}")
    for name in env_overrides():
        typer.echo(f"# overridden from the environment: {name}")
    typer.echo(tomlkit.dumps(redacted(cfg)), nl=False)


@config_app.command("schema")
def config_schema() -> None:
    """Every setting, its default, environment variable and meaning (Markdown)."""
    from agent.config import schema_markdown

    typer.echo(schema_markdown(), nl=False)


def _read_bundle(path: Path, what: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        typer.secho(f"{what} failed: {path}: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    return doc


def _parse_inboxes(specs: list[str]) -> list[dict[str, Any]]:
    inboxes = []
    for spec in specs:
        name, _, rest = spec.partition("=")
        path, _, profile = rest.rpartition(":")
        if not (name and path and profile):
            typer.secho(f"--inbox {spec!r}: expected NAME=PATH:PROFILE", fg="red", err=True)
            raise typer.Exit(2)
        inboxes.append({"name": name, "path": path, "profile": profile})
    return inboxes


def _install_plan(root: Path, user: str, executable: Path | None, inbox: list[str]) -> Any:
    import shutil
    import sys

    from installer.linux import InstallPlan

    plan = InstallPlan(root=root.resolve(), user=user)
    found = shutil.which("regbridge") or str(Path(sys.executable).parent / "regbridge")
    plan.executable = (executable or Path(found)).resolve()
    plan.inboxes = [{**i, "path": str(plan.path(i["path"]))} for i in _parse_inboxes(inbox)]
    return plan


@app.command()
def install(
    bundle: Path = typer.Option(None, "--bundle", help="Enrol with this bundle as part of the install."),
    inbox: list[str] = typer.Option(
        ["corebank=/srv/regbridge/inbox/corebank:corebank_csv"], "--inbox", help="NAME=PATH:PROFILE, repeatable."
    ),
    root: Path = typer.Option(Path("/"), "--root", help="Install under this folder instead of / (staging, tests)."),
    user: str = typer.Option("regbridge", "--user", help="The service user (created if missing)."),
    executable: Path = typer.Option(None, "--bin", help="The regbridge executable the unit runs."),
    key_store: str = typer.Option("file", "--key-store", help="file (headless servers) or keyring."),
    start: bool = typer.Option(True, "--start/--no-start", help="Enable and start the unit (systemd)."),
    watchdog: int = typer.Option(120, "--watchdog", min=10, help="WatchdogSec of the unit."),
) -> None:
    """Install the agent as a hardened systemd service: a service user, tight folders, the unit (Linux)."""
    from agent.enrol import BundleError
    from installer.linux import install as do_install

    plan = _install_plan(root, user, executable, inbox)
    plan.watchdog_seconds = watchdog
    doc = _read_bundle(bundle, "install") if bundle is not None else None
    try:
        result = do_install(plan, bundle=doc, key_store=key_store, start=start, say=typer.echo)
    except (BundleError, PermissionError, RuntimeError, OSError) as exc:
        typer.secho(f"install failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"installed; config {result['config']}; check it with: regbridge doctor -c {result['config']}")


@app.command()
def uninstall(
    root: Path = typer.Option(Path("/"), "--root", help="The folder it was installed under."),
    user: str = typer.Option("regbridge", "--user", help="The service user."),
    purge: bool = typer.Option(False, "--purge", help="Also remove config, keys, state and the service user."),
) -> None:
    """Stop and remove the service; config, keys and state are kept unless --purge."""
    from installer.linux import uninstall as do_uninstall

    do_uninstall(_install_plan(root, user, None, []), purge=purge, say=typer.echo)


@app.command()
def demo(
    workdir: Path = typer.Option(Path("regbridge-demo"), "--dir", help="Where the demo works (emptied first)."),
    suite: str = typer.Option("intl", "--suite", help="The centre's crypto suite: intl, or gm (SM2/SM3/SM4)."),
) -> None:
    """Sandbox centre + agent + sample exports, end to end; a summary at the end."""
    from rich.console import Console
    from rich.table import Table

    from agent.demo import run_demo

    console = Console()
    if suite not in ("intl", "gm"):
        typer.secho("--suite is intl or gm", fg="red")
        raise typer.Exit(2)
    summary = run_demo(workdir.resolve(), say=lambda text: console.print(text), suite=suite)
    table = Table(title="RegBridge demo: every loan operation")
    for col in ("贷款编号", "业务", "结果", "不动产登记证明号 / 原因", "证书位置"):
        table.add_column(col, overflow="fold")
    from sdk.models import APPLICATION_TYPES

    outcome = {"not_accepted": "不予受理", "refused": "不予登记", "cancelled": "作废", "withdrawn": "撤回"}
    for a in summary["applications"]:
        label = APPLICATION_TYPES[a["type"]].business_name
        if a["stage"] == "done":
            state = "[green]已办结[/]" + (" (经补正)" if "correction_required" in a["history"] else "")
        else:
            state = f"[red]{outcome.get(a['centre_status'], a['stage'])}[/]"
        numbers = "\n".join(c["number"] + (" [dim](已注销)[/]" if c["superseded"] else "") for c in a["certificates"])
        folders = sorted({str(Path(c["document"]).parent) + "/" for c in a["certificates"] if c["document"]})
        table.add_row(a["loan_no"], label, state, numbers or (a["reason"] or ""), "\n".join(folders))
    for q in summary["quarantined"]:
        row = f" 第{q['row']}行" if q["row"] else ""
        reasons = "\n".join(r if len(r) < 90 else r[:87] + "…" for r in q["reasons"])
        table.add_row(q["loan_no"] or "?", f"{q['file']}{row}", "[yellow]已隔离[/]", reasons, "")
    console.print(table)
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


_add_sandbox()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
