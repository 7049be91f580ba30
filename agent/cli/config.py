"""``regbridge config show | schema``: the agent's configuration."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.cli.common import CONFIG

__all__ = ["config_app"]


config_app = typer.Typer(help="The agent's configuration.", no_args_is_help=True)


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
