"""What the command groups share: the ``--config`` option, the agent opened from it, its secret, a bundle read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer

__all__ = [
    "CONFIG",
    "DAY_EXPECTED",
    "EXIT_UNREACHABLE",
    "MOMENT_EXPECTED",
    "config_and_secret",
    "load_config_or_exit",
    "open_agent",
    "out_of_reach_line",
    "parse_day",
    "parse_moment",
    "reaching_centre",
    "read_bundle",
    "state_unreachable_line",
]

#: the exit status of a command that could not reach the centre (try again later); 1 is a refusal or a bad
#: input, 2 a usage or config error (``regbridge certificates check`` says 3 the same way)
EXIT_UNREACHABLE = 3


CONFIG = typer.Option(Path("agent.toml"), "--config", "-c", help="The agent's config file.", envvar="REGBRIDGE_CONFIG")


def load_config_or_exit(config: Path) -> Any:
    """The config at ``config``, or one line saying what is wrong with it (a missing file, a bad setting) and
    exit code 2."""
    from agent.config import load_config

    try:
        return load_config(config)
    except ValueError as exc:
        typer.secho(f"config: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def open_agent(config: Path, *, quiet: bool = True) -> Any:
    from agent.daemon import Agent
    from agent.logs import configure_logging
    from agent.state.secrets import SecretUnavailable

    cfg = load_config_or_exit(config)
    configure_logging(cfg, stderr=not quiet)
    try:
        return Agent(cfg)
    except SecretUnavailable as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        line = state_unreachable_line(exc, cfg)
        if line is None:
            raise
        typer.secho(line, fg="red", err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from None


def state_unreachable_line(exc: BaseException, cfg: Any) -> str | None:
    """One line for bank IT when the agent's state store at ``state.url`` cannot be reached or refuses the
    agent (server down, wrong password, no such database: the driver's words, the URL's password hidden), else
    None. Said instead of a traceback by every command that opens the agent (``run``, ``status``…), exit
    :data:`EXIT_UNREACHABLE`."""
    import sqlalchemy as sa

    from agent.state.sql import db_error_line, redact_url

    if not cfg.state.url or not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return None
    return (
        f"状态库无法连接（state store unreachable）：{redact_url(cfg.state.url)}（{db_error_line(exc)}）；"
        "请检查数据库是否运行、本机能否连接、库是否已建（createdb），以及 PGPASSFILE 中的密码（regbridge doctor）"
    )


def config_and_secret(config: Path) -> tuple[Any, bytes]:
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


def read_bundle(path: Path, what: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        typer.secho(f"{what} failed: {path}: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    return doc


def out_of_reach_line(exc: BaseException, undone: str = "未完成") -> str | None:
    """One line for branch staff and bank IT when ``exc`` is the centre out of reach (network, timeout, TLS, 5xx,
    429, retry budget; :func:`agent.messages.centre_out_of_reach`), else None:
    ``登记中心无法连接，未查询（连接被拒绝：服务未运行或端口不对：ConnectError: …）``."""
    from agent.messages import centre_out_of_reach

    said = centre_out_of_reach(exc)
    if said is None:
        return None
    head, cause = said
    return f"{head}，{undone}（{cause}）"


@contextmanager
def reaching_centre(what: str, undone: str = "未完成") -> Iterator[None]:
    """Around a command's call to the centre: the centre out of reach is one red line on stderr — ``what``,
    :func:`out_of_reach_line`, what to check — and exit :data:`EXIT_UNREACHABLE`, never a traceback; any other
    error passes through."""
    try:
        yield
    except Exception as exc:
        line = out_of_reach_line(exc, undone)
        if line is None:
            raise
        typer.secho(f"{what}：{line}；请检查网络、代理和配置中的 [centre] url（regbridge doctor），稍后重试",
                    fg="red", err=True)  # fmt: skip
        raise typer.Exit(EXIT_UNREACHABLE) from None


#: what a date option takes (授权有效期, 营业执照有效期至, audit export --from/--to), in the words staff read
DAY_EXPECTED = "日期，如 2026-12-31、2026/12/31、2026年12月31日 或 20261231"
#: what a date-or-time option takes (--signed-at, audit export --from/--to)
MOMENT_EXPECTED = "日期或时间，如 2026-11-30、2026/11/30、2026年11月30日、2026/11/30 09:00 或 2026-11-30T09:00+08:00"


def parse_day(text: str) -> date:
    """A date option as staff type it: the formats a batch file and an export take
    (:data:`agent.mapping.profile.DATE_FORMATS`: 2026-12-31, 2026/12/31, 2026年12月31日, 2026.12.31, 20261231), by
    the one parser of them (:func:`agent.mapping.values.parse_when`).

    Raises:
        ValueError: not a date (the message is :data:`DAY_EXPECTED`).
    """
    from agent.mapping.profile import DATE_FORMATS
    from agent.mapping.values import parse_when

    try:
        moment, whole_day = parse_when(text, DATE_FORMATS)
    except ValueError:
        raise ValueError(DAY_EXPECTED) from None
    if not whole_day:
        raise ValueError(DAY_EXPECTED)
    return moment.date()


def parse_moment(text: str, tz: str = "Asia/Shanghai") -> tuple[datetime, bool]:
    """A date-or-time option as staff type it (:func:`parse_day`'s days, a day and a clock time ``2026/11/30 09:00``,
    ISO 8601) as ``(aware moment, whole_day)``: in ``tz`` unless an offset was written; a day alone at its 00:00.

    Raises:
        ValueError: neither (the message is :data:`MOMENT_EXPECTED`).
    """
    from zoneinfo import ZoneInfo

    from agent.mapping.profile import DATE_FORMATS
    from agent.mapping.values import parse_when

    try:
        moment, whole_day = parse_when(text, DATE_FORMATS)
    except ValueError:
        raise ValueError(MOMENT_EXPECTED) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(tz))), whole_day
