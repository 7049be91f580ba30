"""The ``regbridge`` command."""

from __future__ import annotations

import typer

from sdk import __version__

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
        typer.echo(f"regbridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """RegBridge: SDK, agent and sandbox registration centre."""


@app.command()
def demo() -> None:
    """Sandbox centre + agent + sample exports, end to end."""
    typer.echo(
        "The end-to-end demo needs the sandbox centre and the agent, which are not built yet "
        "(issues 3 and 4). Today: `make test` exercises the SDK.",
        err=True,
    )
    raise typer.Exit(code=2)


_add_sandbox()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
