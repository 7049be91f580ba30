"""The ``regbridge`` command: the agent (run, status, requeue, ingest, transmittal, audit, enroll), the
demo, and the sandbox centre (``regbridge sandbox …``).

One module per command group: :mod:`~agent.cli.operate` (run, requeue, ingest, transmittal),
:mod:`~agent.cli.inspect` (status, show, search, quarantine, logs), :mod:`~agent.cli.console` (console, users),
:mod:`~agent.cli.setup` (enroll, doctor, install, uninstall: :mod:`installer` does the work),
:mod:`~agent.cli.keys`, :mod:`~agent.cli.fees`, :mod:`~agent.cli.limits` (late), :mod:`~agent.cli.query`,
:mod:`~agent.cli.filing` (银行信息备案), :mod:`~agent.cli.platform` (a 总对总 platform), :mod:`~agent.cli.config`,
:mod:`~agent.cli.audit`, :mod:`~agent.cli.demo`;
:mod:`~agent.cli.common` holds what they share. The sandbox's own command group is mounted as
``regbridge sandbox`` when the sandbox extra is installed.
"""

from __future__ import annotations

import typer

from agent.cli import (
    audit,
    backup,
    certificates,
    config,
    console,
    demo,
    fees,
    filing,
    inspect,
    keys,
    limits,
    operate,
    platform,
    profile,
    query,
    setup,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="regbridge",
    help="RegBridge: bank-side remote mortgage registration (互联网+不动产抵押登记).",
    no_args_is_help=True,
    add_completion=False,
)


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


operate.register(app)
limits.register(app)
inspect.register(app)
query.register(app)
console.register(app)
setup.register(app)
backup.register(app)
filing.register(app)
demo.register(app)
app.add_typer(audit.audit_app, name="audit")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(certificates.certificates_app, name="certificates")
app.add_typer(fees.fees_app, name="fees")
app.add_typer(platform.platform_app, name="platform")
app.add_typer(config.config_app, name="config")
app.add_typer(profile.profile_app, name="profile")
_add_sandbox()


def main() -> None:
    app()
