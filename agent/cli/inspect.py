"""``regbridge status | show | search | quarantine | logs``: what bank IT asks the agent at 2 a.m.

``status`` opens with whether the agent runs (pid, version, uptime), where its config and log are,
when it last reached the centre and the open alerts, each with its fix; then the queues per inbox and
the loans that need a person. ``show LOAN`` prints one loan's whole history with times; ``search``
finds loans by loan number, reference, 受理号, 证明号, 不动产单元号 or a party's ID number (through a
keyed hash: the number is neither stored nor printed). Names and ID numbers are masked everywhere.
"""

from __future__ import annotations

import fcntl
import json
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import typer

from agent.cli.common import CONFIG, open_agent
from agent.messages import for_staff
from sdk.privacy import mask_text

__all__ = ["agent_process", "quarantine_app", "register"]

quarantine_app = typer.Typer(help="Rows, files and certificates set aside, with their reasons.", no_args_is_help=True)


def agent_process(data_dir: Path) -> dict[str, Any]:
    """Is a daemon running on ``data_dir``? ``{running, pid, version, started_at, uptime_seconds}``.

    The daemon holds an exclusive lock on ``agent.lock`` for its whole life (``regbridge run``), so a
    lock that cannot be taken means it runs; its pid is in the file, its start in the state store.
    """
    lock = data_dir / "agent.lock"
    out: dict[str, Any] = {"running": False, "pid": None, "version": None, "started_at": None, "uptime_seconds": None}
    if not lock.exists():
        return out
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            out["running"] = True
            out["pid"] = int(fh.read().strip() or 0) or None
        else:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return out


def _daemon_meta(store: Any, proc: dict[str, Any], key: str = "daemon") -> dict[str, Any]:
    raw = store.get_meta(key)
    if not raw:
        return proc
    meta = json.loads(raw)
    proc = {**proc, "version": meta.get("version"), "started_at": meta.get("started_at")}
    if proc["running"] and meta.get("pid") == proc["pid"] and meta.get("started_at"):
        started = datetime.fromisoformat(meta["started_at"])
        proc["uptime_seconds"] = round(time.time() - started.timestamp())
    return proc


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def status(config: Path = CONFIG, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """Running or not, paths, last centre contact, alerts with fixes, queues per inbox, loans needing a person."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from agent.state.status import snapshot
    from agent.state.store import local_time

    agent = open_agent(config)
    try:
        cfg = agent.config
        proc = _daemon_meta(agent.store, agent_process(agent.data_dir), agent.daemon_meta_key)
        snap = snapshot(agent.store)
        here = agent.instance_id if agent.config.state.url else None
    finally:
        agent.close()
    snap["agent"] = proc
    snap["paths"] = {
        "config": str(cfg.source),
        "log": str(cfg.log_file),
        "data": str(cfg.resolve(cfg.data_dir)),
        "audit": str(cfg.resolve(cfg.data_dir) / "audit.log"),
    }
    if as_json:
        typer.echo(json.dumps(snap, ensure_ascii=False, indent=2))
        return
    tz = cfg.timezone

    def at(value: str | None) -> str:
        return local_time(value, tz) if value else "never"

    def cell(value: Any) -> str:  # data (file names, loan numbers, reasons…) is never read as Rich markup
        return escape(str(value))

    console = Console(highlight=False, soft_wrap=True)
    if proc["running"]:
        console.print(
            f"[bold green]running[/]  pid {proc['pid']}  version {cell(proc['version'] or '?')}  "
            f"up {_duration(proc['uptime_seconds'])} (since {at(proc['started_at'])})"
        )
    else:
        console.print(f"[bold red]not running[/]  (last started {at(proc['started_at'])}; start: `regbridge run`)")
    for name, path in snap["paths"].items():
        console.print(f"  {name:<7} {cell(path)}")
    console.print(f"last contact with the centre: {at(snap['last_contact'])}")
    if snap["paused"]:
        console.print(f"[bold red]submissions paused: {escape(str(snap['paused']))}[/]")
    if snap["alerts"]:
        console.print(f"[bold red]{len(snap['alerts'])} open alert(s)[/]")
        for a in snap["alerts"]:
            console.print(f"  [red]●[/] {escape(a['kind'])} (since {at(a['since'])}): {escape(a['message'])}")
            console.print(f"    fix: {escape(a['fix'])}")  # "[metrics] port" is the config's, not rich markup
    else:
        console.print("no open alerts")
    if cfg.state.url and snap["instances"]:  # several instances on one state (docs/state.md)
        hosts = Table(title="Instances on the shared state", caption="* this host")
        for col in ("instance", "host", "pid", "heartbeat", "leader", "leases", "claims"):
            hosts.add_column(col)
        for i in snap["instances"]:
            hosts.add_row(
                cell(i["id"] + (" *" if i["id"] == here else "")),
                cell(i["host"]),
                cell(i["pid"]),
                f"{i['heartbeat_age']:.1f} s ago",
                "leader" if i["leader"] else "",
                cell(", ".join(i["leases"]) or "-"),
                cell(i["claims"]),
            )
        console.print(hosts)
    queues = Table(title="Queues per inbox (applications by stage)")
    stages = sorted({s for counts in snap["inboxes"].values() for s in counts})
    queues.add_column("inbox")
    for stage in stages:
        queues.add_column(stage, justify="right")
    for inbox in cfg.inbox:
        counts = snap["inboxes"].get(inbox.name, {})
        queues.add_row(cell(inbox.name), *[str(counts.get(s, 0)) for s in stages])
    console.print(queues)
    if snap["needing_person"]:
        t = Table(title="Loans needing a person")
        for col in ("loan", "reference", "why", "detail", "since"):
            t.add_column(col)
        for e in snap["needing_person"]:
            detail = e["detail"]
            if e["why"] == "补正":
                detail = f"deadline {at(e.get('deadline'))}: {', '.join(e.get('items') or [])}"
            t.add_row(cell(e["loan_no"]), cell(e["reference"]), cell(e["why"]), cell(detail), at(e["since"]))
        console.print(t)
    else:
        console.print("no loan needs a person")
    exports = Table(title="Exports (最近读取的文件)")
    for col in ("file", "status", "records"):
        exports.add_column(col)
    for f in snap["files"]:
        exports.add_row(cell(f["file"]), cell(f["status"]), cell(f["summary"]))
    if snap["files"]:
        console.print(exports)
    for title, key in (
        ("Quarantine", "quarantine"),
        ("Errors", "errors"),
        ("Re-applications", "reapplied"),
        ("Overdue 超过承诺办结时限 (regbridge late)", "overdue"),
    ):
        items = snap[key]
        if not items:
            continue
        t = Table(title=title)
        for col in items[0]:
            t.add_column(cell(col))
        for item in items:
            values = ["; ".join(v) if isinstance(v, list) else (v if v is not None else "") for v in item.values()]
            if key in ("quarantine", "errors"):  # stored reasons: no pre-flight code nor JSON pointer, masked
                values = [for_staff(v) if isinstance(v, str) else v for v in values]
            t.add_row(*[cell(v) for v in values])
        console.print(t)
    figure = snap["first_time_acceptance"]
    if figure["decided"]:
        console.print(
            f"first-time acceptance (登簿 without 补正 or refusal): {figure['first_time']} of {figure['decided']} "
            f"decided = {figure['share']:.0%} ({figure['registered']} registered)"
        )
    if snap.get("held_by_preflight"):
        console.print(f"refusals avoided by the register pre-flight (held before sending): {snap['held_by_preflight']}")
    console.print(f"paper originals owed to the centre: {snap['paper_owed']}")


def show(
    loan: str = typer.Argument(..., help="The loan number (贷款编号) or one of its references."),
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable (the raw codes)."),
    raw: bool = typer.Option(False, "--raw", help="For bank IT: the raw codes, audit details and stored times."),
) -> None:
    """A loan's whole history: rows, applications, events, notices, fees, certificates, receipts, with times.

    Branch staff read it in Chinese with local times (the web console's timeline); ``--raw`` gives bank
    IT the codes, the audit records' details and the times as stored (UTC).
    """
    from dataclasses import asdict

    from agent.state.lookup import loan_history

    agent = open_agent(config)
    try:
        history = loan_history(agent.store, loan, agent.data_dir / "audit.log")
        tz = agent.config.timezone
    finally:
        agent.close()
    if not history.applications and not history.quarantine:
        typer.secho(f"没有贷款编号或业务编号 {mask_text(loan)} (no loan or reference)", fg="red", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(asdict(history), ensure_ascii=False, indent=2))
        return
    if raw:
        _show_raw(history)
        return
    from agent import labels as zh

    typer.secho(f"贷款编号 {history.loan_no}", bold=True)
    for a in history.applications:
        typer.echo(
            f"\n{a['reference']}  {zh.business_type(a['type'])}  收件夹 {a['inbox']}  阶段 {zh.stage(a['stage'])}"
            f"  登记中心 {zh.centre_status(a['centre_status'])}  受理号 {a['application_id'] or '-'}"
        )
        typer.echo(
            f"  来源：{'；'.join(a['rows'])}   经办人 {a['operator'] or '-'}   纸质原件 {zh.paper_status(a['paper'])}"
        )
        if a["correction"]:
            items = "、".join(zh.material(i) for i in a["correction"]["items"])
            typer.echo(f"  补正：期限 {zh.when(a['correction']['deadline'], tz) or '未定'}  材料 {items}")
        if a["decision"]:
            reason = zh.chinese_or(a["decision"]["reason"], "详见登记中心的告知书") if a["decision"]["reason"] else ""
            typer.echo(f"  决定：{zh.centre_status(a['decision']['status'] or a['centre_status'])} {reason}".rstrip())
        if a["fee"]:
            typer.echo(f"  登记费：{a['fee']['amount']} 元（{zh.fee_status(a['fee']['status'])}）")
        if a["last_error"]:
            typer.echo(
                f"  最近错误：{zh.chinese_or(a['last_error'], '处理中出现错误（regbridge show --raw 可看详情）')}"
            )
        for c in a["certificates"]:
            typer.echo(f"  登记证明 {c['number'] or '（尚无证明号）'}：{zh.certificate_stage(c['stage'])}")
    for q in history.quarantine:
        typer.echo(f"\n隔离区 #{q['id']}（{zh.quarantine_kind(q['kind'])}，{zh.quarantine_status(q['status'])}）"
                   f"{Path(str(q['file'] or '')).name} {q['row']}：{zh.for_staff('；'.join(q['errors']))}")  # fmt: skip
    typer.secho("\n时间线", bold=True)
    for e in zh.narrate(history.timeline, tz):
        who = f"  [{e['actor']}]" if e["actor"] != "系统" else ""
        typer.echo(f"  {e['at']}  {e['reference']:<18} {e['category']}  {e['sentence']}{who}")


def _show_raw(history: Any) -> None:
    typer.secho(f"loan {history.loan_no} (raw: codes, audit details, stored times in UTC)", bold=True)
    for a in history.applications:
        typer.echo(
            f"\n{a['reference']}  {a['type']}  inbox {a['inbox']}  stage {a['stage']}"
            f"  centre {a['centre_status'] or '-'}  application_id {a['application_id'] or '-'}"
        )
        typer.echo(f"  from: {'; '.join(a['rows'])}   operator {a['operator'] or '-'}   paper {a['paper']}")
        if a["correction"]:
            typer.echo(
                f"  correction: deadline {a['correction']['deadline']}  items {', '.join(a['correction']['items'])}"
            )
        if a["decision"]:
            typer.echo(f"  decision: {a['decision']['status'] or ''} {a['decision']['reason'] or ''}")
        if a["fee"]:
            typer.echo(f"  fee: {a['fee']['amount']} ({a['fee']['status']})")
        if a["last_error"]:
            typer.echo(f"  last error: {a['last_error']}")
        for c in a["certificates"]:
            typer.echo(f"  certificate {c['number'] or c['certificate_id']}: {c['stage']} {c['location'] or ''}")
    for q in history.quarantine:
        typer.echo(f"\nquarantine #{q['id']} ({q['kind']}, {q['status']}) {q['file']} {q['row']}: "
                   f"{'; '.join(q['errors'])}")  # fmt: skip
    typer.secho("\ntimeline", bold=True)
    for e in history.timeline:
        actor = f" [{e['actor']}]" if e.get("actor") else ""
        note = f" — {mask_text(str(e['note']))}" if e.get("note") else ""
        typer.echo(f"  {e['at']}  {e['reference']:<18} {e['kind']:<11} {e['what']}{actor}{note}")


_BY_ZH = {"loan_no": "贷款编号", "reference": "业务编号", "application_id": "受理号",
          "certificate_number": "不动产登记证明号", "unit": "不动产单元号", "person": "证件号码"}  # fmt: skip


def search(
    query: str = typer.Argument(..., help="A loan number, reference, 受理号, 证明号, 不动产单元号 or ID number."),
    by: str = typer.Option(
        None, "--by", help="Only this key: loan_no, reference, application_id, certificate_number, unit, person."
    ),
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """Find loans by any of their keys; an ID number is matched through a keyed hash and never printed."""
    from dataclasses import asdict

    from agent.state.lookup import masked_query
    from agent.state.lookup import search as do_search

    agent = open_agent(config)
    try:
        matches = do_search(agent.store, query, agent.person_key, by=by)
    finally:
        agent.close()
    shown = masked_query(query)
    if as_json:
        typer.echo(json.dumps({"query": shown, "matches": [asdict(m) for m in matches]}, ensure_ascii=False))
        return
    if not matches:
        typer.secho(f"没有找到 {shown} (nothing found)", fg="yellow", err=True)
        raise typer.Exit(1)
    from agent import labels as zh

    for m in matches:
        typer.echo(
            f"{m.loan_no}\t{m.reference}\t{zh.stage(m.stage)}\t{zh.centre_status(m.centre_status)}\t"
            f"(by {m.by}) 按{_BY_ZH.get(m.by, m.by)}找到"
        )


@quarantine_app.command("list")
def quarantine_list(
    config: Path = CONFIG,
    all_items: bool = typer.Option(False, "--all", help="Also the dismissed, requeued and resolved ones."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """The quarantine items (open ones by default), each with its reason."""
    from agent.state.lookup import row_ref
    from agent.state.status import quarantine_reasons

    agent = open_agent(config)
    try:
        items = agent.store.quarantined(None if all_items else "open")
    finally:
        agent.close()
    rows = [
        {"id": q["id"], "kind": q["kind"], "status": q["status"], "loan_no": q["loan_no"], "file": q["path"],
         "row": row_ref(q["row"]), "reason": quarantine_reasons(q)}
        for q in items
    ]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        r["reason"] = for_staff(r["reason"])  # as staff read it; --json keeps the codes
    if not rows:
        typer.echo("nothing in quarantine")
    for r in rows:
        typer.echo(
            f"#{r['id']}\t{r['kind']}\t{r['status']}\t{r['loan_no'] or '-'}\t{r['file']} {r['row']}\t{r['reason']}"
        )


@quarantine_app.command("show")
def quarantine_show(item: int = typer.Argument(..., help="The quarantine id."), config: Path = CONFIG) -> None:
    """One quarantine item: where it came from and every error, masked."""
    from agent.messages import error_value, field_line
    from agent.state.lookup import row_ref
    from agent.state.store import local_time

    agent = open_agent(config)
    try:
        q = agent.store.quarantine_item(item)
        tz = agent.config.timezone
    finally:
        agent.close()
    if q is None:
        typer.secho(f"no quarantine item {item}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"#{q['id']} {q['kind']} — {q['status']}")
    typer.echo(f"  file: {q['path']} {row_ref(q['row'])}")
    typer.echo(f"  loan: {q['loan_no'] or '-'}  reference: {q['reference'] or '-'}")
    typer.echo(f"  since: {local_time(q['created_at'], tz)}" + (
        f"  closed: {local_time(q['resolved_at'], tz)}" if q["resolved_at"] else ""))  # fmt: skip
    for e in q["errors"]:
        line = field_line(e.get("row"), e.get("line"), e["field"], error_value(e), e["expected"])
        typer.echo("  - " + for_staff(line))
    if q["status"] == "open":
        typer.echo(f"  next: fix the cause, then `regbridge requeue {q['id']}`; or `regbridge quarantine dismiss "
                   f"{q['id']} --reason …`")  # fmt: skip


@quarantine_app.command("dismiss")
def quarantine_dismiss(
    item: int = typer.Argument(..., help="The quarantine id."),
    reason: str = typer.Option(..., "--reason", help="Why it is set aside for good (kept in the audit log)."),
    by: str = typer.Option(None, "--by", help="Who decides (default: the login name).", envvar="USER"),
    config: Path = CONFIG,
) -> None:
    """Close an item without requeueing it (e.g. the loan system will export it again); audited."""
    from agent.pipeline.requeue import dismiss

    agent = open_agent(config)
    try:
        result = dismiss(agent.context, item, reason, by or "unknown")
    finally:
        agent.close()
    colour = "green" if result.outcome == "dismissed" else "red"
    typer.secho(f"{item}: {result.outcome} {result.detail}", fg=colour)
    if result.outcome != "dismissed":
        raise typer.Exit(1)


def logs(
    config: Path = CONFIG,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(40, "--lines", "-n", help="How many of the last lines."),
    raw: bool = typer.Option(False, "--raw", help="The JSON lines as written."),
) -> None:
    """The agent's log (personal data already masked), newest last, times in the agent's zone (--raw: as
    written, UTC); -f follows it across rotations."""
    from agent.config import load_config
    from agent.state.store import local_time

    try:
        cfg = load_config(config)
    except ValueError as exc:
        typer.secho(f"config: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    path = cfg.log_file
    typer.secho(f"# {path}", fg="cyan", err=True)

    def render(line: str) -> str:
        if raw:
            return line.rstrip("\n")
        try:
            rec = json.loads(line)
        except ValueError:
            return line.rstrip("\n")
        extra = {k: v for k, v in rec.items() if k not in ("at", "level", "logger", "msg")}
        tail = " ".join(f"{k}={v}" for k, v in extra.items())
        at = local_time(str(rec.get("at") or ""), cfg.timezone, timespec="milliseconds")
        return f"{at} {str(rec.get('level', '')).upper():<7} {rec.get('msg', '')} {tail}".rstrip()

    if not path.exists() and not follow:
        typer.secho(f"no log yet at {path}", fg="yellow", err=True)
        raise typer.Exit(1)
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as head:
            for line in head.readlines()[-lines:]:
                typer.echo(render(line))
    if not follow:
        return
    fh: IO[str] | None = open(path, encoding="utf-8", errors="replace") if path.exists() else None  # noqa: SIM115
    if fh is not None:
        fh.seek(0, 2)  # the last lines were printed above: follow from the end
    inode = path.stat().st_ino if fh is not None else None
    try:
        while True:
            if fh is not None:
                line = fh.readline()
                if line:
                    typer.echo(render(line))
                    continue
            try:
                current = path.stat().st_ino
            except FileNotFoundError:
                current = None
            if current is not None and current != inode:  # rotated (or created): read the new file from its start
                if fh is not None:
                    fh.close()
                fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - followed until Ctrl-C
                inode = current
                continue
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if fh is not None:
            fh.close()


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(show)
    app.command()(search)
    app.command()(logs)
    app.add_typer(quarantine_app, name="quarantine")
