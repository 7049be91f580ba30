"""``regbridge sandbox …``: serve the sandbox centre and administer it (the centre's admin side).

The admin commands work on the centre's data directory directly (run them on the centre's
machine, as a registration centre's operator would); the same acts are available remotely through
the admin API with a bearer token (``regbridge sandbox admin token``).
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from sdk.privacy import mask_id, mask_name

app = typer.Typer(help="The sandbox registration centre (the other side of the API).", no_args_is_help=True)
admin_app = typer.Typer(help="The centre's admin side: institutions, operators, enrolment bundles, keys.")
app.add_typer(admin_app, name="admin")

DEFAULT_DATA = Path(os.environ.get("REGBRIDGE_SANDBOX_DATA", "./sandbox-data"))
SECRET_ENV = "REGBRIDGE_SANDBOX_SECRET"
KEYRING_SERVICE = "regbridge-sandbox"

DataOpt = Annotated[Path, typer.Option("--data", help="the centre's data directory (SQLite)")]
SecretOpt = Annotated[
    Path | None, typer.Option("--secret-file", help="file holding the passphrase of the centre's keys")
]


def passphrase(data: Path, secret_file: Path | None, *, create: bool) -> bytes:
    """The passphrase of the centre's keys: a credential file, ``$REGBRIDGE_SANDBOX_SECRET``, or the OS keyring.

    A new centre with none of them gets a random passphrase kept in the OS keyring when there is one.
    """
    if secret_file is not None:
        return secret_file.read_bytes().strip()
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV].encode()
    try:
        import keyring

        user = str(data.resolve())
        found = keyring.get_password(KEYRING_SERVICE, user)
        if found:
            return found.encode()
        if create:
            fresh = secrets.token_urlsafe(32)
            keyring.set_password(KEYRING_SERVICE, user, fresh)
            return fresh.encode()
    except Exception:  # no usable keyring (headless server)
        pass
    raise typer.BadParameter(
        f"the centre's keys are encrypted at rest: set {SECRET_ENV}, pass --secret-file FILE "
        "(e.g. a systemd credential), or run where an OS keyring is available",
        param_hint="--secret-file",
    )


def _centre(data: Path, secret_file: Path | None, *, create: bool = False) -> Any:
    from .centre import Centre
    from .pki import KeysLocked
    from .store import Store

    db = data / "centre.sqlite3"
    if not create and not db.exists():
        raise typer.BadParameter(f"no centre in {data} (start one with `regbridge sandbox serve --data {data}`)")
    store = Store(db)
    try:
        return Centre(store, passphrase=passphrase(data, secret_file, create=create))
    except KeysLocked as e:
        raise typer.BadParameter(str(e)) from None


def _load_faults(path: Path | None) -> Any:
    from .faults import FaultsConfig

    if path is None:
        return None
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    return FaultsConfig.model_validate(data)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8600,
    data: Annotated[Path | None, typer.Option("--data", help="data directory; omitted: in memory")] = None,
    secret_file: SecretOpt = None,
    step_seconds: Annotated[float, typer.Option(help="delay between review steps (0: instant)")] = 0.0,
    correction_days: Annotated[float, typer.Option(help="time to answer a 补正, in days")] = 15.0,
    correction_working_days: Annotated[
        int | None, typer.Option(help="time to answer a 补正, in working days (工作日; wins over --correction-days)")
    ] = None,
    manual: Annotated[bool, typer.Option(help="applications move only when the admin advances them")] = False,
    faults: Annotated[Path | None, typer.Option(help="faults to inject (TOML or JSON, docs/sandbox.md)")] = None,
    public_url: Annotated[str | None, typer.Option(help="base URL for QR codes and bundles")] = None,
    suite: Annotated[
        str | None, typer.Option(help="crypto suite of a new centre: intl (Ed25519, default) or gm (SM2/SM3)")
    ] = None,
    sm2_user_id: Annotated[
        str | None, typer.Option(help="gm: the SM2 user id (GM/T 0009) of signatures; default 1234567812345678")
    ] = None,
    envelope: Annotated[
        str | None,
        typer.Option(help="gm: ask for the parties' personal fields SM4-encrypted (SM4-GCM or SM4-CBC) in bodies"),
    ] = None,
    development: Annotated[
        bool | None,
        typer.Option(
            "--development/--production",
            help="accept webhook URLs on loopback/private addresses; default: development only on a loopback host",
        ),
    ] = None,
    under_construction: Annotated[
        bool, typer.Option(help="admit 在建建筑物抵押 (excluded by default, as in seed 001's pilot)")
    ] = False,
    dialect: Annotated[
        str | None,
        typer.Option(
            help="serve a provincial 总对总 platform in this dialect (province) in front of its county centres "
            "(config/dialects/<dialect>.toml [districts]; with --data its keys, banks, replay window and "
            "centres survive a restart; docs/dialects.md)"
        ),
    ] = None,
    county_port: Annotated[
        list[str] | None,
        typer.Option(
            "--county-port",
            help="with --dialect: a county centre's port, DISTRICT=PORT (e.g. 340121=8701; repeat per county). "
            "Without it a county keeps the port it had (kept under --data), else gets a free one",
        ),
    ] = None,
) -> None:
    """Run the sandbox centre (API on /v1, admin API on /admin/v1), or with --dialect a provincial platform."""
    import uvicorn

    if dialect is not None:
        _serve_platform(dialect, host, port, suite, data, secret_file, _county_ports(county_port or []))
        return
    if county_port:
        raise typer.BadParameter("is for a platform's county centres (with --dialect)", param_hint="--county-port")

    from sdk.suites import suite_named

    from .app import create_app
    from .centre import Centre
    from .faults import Faults
    from .store import Store
    from .workflow import Timing

    try:
        chosen = (
            suite_named(suite, sm2_user_id=sm2_user_id, envelope=envelope) if suite or sm2_user_id or envelope else None
        )
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--suite / --sm2-user-id / --envelope") from None
    timing = Timing(
        step_seconds=step_seconds,
        correction_days=correction_days,
        manual=manual,
        correction_working_days=correction_working_days,
    )
    if development is None:
        development = host in ("127.0.0.1", "::1", "localhost")
    if data is not None:
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o700)
        centre = Centre(
            Store(data / "centre.sqlite3"),
            timing=timing,
            passphrase=passphrase(data, secret_file, create=True),
            public_url=public_url or f"http://{host}:{port}",
            suite=chosen,
            development=development,
        )
    else:
        centre = Centre(
            Store(),
            timing=timing,
            public_url=public_url or f"http://{host}:{port}",
            suite=chosen,
            development=development,
        )
    from .review import Scope

    centre.workflow.scope = Scope(under_construction=under_construction)
    config = _load_faults(faults)
    application = create_app(centre=centre, faults=Faults(config) if config else None)
    token = centre.create_admin_token("serve")
    typer.echo(
        f"sandbox centre {centre.name} on http://{host}:{port}"
        f"  (data: {data or 'in memory'}, suite {centre.suite.name})"
    )
    typer.echo(f"admin API token for this run (shown once): {token}")
    uvicorn.run(application, host=host, port=port, log_level="warning", date_header=False)


def _county_ports(given: list[str]) -> dict[str, int]:
    """``--county-port`` values (``DISTRICT=PORT``) by 行政区划代码."""
    ports: dict[str, int] = {}
    for item in given:
        district, _, number = item.partition("=")
        if not (len(district) == 6 and district.isdigit() and number.isdigit() and 0 < int(number) < 65536):
            raise typer.BadParameter(f"{item!r}: DISTRICT=PORT expected (e.g. 340121=8701)", param_hint="--county-port")
        ports[district] = int(number)
    return ports


def _serve_platform(
    dialect: str,
    host: str,
    port: int,
    suite: str | None,
    data: Path | None,
    secret_file: Path | None,
    county_ports: dict[str, int],
) -> None:
    from sdk.suites import suite_named

    from .pki import KeysLocked
    from .platform import ProvincePlatform

    secret = None
    if data is not None:
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o700)
        secret = passphrase(data, secret_file, create=True)
    try:
        platform = ProvincePlatform(
            dialect=dialect, host=host, port=port, suite=suite_named(suite or "intl"), data=data, passphrase=secret,
            county_ports=county_ports,
        )  # fmt: skip
    except KeysLocked as e:
        raise typer.BadParameter(str(e), param_hint="--secret-file") from None
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--dialect / --suite / --port / --county-port") from None
    unknown = sorted(set(county_ports) - set(platform.centres))
    if unknown:
        platform.stop()
        raise typer.BadParameter(f"no county centre {', '.join(unknown)} behind this platform "
                                 f"({', '.join(platform.centres)})", param_hint="--county-port")  # fmt: skip
    typer.echo(f"provincial platform ({dialect}) on {platform.url}/api/{{service}}, appId {platform.app_id}"
               f"  (data: {data or 'in memory'})")  # fmt: skip
    for district, centre in platform.centres.items():
        typer.echo(f"  {district} {centre.centre.name}: {centre.url}")
    for note in platform.notes:
        typer.secho(f"注意：{note}", fg="yellow", err=True)
    typer.echo(f"registration desk: POST {platform.url}/admin/enrol, token for this run (shown once): "
               f"{platform.admin_token}")  # fmt: skip
    platform.serve_forever()


@admin_app.command("token")
def admin_token(
    data: DataOpt = DEFAULT_DATA,
    secret_file: SecretOpt = None,
    label: str = "cli",
    valid_hours: Annotated[int, typer.Option(min=1, max=24 * 30, help="how long the token is good for")] = 24,
) -> None:
    """Create a bearer token for the admin API (shown once, kept hashed; it expires — rotate it with
    POST /admin/v1/tokens/rotate or make another)."""
    typer.echo(_centre(data, secret_file).create_admin_token(label, valid_for=timedelta(hours=valid_hours)))


@admin_app.command("create-institution")
def create_institution(
    name: Annotated[str, typer.Option(help="bank branch name")],
    uscc: Annotated[str, typer.Option(help="统一社会信用代码")],
    licence_no: Annotated[str, typer.Option(help="金融许可证号")],
    district: Annotated[str, typer.Option(help="辖区 code")] = "340121",
    data: DataOpt = DEFAULT_DATA,
    secret_file: SecretOpt = None,
) -> None:
    """Open an account for a bank branch; prints its institution id."""
    try:
        typer.echo(_centre(data, secret_file).create_institution(name=name, uscc=uscc, licence_no=licence_no,
                                                                 district=district))  # fmt: skip
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--uscc") from None


@admin_app.command("list-institutions")
def list_institutions(data: DataOpt = DEFAULT_DATA, secret_file: SecretOpt = None) -> None:
    """Institutions with their channel state."""
    for p in _centre(data, secret_file).list_institutions():
        typer.echo(f"{p.institution_id}  {p.uscc}  {p.channel.status:9}  {p.name}")


@admin_app.command("create-operator")
def create_operator(
    institution_id: str,
    name: Annotated[str, typer.Option(help="the staff member's display name")],
    operator_id: Annotated[str | None, typer.Option(help="account id (generated if omitted)")] = None,
    data: DataOpt = DEFAULT_DATA,
    secret_file: SecretOpt = None,
) -> None:
    """Issue a 业务办理人员 account to one of the bank's staff; prints its id.

    Give the id the bank will write in its export's 经办人 column (``--operator-id op-001``, as the
    shipped samples use); without one the centre makes one up (``op_…``) and the bank must use it.
    """
    typer.echo(_centre(data, secret_file).create_operator(institution_id, name, operator_id))


@admin_app.command("deactivate-operator")
def deactivate_operator(
    institution_id: str, operator_id: str, data: DataOpt = DEFAULT_DATA, secret_file: SecretOpt = None
) -> None:
    """Deactivate a 业务办理人员 account: applications naming it are refused from now on."""
    from .errors import CentreError

    try:
        op = _centre(data, secret_file).deactivate_operator(institution_id, operator_id)
    except CentreError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{op.operator_id}  deactivated {op.deactivated_at:%Y-%m-%d %H:%M:%S}")


@admin_app.command("operators")
def list_operators(institution_id: str, data: DataOpt = DEFAULT_DATA, secret_file: SecretOpt = None) -> None:
    """The institution's 业务办理人员 accounts, active or not."""
    for op in _centre(data, secret_file).list_operators(institution_id):
        typer.echo(f"{op.operator_id}  {'active' if op.active else 'deactivated'}  {op.display_name}")


@admin_app.command("queries")
def list_queries(
    institution_id: Annotated[str | None, typer.Option(help="one institution's queries only")] = None,
    since: Annotated[
        str | None, typer.Option(help="from this day or time on: 2026-11-30, 2026/11/30, 2026年11月30日, ISO 8601")
    ] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="export to this CSV file")] = None,
    data: DataOpt = DEFAULT_DATA,
    secret_file: SecretOpt = None,
) -> None:
    """痕迹管理: every 登记资料查询 (answered or refused): who, why, what was shown; list or export as CSV."""
    centre = _centre(data, secret_file)
    try:
        rows = centre.query_trace(institution_id=institution_id, since=since, limit=1_000_000)
    except ValueError as e:  # since is not a date or time
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    if csv_out is not None:
        csv_out.write_bytes(centre.queries.trace_csv(rows))
        typer.echo(f"{len(rows)} queries written to {csv_out}")
        return
    for r in rows:
        what = (r["reasons"] and "; ".join(x["code"] for x in r["reasons"])) or ", ".join(
            x["kind"] for x in (r["shown"] or {}).get("rights", [])
        )
        typer.echo(
            f"{r['at']}  {r['institution_id']}  {r['operator_id']}  {r['outcome']}  {r['key_kind']}={r['key_value']}"
            f"  授权书 {r['authorisation_reference']} {r['authoriser']}  {what}"
        )


@admin_app.command("bundle")
def bundle(
    institution_id: str,
    out: Annotated[Path, typer.Option(help="where to write the enrolment bundle (JSON)")],
    url: Annotated[str, typer.Option(help="the API base URL the bank will use")] = "http://127.0.0.1:8600",
    valid_hours: Annotated[int, typer.Option(help="how long the one-time token stays valid")] = 168,
    data: DataOpt = DEFAULT_DATA,
    secret_file: SecretOpt = None,
) -> None:
    """Write a signed enrolment bundle: URL, institution, one-time token and the centre's trust anchors."""
    centre = _centre(data, secret_file)
    signed = centre.enrolment_bundle(institution_id, url, valid_for=timedelta(hours=valid_hours))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it carries a one-time token
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(signed, fh, ensure_ascii=False, indent=2)
    typer.echo(f"wrote {out} (centre key {centre.keys.centre_key_id}; token valid {valid_hours} h, one use)")


@admin_app.command("credentials")
def credentials(institution_id: str, data: DataOpt = DEFAULT_DATA, secret_file: SecretOpt = None) -> None:
    """The institution's keys."""
    for c in _centre(data, secret_file).list_credentials(institution_id):
        certified = (
            f"  certificate {c.certificate_serial} {c.certificate_status} to {c.certificate_not_after:%Y-%m-%d}"
            if c.certificate_serial and c.certificate_not_after
            else ""
        )
        typer.echo(f"{c.key_id}  {c.algorithm:18} {c.status:8} {c.fingerprint[:16]}  {c.label}{certified}")


@admin_app.command("revoke-certificate")
def revoke_certificate(
    serial: Annotated[str, typer.Argument(help="the certificate's serial (hex), as `credentials` lists it")],
    reason: Annotated[str, typer.Option(help="RFC 5280 reason: key_compromise, superseded, …")] = "key_compromise",
    data: DataOpt = DEFAULT_DATA,
    secret_file: SecretOpt = None,
) -> None:
    """Revoke a bank's institution certificate (机构证书): it goes on /pki/banks.crl, its key is refused."""
    from .errors import CentreError

    try:
        record = _centre(data, secret_file).credentials.revoke_certificate(serial, reason)
    except CentreError as e:
        raise typer.BadParameter(e.detail) from None
    typer.echo(f"certificate {record.certificate_serial} of {record.key_id}: {record.certificate_status}")


@admin_app.command("revoke")
def revoke(
    key_id: str, reason: str = "revoked by the centre", data: DataOpt = DEFAULT_DATA, secret_file: SecretOpt = None
) -> None:
    """Revoke a bank's key now."""
    record = _centre(data, secret_file).revoke(None, key_id, reason)
    typer.echo(f"{record.key_id} {record.status}")


@admin_app.command("channel")
def channel(
    institution_id: str,
    status: Annotated[str, typer.Argument(help="open or suspended")],
    reason: str | None = None,
    data: DataOpt = DEFAULT_DATA,
    secret_file: SecretOpt = None,
) -> None:
    """Suspend (关闭端口) or reopen an institution's channel."""
    if status not in ("open", "suspended"):
        raise typer.BadParameter("open or suspended", param_hint="STATUS")
    _centre(data, secret_file).set_channel(institution_id, status, reason)
    typer.echo(f"{institution_id} channel {status}")


@app.command("esign")
def esign(
    document: Annotated[Path, typer.Argument(help="the PDF to sign (a 申请书 or 询问笔录)")],
    name: Annotated[str, typer.Option(help="the signer's name (the applicant)")],
    id_number: Annotated[str, typer.Option(help="the signer's 居民身份证号码 or 统一社会信用代码")],
    out: Annotated[Path, typer.Option(help="where to write the signed PDF")],
    ca_pem: Annotated[
        Path | None, typer.Option("--ca-pem", help="also write the e-signature CA's certificate (PEM) here")
    ] = None,
    data: DataOpt = DEFAULT_DATA,
    secret_file: SecretOpt = None,
) -> None:
    """Sign a document as an applicant would on a signing platform, with this centre's test e-signature CA.

    The signed PDF is the document's bytes followed by a PAdES signature whose certificate names the
    signer (CN) and their identity number (serialNumber); the centre and the bank's agent accept it
    (the enrolment bundle carries this CA). For the demo and tests only: a real applicant signs on a
    platform the government recognises (seed 003 细则 (四)).
    """
    centre = _centre(data, secret_file)
    try:
        signed = centre.esign.sign(document.read_bytes(), name=name, id_number=id_number)
    except (OSError, ValueError) as e:
        raise typer.BadParameter(f"{document}: {e}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(signed)
    if ca_pem is not None:
        ca_pem.write_text(centre.esign.ca_pem, encoding="ascii")
    typer.echo(f"wrote {out} ({len(signed)} bytes, signed by {mask_name(name)} {mask_id(id_number)})")


@app.command("sample-certificate")
def sample_certificate(
    out: Annotated[Path, typer.Option(help="PNG of the first page (a .pdf is written beside it)")] = Path(
        "docs/certificate-sample.png"
    ),
) -> None:
    """Issue one certificate in a throw-away centre and render its first page (needs poppler's pdftoppm)."""
    pdf = issue_sample_certificate()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".pdf").write_bytes(pdf)
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        raise typer.BadParameter("pdftoppm not found (Debian: apt-get install poppler-utils)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "c.pdf"
        src.write_bytes(pdf)
        subprocess.run([pdftoppm, "-png", "-r", "80", "-singlefile", str(src), str(Path(tmp) / "page")], check=True)
        shutil.copyfile(Path(tmp) / "page.png", out)
    typer.echo(f"wrote {out} and {out.with_suffix('.pdf')}")


@app.command("sample-certificate-ofd")
def sample_certificate_ofd(
    out: Annotated[Path, typer.Option(help="PNG of the first page (the .ofd is written beside it)")] = Path(
        "docs/certificate-sample-ofd.png"
    ),
) -> None:
    """Issue one OFD certificate in a throw-away gm centre; draw its first page from the .ofd file alone
    (sandbox.ofd_render, then poppler's pdftoppm)."""
    from .ofd_render import ofd_to_pdf

    ofd = issue_sample_certificate("gm")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".ofd").write_bytes(ofd)
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        raise typer.BadParameter("pdftoppm not found (Debian: apt-get install poppler-utils)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "c.pdf"
        src.write_bytes(ofd_to_pdf(out.with_suffix(".ofd").read_bytes()))  # from the file, nothing else
        subprocess.run([pdftoppm, "-png", "-r", "80", "-singlefile", str(src), str(Path(tmp) / "page")], check=True)
        shutil.copyfile(Path(tmp) / "page.png", out)
    typer.echo(f"wrote {out} and {out.with_suffix('.ofd')}")


def issue_sample_certificate(suite: str = "intl") -> bytes:
    """Take one 抵押权首次登记 through a throw-away in-memory centre; answer the sealed PDF (the ``intl``
    suite) or OFD (``gm``)."""
    return issue_sample(suite)[0]


def issue_sample(suite: str = "intl") -> tuple[bytes, Any, Any]:
    """:func:`issue_sample_certificate`, also answering the certificate's metadata and the centre."""
    from pydantic import TypeAdapter

    from sdk.models import Application, CertificateMetadata, Payment
    from sdk.suites import suite_named

    from . import samples
    from .centre import Centre
    from .store import Store
    from .workflow import Timing

    centre = Centre(Store(), timing=Timing(step_seconds=0), public_url="http://127.0.0.1:8600",
                    suite=suite_named(suite))  # fmt: skip
    iid = centre.create_institution(name=samples.bank().name, uscc=samples.BANK_USCC, licence_no="B0001H234010001",
                                    district="340121")  # fmt: skip
    centre.create_operator(iid, "李经办", "op-001")
    samples.file_sample(centre, iid)
    data = samples.application_dict("mortgage_first", "LN2026-0001", n=7, complete=True)
    app = TypeAdapter(Application).validate_python(data)
    record = centre.create_application(iid, app)
    for m in app.materials:
        centre.upload_material(iid, record.application_id, m.id, samples.sample_content(m, "LN2026-0001"))
    centre.submit(iid, record.application_id)
    while centre.workflow.tick():
        pass
    notice = centre.fee_notice(iid, record.application_id)
    centre.pay(iid, record.application_id, Payment(amount=notice.total))
    while centre.workflow.tick():
        pass
    done = centre.get_application(iid, record.application_id)
    row = centre.store.one("SELECT content, metadata FROM certificates WHERE id = ?", done.certificate_ids[0])
    if row is None:
        raise RuntimeError(f"the sample application ended {done.status.value} without a certificate")
    return bytes(row["content"]), CertificateMetadata.model_validate_json(row["metadata"]), centre


def _said(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with the centre's refusal (:class:`sandbox.errors.CentreError`) said on stderr as its code and
    reason, exit status 1 — never a Python traceback (an operator id that exists, an unknown institution…)."""
    from .errors import CentreError

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CentreError as e:
            typer.echo(f"{e.code}: {e.detail}", err=True)
            raise typer.Exit(1) from None

    return run


for _command in admin_app.registered_commands:  # every admin command, those added later in this module included
    if _command.callback is not None:
        _command.callback = _said(_command.callback)
