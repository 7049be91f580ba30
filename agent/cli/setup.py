"""``regbridge enroll | doctor | install | uninstall``: setup-time work, done by :mod:`installer`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from agent.cli.common import CONFIG, EXIT_UNREACHABLE, out_of_reach_line, read_bundle

__all__ = ["register"]


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
    pkcs11_module: str = typer.Option(None, "--pkcs11-module", help="--key-store pkcs11: the token's PKCS#11 library."),
    pkcs11_token: str = typer.Option(None, "--pkcs11-token", help="--key-store pkcs11: the token's label."),
    pkcs11_pin_file: Path = typer.Option(None, "--pkcs11-pin-file", help="--key-store pkcs11: the PIN's file (0600)."),
    pkcs11_mechanism: list[str] = typer.Option(
        [], "--pkcs11-mechanism", help="--key-store pkcs11, gm: a vendor SM2 code, NAME=CODE (xipki's names, e.g."
        " CKM_VENDOR_SM2_KEY_PAIR_GEN=0x80000xxx), repeatable.",
    ),
    certificate: bool = typer.Option(
        None,
        "--certificate/--no-certificate",
        help="Ask the centre for an X.509 certificate of the key (PKCS#10); default: when the centre issues them.",
    ),
    join: Path = typer.Option(
        None,
        "--join",
        help="Another instance's agent.toml (shared state): enrol this host's own key for the same institution and "
        "take that config's settings; the agent secret must already be here (docs/state.md).",
    ),
    district: str | None = typer.Option(
        None,
        "--district",
        help="Enrol the agent in --dir with ANOTHER centre it reaches directly, for the units whose 行政区划代码 "
        'starts with this (2-6 digits): writes [centres."<district>"] (docs/install.md, several direct centres).',
    ),
) -> None:
    """Enrol this agent with a centre: a key made here (or inside a PKCS#11 token), registered with the
    bundle's one-time token."""
    from installer.enrol import BundleError, enrol, enrol_direct

    if district is not None:
        from agent.state.secrets import SecretUnavailable
        from sdk.errors import RegBridgeError

        try:
            key_id = enrol_direct(read_bundle(bundle, "enrolment"), directory / "agent.toml", district,
                                  expected_fingerprint=fingerprint)  # fmt: skip
        except (BundleError, ValueError, OSError, SecretUnavailable, RegBridgeError) as exc:
            typer.secho(f"enrolment failed: {exc}", fg="red", err=True)
            raise typer.Exit(1) from None
        typer.echo(f'enrolled with another centre: [centres."{district}"] key {key_id} written to '
                   f"{directory / 'agent.toml'}; next: regbridge doctor")  # fmt: skip
        return

    algorithms = (None, "ed25519", "ecdsa-p256-sha256", "sm2-sm3")
    if key_store not in ("auto", "keyring", "file", "pkcs11") or algorithm not in algorithms:
        typer.secho(
            "--key-store is auto, keyring, file or pkcs11; --algorithm ed25519, ecdsa-p256-sha256 or sm2-sm3", fg="red"
        )
        raise typer.Exit(2)
    inboxes = _parse_inboxes(inbox)
    mechanisms: dict[str, int] = {}
    for spec in pkcs11_mechanism:
        name, _, code = spec.partition("=")
        try:
            mechanisms[name.strip()] = int(code.strip(), 0)
        except ValueError:
            typer.secho(f"--pkcs11-mechanism {spec!r}: NAME=CODE expected (CODE decimal or 0x…)", fg="red")
            raise typer.Exit(2) from None
    doc = read_bundle(bundle, "enrolment")
    try:
        done = enrol(
            doc,
            directory,
            inboxes=inboxes,
            key_store=key_store,  # type: ignore[arg-type]
            algorithm=algorithm,  # type: ignore[arg-type]
            expected_fingerprint=fingerprint,
            pkcs11={"module": pkcs11_module, "token_label": pkcs11_token, "pin_file": str(pkcs11_pin_file.resolve()),
                    **({"mechanisms": mechanisms} if mechanisms else {})}
            if key_store == "pkcs11" and pkcs11_module and pkcs11_pin_file
            else None,
            certificate=certificate,
            join=join,
        )
    except BundleError as exc:
        typer.secho(f"enrolment failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # the centre's refusal (used token…), the centre out of reach, or the filesystem
        from sdk.privacy import mask_text

        unreached = out_of_reach_line(exc, "未注册")
        if unreached:
            typer.secho(f"enrolment failed: {unreached}；请检查网络、代理和注册包中的登记中心地址，稍后重试", fg="red",
                        err=True)  # fmt: skip
            raise typer.Exit(EXIT_UNREACHABLE) from None
        typer.secho(f"enrolment failed: {mask_text(str(exc))}", fg="red", err=True)
        raise typer.Exit(1) from None
    if done.already:
        typer.echo(f"already enrolled (key {done.key_id}); nothing changed. Config: {done.path}")
        return
    if done.replaced:
        old_key, why = done.replaced
        typer.echo(
            f"re-enrolled: the centre refuses key {old_key} ({why}); new key {done.key_id}, kept in {done.key_where}."
            f" 已重新注册：原密钥 {old_key} 不再被登记中心接受（{why}），已换用新密钥 {done.key_id}"
        )
        if done.certificate_serial:
            typer.echo(f"new certificate serial {done.certificate_serial}, valid to {done.certificate_not_after}")
        typer.echo(
            f"{done.path}: only centre.key_id changed; the state, queue and settings are kept. A running agent"
            " switches to the new key within a second and resumes by itself (运行中的代理自动切换并恢复提交)."
        )
        return
    typer.echo(f"enrolled: key {done.key_id}, kept in {done.key_where}")
    if done.certificate_serial:
        typer.echo(
            f"the centre certified it: certificate serial {done.certificate_serial},"
            f" valid to {done.certificate_not_after}"
        )
    if done.secret_where:
        typer.echo(f"agent secret made and kept in {done.secret_where}")
    typer.echo(f"config written to {done.path}; next: regbridge doctor -c {done.path}")
    _say_auto_pay(done.path)


def doctor(config: Path = CONFIG, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """Check config, key, clock, centre, folders, disk, document store and trust anchors; exit 1 on a failure."""
    from installer.doctor import diagnose

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
    from installer.enrol import BundleError
    from installer.linux import install as do_install

    plan = _install_plan(root, user, executable, inbox)
    plan.watchdog_seconds = watchdog
    doc = read_bundle(bundle, "install") if bundle is not None else None
    try:
        result = do_install(plan, bundle=doc, key_store=key_store, start=start, say=typer.echo)
    except (BundleError, PermissionError, RuntimeError, OSError) as exc:
        typer.secho(f"install failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"installed; config {result['config']}; check it with: regbridge doctor -c {result['config']}")
    _say_auto_pay(Path(result["config"]))


def _say_auto_pay(config: Path) -> None:
    """Say whether fees are paid automatically, and how to change it (docs/install.md, Fees)."""
    from agent.config import load_config

    try:
        auto = load_config(config).fees.auto_pay
    except Exception:  # the config is checked by doctor; this is only advice
        return
    if auto:
        typer.echo("fees: auto-pay is on ([fees] auto_pay = true, within [fees] daily_cap)")
        return
    typer.echo(
        "fees: auto-pay is off — a fee the centre assesses after 登簿 waits until someone runs "
        f"`regbridge fees pay REF -c {config}` (list them with `regbridge fees`); to pay automatically, "
        f"set [fees] auto_pay = true and a daily_cap in {config} (docs/install.md, Fees)"
    )


def uninstall(
    root: Path = typer.Option(Path("/"), "--root", help="The folder it was installed under."),
    user: str = typer.Option("regbridge", "--user", help="The service user."),
    purge: bool = typer.Option(False, "--purge", help="Also remove config, keys, state and the service user."),
) -> None:
    """Stop and remove the service; config, keys and state are kept unless --purge."""
    from installer.linux import uninstall as do_uninstall

    do_uninstall(_install_plan(root, user, None, []), purge=purge, say=typer.echo)


def register(app: typer.Typer) -> None:
    app.command()(enroll)
    app.command()(doctor)
    app.command()(install)
    app.command()(uninstall)
