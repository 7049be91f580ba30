"""``regbridge keys show | rotate``: the branch's signing keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from agent.cli.common import CONFIG, EXIT_UNREACHABLE, config_and_secret, out_of_reach_line

__all__ = ["keys_app"]


keys_app = typer.Typer(help="The branch's signing keys.", no_args_is_help=True)


@keys_app.command("show")
def keys_show(
    config: Path = CONFIG,
    offline: bool = typer.Option(False, "--offline", help="Do not ask the centre."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """Fingerprint, algorithm, age and keeping of each key; the centre's view; expiry warnings."""
    from agent.centre.client import centre_client
    from agent.credentials.custody import custody_for

    cfg, secret = config_and_secret(config)
    custody = custody_for(cfg, secret)
    from agent.messages import refused_key_advice
    from sdk.csr import read_certificate
    from sdk.privacy import mask_text

    at_centre: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    if not offline:
        try:
            with centre_client(cfg, custody.signer(cfg.centre.key_id)) as client:
                at_centre = {r.key_id: r for r in client.credentials.list()}
        except Exception as exc:
            refusal = mask_text(str(exc))
            asked = f"the centre could not be asked: {refusal}{refused_key_advice(refusal, cfg.source)}"
            warnings.append(out_of_reach_line(exc, "未能核对本机密钥在中心的状态") or asked)
    now = datetime.now(UTC)
    for e in custody.entries():
        record = at_centre.get(e.key_id or "")
        certificate = None
        if e.certificate and e.state != "retired":
            info = read_certificate(e.certificate)
            status = record.certificate_status if record is not None else None
            certificate = {"serial": info.serial_hex, "not_after": info.not_after.isoformat(), "at_centre": status}
            if e.key_id == cfg.centre.key_id:
                left = (info.not_after - now).days
                if status == "revoked":
                    warnings.append(
                        f"机构证书 {info.serial_hex} 已被登记中心吊销 (the centre revoked the bank certificate)"
                        f"{refused_key_advice('code certificate_revoked', cfg.source)}"
                    )
                elif info.not_after < now:
                    ended = f"{info.not_after:%Y-%m-%d}"
                    advice = refused_key_advice("code certificate_expired", cfg.source)
                    warnings.append(f"机构证书 {info.serial_hex} 已过期 (the bank certificate ended {ended}){advice}")
                elif left <= 30:
                    ends = f"{info.not_after:%Y-%m-%d}"
                    warnings.append(
                        f"机构证书 {info.serial_hex} 剩 {left} 天 (the bank certificate ends {ends}): rotate now, which"
                        " renews it: regbridge keys rotate"
                    )
        rows.append(
            {
                "key_id": e.key_id,
                "certificate": certificate,
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
    # every key the centre holds active for the institution, including those this branch does not keep
    # (another branch's, or one enrolled by someone else: issue 17 item 5)
    kept = {e.key_id for e in custody.entries()}
    for record in at_centre.values():
        if record.key_id in kept or record.status != "active":
            continue
        rows.append(
            {
                "key_id": record.key_id,
                "state": "at the centre only",
                "algorithm": record.algorithm,
                "fingerprint": record.fingerprint,
                "age_days": round((datetime.now(UTC) - record.created_at).total_seconds() / 86400, 1),
                "kept": "not here",
                "at_centre": record.status + (f", revoked at {record.revoke_at}" if record.revoke_at else ""),
                "retire_at": None,
            }
        )
        warnings.append(
            f"the centre holds key {record.key_id} ({record.label}) active for this institution, and this branch"
            " does not keep it: if it is not another branch's, revoke it at the centre"
        )
    if as_json:
        typer.echo(json.dumps({"keys": rows, "warnings": warnings}, ensure_ascii=False, indent=2))
        return
    typer.echo(f"keys of {cfg.centre.institution_id} ({cfg.centre.institution_name})")
    for r in rows:
        if str(r["state"]).startswith("encryption"):  # the envelope's SM2 key: registered, never signs
            typer.echo(f"\n(envelope encryption key)  {r['state']}  sm2  {r['age_days']} days old")
        else:
            typer.echo(
                f"\n{r['key_id'] or '(pending)'}  {r['state']}  {r['algorithm']}  {r['age_days']} days old"
                f"  at the centre: {r['at_centre'] or '?'}"
            )
        if r.get("certificate"):
            c = r["certificate"]
            typer.echo(
                f"  certificate {c['serial']}, valid to {c['not_after']}, at the centre: {c['at_centre'] or '?'}"
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

    cfg, secret = config_and_secret(config)
    try:
        result = rotate(cfg, secret, grace_seconds=grace, algorithm=algorithm)  # type: ignore[arg-type]
    except Exception as exc:
        from agent.messages import refused_key_advice
        from sdk.privacy import mask_text

        refusal = mask_text(str(exc))
        advice = refused_key_advice(refusal, cfg.source)
        unreached = out_of_reach_line(exc, "密钥未轮换")
        if unreached:
            typer.secho(f"rotation: {unreached}；恢复连接后再运行一次 regbridge keys rotate（会接着完成）", fg="red",
                        err=True)  # fmt: skip
            raise typer.Exit(EXIT_UNREACHABLE) from None
        if advice:
            typer.secho(f"rotation impossible: {refusal}{advice}", fg="red", err=True)
        else:
            typer.secho(f"rotation failed (run it again to finish it): {refusal}", fg="red", err=True)
        raise typer.Exit(1) from None
    AuditLog(cfg.resolve(cfg.data_dir) / "audit.log").append(
        "key.rotated", f"{result.old_key_id}->{result.new_key_id}", "ok", retire_at=result.retire_at
    )
    typer.echo(
        f"{'finished the interrupted rotation: ' if result.resumed else ''}signing key is now {result.new_key_id};"
        f" {result.old_key_id} stays valid until {result.retire_at}, then the centre revokes it"
    )
