"""``regbridge filing``: 银行信息备案 (seed 001 §5.2) — the bank's 营业执照 and 金融许可证 filed once at the centre.

Without options it shows what the centre holds; with the two files it files them (and their
numbers and validity). Applications never carry these documents; the centre refuses them while the
filing is missing or expired, and the agent's submissions pause until it is in order.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from agent.cli.common import CONFIG, open_agent, parse_day, reaching_centre

__all__ = ["register"]


def _date(text: str | None, what: str) -> date | None:
    """A licence's 有效期至 as staff type it (:func:`agent.cli.common.parse_day`), or 长期 (None)."""
    if text is None or text.strip() in ("", "长期"):
        return None
    try:
        return parse_day(text)
    except ValueError as exc:
        typer.secho(f"{what} 值 {text!r} 无效：应为{exc}，或 长期", fg="red", err=True)
        raise typer.Exit(2) from None


def filing(
    business_licence: Path | None = typer.Option(None, help="营业执照 (PDF, OFD, JPEG, PNG or TIFF)."),
    financial_licence: Path | None = typer.Option(None, help="金融许可证 (PDF, OFD, JPEG, PNG or TIFF)."),
    financial_licence_number: str | None = typer.Option(
        None, help="金融许可证 机构编码 (as on the centre's account), e.g. B0001H234010001."
    ),
    business_licence_number: str | None = typer.Option(
        None, help="营业执照 统一社会信用代码; default: the bank's own, from the enrolment."
    ),
    business_licence_valid_until: str | None = typer.Option(
        None, help="营业执照 有效期至 (2030-12-31, 2030/12/31, 2030年12月31日…, or 长期)."
    ),
    financial_licence_valid_until: str | None = typer.Option(
        None, help="金融许可证 有效期至 (2030-12-31, 2030/12/31, 2030年12月31日…, or 长期)."
    ),
    config: Path = CONFIG,
) -> None:
    """File the bank's 营业执照 and 金融许可证 once at the centre (银行信息备案), or show what it holds."""
    import sdk
    from agent.centre.filing import FilingFile, describe_filing, file_documents

    wanted = (business_licence, financial_licence)
    if any(wanted) and not all(wanted):
        raise typer.BadParameter("give both --business-licence and --financial-licence (a filing has both)")
    if all(wanted) and not financial_licence_number:
        raise typer.BadParameter("--financial-licence-number: the 金融许可证's 机构编码")
    agent = open_agent(config)
    try:
        if not all(wanted):
            with reaching_centre("银行信息备案", "未能查看"):
                profile = agent.client.institution.get()
        else:
            assert business_licence is not None and financial_licence is not None
            items = [
                FilingFile("business_licence", business_licence,
                           business_licence_number or agent.config.centre.institution_uscc,
                           _date(business_licence_valid_until, "--business-licence-valid-until")),
                FilingFile("financial_licence", financial_licence, financial_licence_number or "",
                           _date(financial_licence_valid_until, "--financial-licence-valid-until")),
            ]  # fmt: skip
            with reaching_centre("银行信息备案", "未备案"):
                profile = file_documents(agent.client, items)
            agent.audit.append("institution.filing", profile.institution_id, profile.filing_state.status)
    except ValueError as exc:
        typer.secho(f"备案资料无效，未备案（filing: {exc}）", fg="red", err=True)
        raise typer.Exit(1) from None
    except sdk.APIError as exc:
        typer.secho(f"登记中心拒绝备案（filing refused by the centre: {exc}）", fg="red", err=True)
        raise typer.Exit(1) from None
    finally:
        agent.close()
    typer.echo(describe_filing(profile))
    if profile.filing_state.status != "complete":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("filing")(filing)
