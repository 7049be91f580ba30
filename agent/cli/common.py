"""What the command groups share: the ``--config`` option, the agent opened from it, its secret, a bundle read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

__all__ = ["CONFIG", "config_and_secret", "load_config_or_exit", "open_agent", "read_bundle"]


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
