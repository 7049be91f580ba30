"""``regbridge platform enroll``: register the head office's agent at a provincial 总对总 platform
(:mod:`installer.platform` does the work; docs/dialects.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from agent.cli.common import CONFIG

__all__ = ["platform_app"]

platform_app = typer.Typer(help="A provincial 总对总 platform (docs/dialects.md).", no_args_is_help=True)


@platform_app.command("enroll")
def enroll(
    app_id: str = typer.Option(..., "--app-id", help="This bank's appId at the platform (as the desk registers it)."),
    config: Path = CONFIG,
    request: bool = typer.Option(
        False, "--request", help="Make the keys and print the registration form (JSON) for the platform's desk."
    ),
    answer: Path = typer.Option(None, "--answer", help="The desk's answer (JSON): write [platform] from it."),
    desk: str = typer.Option(None, "--desk", help="A desk that registers over HTTP (the sandbox's /admin/enrol)."),
    desk_token_file: Path = typer.Option(None, "--desk-token-file", help="--desk: a file holding its bearer token."),
    notify_listen: str = typer.Option("127.0.0.1", "--notify-listen", help="Where the notify receiver listens."),
    notify_port: int = typer.Option(0, "--notify-port", help="Its port (0: any free one)."),
    notify_url: str = typer.Option(None, "--notify-url", help="The notify URL the platform posts to."),
    software_key: bool = typer.Option(
        False,
        "--software-key",
        help="With key_store = pkcs11: keep the platform's SM2 signing key as an encrypted "
        "software key instead of making it inside the token (a token without SM2).",
    ),
) -> None:
    """Register at a platform: --request prints the form (keys made here, kept encrypted — the signing key inside
    the PKCS#11 token when the key store is one, unless --software-key), then --answer
    writes the desk's answer into agent.toml; or --desk does both with a desk that takes the form over HTTP."""
    from agent.credentials.pkcs11 import TokenUnavailable
    from agent.state.secrets import SecretUnavailable
    from installer.platform import enrol_at_desk, registration_request, write_platform

    notify: dict[str, Any] = {"listen": notify_listen, "port": notify_port}
    if notify_url:
        notify["public_url"] = notify_url
    try:
        if request:
            form = registration_request(config, app_id, notify_url=notify_url, software_key=software_key)
            typer.echo(json.dumps(form, ensure_ascii=False))
            return
        if answer is not None:
            done = write_platform(config, app_id, json.loads(answer.read_text(encoding="utf-8")), notify=notify)
        elif desk and desk_token_file:
            token = desk_token_file.read_text(encoding="utf-8").strip()
            done = enrol_at_desk(
                config, app_id, desk_url=desk, desk_token=token, notify=notify, software_key=software_key
            )
        else:
            typer.secho("give --request, --answer FILE, or --desk URL with --desk-token-file", fg="red", err=True)
            raise typer.Exit(2)
    # PlatformAnswerInvalid, PlatformKeyUnavailable are ValueErrors; no agent secret, or the token not opened
    except (ValueError, KeyError, OSError, SecretUnavailable, TokenUnavailable) as exc:
        typer.secho(f"platform enrolment failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"[platform] written to {done} ({app_id}); next: regbridge doctor -c {done}")
    for warning in notify_warnings(notify):
        typer.secho(warning, fg="yellow", err=True)


@platform_app.command("notify-url")
def notify_url(
    url: str = typer.Argument(..., help="The new URL the platform posts notices to."),
    config: Path = CONFIG,
    notify_port: int = typer.Option(None, "--notify-port", help="The fixed port that URL reaches (default: as is)."),
    notify_listen: str = typer.Option(None, "--notify-listen", help="Where the receiver listens (default: as is)."),
) -> None:
    """Change the registered notify URL: the platform records it (a request signed by the key registered at its
    desk), then [platform.notify] is rewritten and the change audited. Restart the agent (`regbridge run`) to
    listen there."""
    import sdk
    from agent.credentials.pkcs11 import TokenUnavailable
    from agent.state.secrets import SecretUnavailable
    from installer.platform import change_notify_url

    try:
        previous = change_notify_url(config, url, port=notify_port, listen=notify_listen)
    except (ValueError, KeyError, OSError, SecretUnavailable, TokenUnavailable, sdk.RegBridgeError) as exc:
        typer.secho(f"通知地址未变更 (notify URL not changed): {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"notify URL at the platform: {previous or '(none)'} → {url}; [platform.notify] written to {config};"
               " restart the agent to listen there")  # fmt: skip
    for warning in notify_warnings({"public_url": url, "port": notify_port if notify_port is not None else 1}):
        typer.secho(warning, fg="yellow", err=True)


def notify_warnings(notify: dict[str, Any]) -> list[str]:
    """What a head office's IT must know about the notify URL it registered (none: no pushed notices)."""
    if not notify.get("public_url"):
        return ["注意：未登记通知地址（no --notify-url）: the platform cannot push 查封/解封/异议/产权变动 notices to "
                "this agent; give --notify-url URL and a fixed --notify-port when registering, or later: "
                "regbridge platform notify-url URL --notify-port N"]  # fmt: skip
    if not notify.get("port"):
        return [f"注意：--notify-port 0 listens on a different free port at every start, while the platform posts to "
                f"{notify['public_url']}: give the fixed port that URL reaches (--notify-port N)"]  # fmt: skip
    return []
