"""``regbridge profile check``: read an export through a profile as ingest would, changing nothing.

Exit status: 0 the file could be read (whatever its records' outcomes), 1 the file was refused as a whole,
2 bad arguments (no such export or profile), 3 the profile is invalid or leaves the applicants' declaration
(询问笔录, 承诺, e-signatures) or their choice of certificate delivery (领证方式) unmapped (each problem with its line).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["profile_app"]

profile_app = typer.Typer(help="Mapping profiles: check an export against one (a dry run).", no_args_is_help=True)

OUTCOME_ZH = {"queue": "将排队提交", "supplement": "答复补正", "duplicate": "重复（已处理）", "quarantine": "隔离"}


@profile_app.command("check")
def check(
    export: Path = typer.Argument(..., help="An export file."),
    profile: str = typer.Option(..., "--profile", "-p", help="A profile name in config/mappings, or a TOML path."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object for tools."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="An agent's config: its bank, operator and state (read-only) are used."
    ),
    inbox: str | None = typer.Option(None, "--inbox", help="With --config: the inbox whose materials folder to use."),
) -> None:
    """Every record's outcome (would queue / which errors), the encoding and the accounting; no state is written
    and no file is moved."""
    from agent.mapping import ProfileInvalid, parse_profile, profile_gaps, profile_source
    from agent.messages import accounting_line, field_line
    from agent.pipeline.check import check_export
    from config import load_checklists

    def fail(code: int, message: str) -> None:
        typer.secho(message, fg="red", err=True)
        raise typer.Exit(code)

    if not export.is_file():
        fail(2, f"no such export file: {export}")
    base = config.parent if config is not None else None
    try:
        text, where = profile_source(profile, base=base)
    except FileNotFoundError as exc:
        fail(2, str(exc))
        return
    try:
        prof = parse_profile(text, where)
        gaps = profile_gaps(prof, text)
        if gaps:  # valid, but leaves the applicants' declaration or delivery choice to defaults
            raise ProfileInvalid(where, gaps)
    except ProfileInvalid as exc:
        if as_json:
            typer.echo(json.dumps({"profile": profile, "profile_errors": [p.as_dict() for p in exc.problems]},
                                  ensure_ascii=False, indent=2))  # fmt: skip
        else:
            for p in exc.problems:
                typer.secho(f"{where}:{p.line}: {p.message}", fg="red")
        raise typer.Exit(3) from None
    options: dict[str, object] = {}
    if config is not None:
        from agent.config import load_config

        try:
            cfg = load_config(config)
        except (ValueError, OSError) as exc:
            fail(2, f"config: {exc}")
            return
        options["state"] = cfg.resolve(cfg.data_dir) / "state.db"
        options["default_operator"] = cfg.default_operator
        options["bank_name"] = cfg.centre.institution_name
        options["bank_uscc"] = cfg.centre.institution_uscc
        if cfg.centre.esign_ca_file is not None:
            from agent.daemon.agent import pem_certificates

            options["esign_cas"] = pem_certificates(cfg.resolve(cfg.centre.esign_ca_file))
        if inbox is not None:
            chosen = [i for i in cfg.inbox if i.name == inbox]
            if not chosen:
                fail(2, f"no inbox {inbox!r} in {config}")
            options["materials_root"] = cfg.resolve(chosen[0].path)
    result = check_export(export, prof, text, load_checklists(), **options)  # type: ignore[arg-type]
    report = result.report
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        raise typer.Exit(result.code)
    if "profile_errors" in report:
        for p in report["profile_errors"]:
            typer.secho(f"{where}:{p['line']}: {p['message']}", fg="red")
        raise typer.Exit(result.code)
    typer.echo(f"文件 {report['file']}  配置 {report['profile']}  编码 {report['encoding'] or '-'}")
    if "error" in report:
        typer.secho(f"整个文件无法读取：{report['error']}", fg="red")
        raise typer.Exit(result.code)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="每条记录的结果 (dry run: nothing is written, no file moves)")
    for col in ("行", "贷款编号", "结果", "问题"):
        table.add_column(col)
    for row in report["rows"]:
        problems = "\n".join(
            e.get("text") or field_line(row["record"], row["line"], e["column"], e["value"], e["message"])
            for e in row["errors"]
        )
        place = f"{row['record']}" + (f" (文件第{row['line']}行)" if row["line"] != row["record"] else "")
        outcome = OUTCOME_ZH[row["outcome"]]
        if "query" in row["values"]:
            outcome = "将做登记资料查询" if row["outcome"] == "queue" else "查询行有误，不会查询"
        table.add_row(place, escape(row["loan"] or ""), outcome, escape(problems))
    Console(width=160).print(table)
    typer.echo(accounting_line(report["records"], report["accounting"], report["encoding"]))
    raise typer.Exit(result.code)
