"""The agent's configuration: one TOML file (``regbridge run --config agent.toml``), each setting
overridable from the environment (pydantic-settings).

Environment variables are ``REGBRIDGE_`` + the setting's path in capitals, ``__`` between a
section and its key: ``REGBRIDGE_CONCURRENCY=8``, ``REGBRIDGE_CENTRE__URL=https://…``,
``REGBRIDGE_DOCUMENTS__SECRET_KEY=…``. They win over the file; the file wins over the defaults.

Relative paths are relative to the config file's folder. Secrets are not kept in it: the private
key is in the OS keyring or an encrypted PKCS#8 file (:mod:`agent.credentials`), its passphrase comes
from :mod:`agent.state.secrets`, and the few secret settings (``documents.access_key``,
``documents.secret_key``, a proxy's password) are redacted by ``regbridge config show``.
docs/configuration.md documents every setting (``python -m agent.config`` writes it).
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from sdk.suites import Suite, suite_named

__all__ = ["ENV_PREFIX", "AgentConfig", "env_overrides", "load_config", "redacted", "schema_markdown"]

ENV_PREFIX = "REGBRIDGE_"
_TOML_FILE: ContextVar[Path | None] = ContextVar("_TOML_FILE", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: the vendor SM2 codes a PKCS#11 token may be configured with, by xipki's names (its
#: ``VendorCodeConverter``: each vendor's module maps these to its own numbers); older names beside
SM2_VENDOR_CODES = {
    "CKK_VENDOR_SM2": "the SM2 key type (CKA_KEY_TYPE); without it CKK_EC with the SM2 curve OID",
    "CKM_VENDOR_SM2_KEY_PAIR_GEN": "SM2 key pair generation",
    "CKM_VENDOR_SM2": "SM2 signature of a digest: RegBridge computes SM3(Z_A ‖ M) and the token signs it",
    "CKM_VENDOR_SM2_SM3": "SM2 with SM3 over the message: the token computes Z_A (its default user id only)",
}
SM2_VENDOR_ALIASES = {"sm2_keygen": "CKM_VENDOR_SM2_KEY_PAIR_GEN", "sm2_sign": "CKM_VENDOR_SM2"}


def sm2_vendor_codes(codes: dict[str, int]) -> dict[str, int]:
    """``codes`` under xipki's names (aliases resolved), each a PKCS#11 CK_ULONG.

    Raises:
        ValueError: an unknown name (the message lists the known ones) or a value outside 1 … 2³²-1.
    """
    out: dict[str, int] = {}
    for name, value in codes.items():
        key = SM2_VENDOR_ALIASES.get(name, name)
        if key not in SM2_VENDOR_CODES:
            known = ", ".join([*SM2_VENDOR_CODES, *SM2_VENDOR_ALIASES])
            raise ValueError(f"centre.pkcs11.mechanisms: {name!r} is not a vendor SM2 code name; known: {known}")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**32:
            raise ValueError(f"centre.pkcs11.mechanisms.{name}: {value!r} is not a PKCS#11 code (1 … 0xFFFFFFFF)")
        if key in out and out[key] != value:
            raise ValueError(f"centre.pkcs11.mechanisms: {name} and {key} name different codes")
        out[key] = value
    return out


class Pkcs11Config(_Section):
    """A PKCS#11 token that keeps the branch's keys, made and used inside it (docs/install.md).
    The PIN is never here: a systemd credential `regbridge-pkcs11-pin`, or `pin_file` (mode 0600)."""

    module: str = Field(description="the token's PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so)")
    token_label: str | None = Field(default=None, description="the token's label (or give its slot)")
    slot: int | None = Field(default=None, description="the token's slot id (when no label is given)")
    pin_file: Path | None = Field(
        default=None, description="a file holding the PIN, mode 0600 (or a systemd credential)"
    )
    mechanisms: dict[str, int] = Field(
        default_factory=dict,
        description="vendor SM2 codes by xipki's names: CKK_VENDOR_SM2, CKM_VENDOR_SM2_KEY_PAIR_GEN, CKM_VENDOR_SM2 "
        "(sign a digest) or CKM_VENDOR_SM2_SM3 (old names sm2_keygen, sm2_sign); hex in TOML is fine (0x80000001). "
        "Untested: SoftHSM2 has no SM2",
    )

    @model_validator(mode="after")
    def _vendor_codes(self) -> Pkcs11Config:
        self.mechanisms = sm2_vendor_codes(self.mechanisms)
        return self


class CentreConfig(_Section):
    """The registration centre and this branch's credential (written by ``regbridge enroll``)."""

    url: str = Field(description="the registration API's base URL")
    institution_id: str = Field(description="the bank account the centre opened")
    institution_name: str = Field(description="the mortgagee's name as the centre registered it")
    institution_uscc: str = Field(description="the mortgagee's 统一社会信用代码")
    key_id: str = Field(description="the key id the centre gave this branch's current key")
    key_store: Literal["file", "keyring", "pkcs11"] = Field(
        default="file",
        description="where the private key is kept: the OS keyring, an encrypted PKCS#8 file, or a PKCS#11 token",
    )
    pkcs11: Pkcs11Config | None = Field(default=None, description="the token, when key_store = pkcs11")
    key_dir: Path = Field(default=Path("keys"), description="key files (key_store = file) and the key manifest")
    key_max_age_days: int = Field(default=365, ge=1, description="`doctor` and `keys show` warn past this age")
    seal_ca_file: Path = Field(description="the CA that signs the centre's certificate seals (PEM)")
    esign_ca_file: Path | None = Field(
        default=None,
        description="the e-signature CAs (PEM, one or more) whose applicant signatures the agent accepts, from the"
        " enrolment bundle; without it every applicant's e-signature is held as untrusted",
    )
    centre_key_id: str = Field(description="the key id of the centre's signing key (webhooks, certificate metadata)")
    centre_key: dict[str, Any] = Field(description="the centre's public signing key (JWK)")
    centre_name: str | None = Field(
        default=None,
        description="the registration centre's name from its enrolment bundle: a certificate's seal must be this"
        " centre's (its certificate's organisation)",
    )
    suite: Literal["intl", "gm"] = Field(
        default="intl",
        description="the centre's crypto suite, from its enrolment bundle: intl (Ed25519/P-256, SHA-256) or gm"
        " (SM2 with SM3, sm3 digests; docs/api.md §5)",
    )
    sm2_user_id: str | None = Field(
        default=None, description="gm: the SM2 user id (GM/T 0009) signatures are made with; default 1234567812345678"
    )
    envelope: Literal["SM4-GCM", "SM4-CBC"] | None = Field(
        default=None,
        description="gm, from the enrolment bundle: the centre asks for the parties' names, ID numbers and phones"
        " SM4-encrypted in this mode, the key wrapped to centre_encryption_key (docs/api.md §5)",
    )
    centre_encryption_key: dict[str, Any] | None = Field(
        default=None, description="gm with envelope: the centre's SM2 encryption key (JWK), from the bundle"
    )
    timeout: float = Field(default=30.0, gt=0, description="seconds per request")
    proxy: str | None = Field(default=None, description="an HTTP(S) proxy URL; a password in it is redacted")
    ca_bundle: Path | None = Field(default=None, description="a CA bundle for the centre's TLS (default: system)")

    @property
    def crypto_suite(self) -> Suite:
        """The suite (:mod:`sdk.suites`) with its SM2 user id."""
        return suite_named(self.suite, sm2_user_id=self.sm2_user_id, envelope=self.envelope)

    @model_validator(mode="after")
    def _envelope_key(self) -> CentreConfig:
        if self.envelope and not self.centre_encryption_key:
            raise ValueError("centre.envelope needs centre.centre_encryption_key (enrol again with its bundle)")
        if self.envelope and self.suite != "gm":
            raise ValueError("centre.envelope is for a gm centre only")
        return self


#: what another direct centre (``[centres."<prefix>"]``) takes from ``[centre]``: the bank and the agent's key store
_FROM_CENTRE = ("institution_name", "institution_uscc", "key_store", "pkcs11", "key_dir", "key_max_age_days")


class DirectCentreConfig(_Section):
    """Another registration centre the agent reaches directly (RegBridge's API, as `[centre]`), for the units whose
    行政区划代码 starts with its key: `[centres."340104"]` (a district) or `[centres."3402"]` (every district of a
    city), 2-6 digits; the longest key that matches wins, a district of `[platform.centres]` goes to the platform
    and any other district to `[centre]`. Its own account there (`institution_id`), its own credential (the key
    `key_id` names, in the agent's key store of `[centre]`) and its own trust anchors; the bank's name and
    统一社会信用代码 and the key store are `[centre]`'s. Written from that centre's enrolment bundle (`regbridge
    enroll` in another folder, then this table copied from its `[centre]`); `regbridge doctor` checks each."""

    url: str = Field(description="the centre's registration API base URL")
    institution_id: str = Field(description="the bank's account at this centre")
    key_id: str = Field(description="the key id this centre gave the agent's key (in the agent's key store)")
    seal_ca_file: Path = Field(description="the CA that signs this centre's certificate seals (PEM)")
    centre_key_id: str = Field(description="the key id of this centre's signing key (certificate metadata)")
    centre_key: dict[str, Any] = Field(description="this centre's public signing key (JWK)")
    centre_name: str | None = Field(default=None, description="this centre's name: its certificates' seal must be it")
    suite: Literal["intl", "gm"] = Field(default="intl", description="this centre's crypto suite")
    sm2_user_id: str | None = Field(default=None, description="gm: the SM2 user id; default 1234567812345678")
    envelope: Literal["SM4-GCM", "SM4-CBC"] | None = Field(
        default=None, description="gm: this centre asks for the personal fields encrypted (as `centre.envelope`)"
    )
    centre_encryption_key: dict[str, Any] | None = Field(
        default=None, description="gm with envelope: this centre's SM2 encryption key (JWK)"
    )
    timeout: float = Field(default=30.0, gt=0, description="seconds per request")
    proxy: str | None = Field(default=None, description="an HTTP(S) proxy URL; a password in it is redacted")
    ca_bundle: Path | None = Field(default=None, description="a CA bundle for this centre's TLS (default: system)")


class PlatformCentreConfig(_Section):
    """One county centre behind the platform: the trust anchors its certificates and sealed notices are
    checked against (from the platform's enrolment answer, ``regbridge platform enroll``)."""

    name: str = Field(description="the centre's name: a certificate's seal must be this centre's")
    centre_key_id: str = Field(description="the key id of the centre's metadata-signing key")
    centre_key: dict[str, Any] = Field(description="the centre's public signing key (JWK)")
    seal_ca_file: Path = Field(description="the CAs that sign this centre's certificate seals (PEM)")


class PlatformNotifyConfig(_Section):
    """The notify URL the platform pushes notices to (查封, 解封, 异议, 产权变动; agent/daemon/notify.py)."""

    enabled: bool = Field(default=True, description="listen for the platform's pushed notices")
    listen: str = Field(default="127.0.0.1", description="the address to listen on")
    port: int = Field(default=0, ge=0, le=65535, description="the port (0: any free one)")
    public_url: str | None = Field(
        default=None,
        description="the URL the platform posts to, as registered with it; default http://listen:port/notify",
    )


class PlatformConfig(_Section):
    """A provincial 总对总 platform (docs/dialects.md): the agent sends every application whose unit is in a
    district of ``centres`` through it, in its envelope (SM4-CBC, SM2-wrapped key, SM2 signature), and
    listens for the notices it pushes. Written by ``regbridge platform enroll`` from the platform's
    registration: the platform's keys come from there, never from a message. The agent's own SM2 keys
    are in the key store like the centre key (an encrypted PKCS#8 file or the OS keyring; ``key_id`` inside
    the PKCS#11 token of ``[centre.pkcs11]`` when it was made there): ``key_id`` signs, the bank's SM2
    encryption key (``regbridge keys show``; a software key even beside a token) opens what the platform seals
    to it."""

    url: str = Field(description="the platform's base URL (services at {url}/api/{service})")
    dialect: str = Field(default="province", description="the platform's dialect: config/dialects/<dialect>.toml")
    app_id: str = Field(description="this bank's appId at the platform (its registration)")
    platform_app_id: str = Field(description="the platform's own appId (it signs answers and notices as this)")
    platform_signing_key: str = Field(
        description="the platform's SM2 signing public key (PEM), from its registration desk"
    )
    platform_encryption_key: str = Field(
        description="the platform's SM2 encryption public key (PEM): requests are sealed to it"
    )
    key_id: str = Field(
        description="the key (in the key store, or the PKCS#11 token) this bank signs its requests to the platform with"
    )
    max_skew: float = Field(
        default=300.0, gt=0, description="seconds a notice's timestamp may differ from this clock (the replay window)"
    )
    timeout: float = Field(default=30.0, gt=0, description="seconds per request")
    notify: PlatformNotifyConfig = PlatformNotifyConfig()
    centres: dict[str, PlatformCentreConfig] = Field(
        min_length=1,
        description="the routing table: 行政区划代码 (6 digits, the start of a 不动产单元号) → the county centre "
        "behind the platform and its trust anchors; one [platform.centres.<code>] table each",
    )

    @model_validator(mode="after")
    def _keys_and_districts(self) -> PlatformConfig:
        from sdk.gm.sm2 import load_pem_public_key

        for name in ("platform_signing_key", "platform_encryption_key"):
            try:
                load_pem_public_key(getattr(self, name).encode("ascii"))
            except (ValueError, UnicodeEncodeError) as exc:
                raise ValueError(f"platform.{name} is not an SM2 public key (PEM): {exc}") from None
        for code in self.centres:
            if not (len(code) == 6 and code.isdigit()):
                raise ValueError(f"platform.centres: {code!r} is not a 6-digit 行政区划代码")
        return self


class BranchConfig(_Section):
    """A branch (支行) the head office's agent acts for: an institution of its own at the centres, the mortgagee
    of its loans, with its own 业务办理人员 there. An inbox names its branch (``[[inbox]] branch``), or a column
    of the export does (the profile's ``declaration.branch``)."""

    institution_name: str = Field(description="the branch's name as the centres registered it (the 抵押权人)")
    institution_uscc: str = Field(description="the branch's 统一社会信用代码")
    default_operator: str | None = Field(
        default=None, description="the branch's 经办人 account when the export names none (else the agent's)"
    )


class InboxConfig(_Section):
    """A folder the loan system exports into."""

    name: str = Field(description="a short name (receipts and status show it)")
    path: Path = Field(description="the folder")
    profile: str = Field(description="the mapping profile: a name in config/mappings or a TOML path")
    completion: Literal["stable", "rename", "marker"] = Field(
        default="stable", description="when a file is complete: stable size, renamed into place, or a .done marker"
    )
    stable_seconds: float = Field(default=2.0, ge=0, description="size and mtime unchanged this long (stable)")
    polling: bool = Field(default=False, description="a polling observer (network shares)")
    receipts: Path | None = Field(default=None, description="default: the profile's receipts folder in the inbox")
    branch: str | None = Field(
        default=None,
        description="the branch (支行) whose loan system exports here: a key of [branches] (its institution, the"
        " mortgagee of its loans, its operators), or just its name; its applications carry it, their receipts come"
        " back to this folder, their certificates are stored under the branch's folder of the document store",
    )


class DocumentsConfig(_Section):
    """The bank's document store for certificates."""

    kind: Literal["filesystem", "s3"] = Field(default="filesystem", description="filesystem or S3")
    root: Path = Field(default=Path("documents"), description="filesystem: the root folder")
    bucket: str | None = Field(default=None, description="s3: the bucket")
    prefix: str = Field(default="", description="s3: a key prefix")
    endpoint_url: str | None = Field(default=None, description="s3: the endpoint (MinIO, Ceph…)")
    region: str = Field(default="us-east-1", description="s3: the region")
    access_key: SecretStr | None = Field(
        default=None, description="s3: set it through REGBRIDGE_DOCUMENTS__ACCESS_KEY, not in the file"
    )
    secret_key: SecretStr | None = Field(
        default=None, description="s3: set it through REGBRIDGE_DOCUMENTS__SECRET_KEY, not in the file"
    )

    @model_validator(mode="after")
    def _bucket(self) -> DocumentsConfig:
        if self.kind == "s3" and not self.bucket:
            raise ValueError("documents.kind = 's3' needs documents.bucket")
        return self


class FeesConfig(_Section):
    """Registration fees (登记费)."""

    auto_pay: bool = Field(default=False, description="pay fee notices automatically")
    daily_cap: Decimal = Field(default=Decimal("0"), description="at most this many 元 a day paid automatically")
    method: Literal["bank_transfer", "online"] = Field(default="bank_transfer", description="the payment method")
    payer_account: str | None = Field(default=None, description="the account fees are paid from")


class CollateralConfig(_Section):
    """Collateral watch (抵押物监控): each registered mortgage's unit looked at again by a 登记资料查询 the bank
    authorises as the mortgage's 权利人 (agent/pipeline/collateral.py)."""

    enabled: bool = Field(default=True, description="watch the units of the mortgages the agent registered")
    interval_hours: float = Field(default=24.0, gt=0, description="look at each mortgage at most this often")
    max_queries: int = Field(default=50, ge=1, description="the request budget: at most this many queries a run")
    run_minutes: float = Field(default=10.0, gt=0, description="how often the watch runs")


class WebhookConfig(_Section):
    """Event deliveries pushed by the centre (the event feed is read in any case)."""

    enabled: bool = Field(default=False, description="listen for the centre's webhook deliveries")
    listen: str = Field(default="127.0.0.1", description="the address to listen on")
    port: int = Field(default=0, ge=0, le=65535, description="the port (0: any free one)")
    public_url: str | None = Field(default=None, description="the URL the centre posts to; default http://listen:port/")


class MetricsConfig(_Section):
    """The Prometheus endpoint (/metrics) and the health check (/healthz)."""

    enabled: bool = Field(default=True, description="serve /metrics and /healthz while `regbridge run` runs")
    listen: str = Field(default="127.0.0.1", description="the address (loopback: only this machine)")
    port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="the port (0: any free one, logged at the start); each agent instance on one host needs its own "
        "(taken: the agent runs without /metrics and raises a `metrics` alert)",
    )
    stale_seconds: float = Field(default=120.0, gt=0, description="/healthz fails when the work loop is this late")


class StateConfig(_Section):
    """Where the agent keeps its state (agent/state; docs/state.md)."""

    url: str | None = Field(
        default=None,
        description="a SQLAlchemy URL for a shared state, e.g. `postgresql+psycopg://agent@db.bank.local/regbridge` "
        "(several instances on one PostgreSQL); default: the embedded SQLite file `state.db` in `data_dir`. "
        "Keep the password out of it: libpq's `PGPASSFILE` or a client certificate (a password in it is redacted)",
    )
    blobs_dir: Path | None = Field(
        default=None,
        description="a shared state: the folder of the encrypted copies (exports, materials) every instance reads, "
        "on a mount all hosts share; default `blobs` in `data_dir`",
    )
    leader_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a shared state: the time to live of the leader lease (the event feed's reader), renewed every "
        "third of it; a dead leader's feed is taken over within this many seconds",
    )
    claim_seconds: float = Field(
        default=120.0,
        gt=0,
        description="a shared state: how long an instance's claim on an application (submit) or a certificate "
        "(deliver) lasts at most; released when its step ends, freed by the reaper when the instance dies",
    )


class LoggingConfig(_Section):
    """The agent's log: JSON lines, personal data masked (`regbridge logs [-f]` reads it); reloaded on SIGHUP."""

    level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="the lowest level kept")
    file: Path | None = Field(default=None, description="the log file; default: agent.log in data_dir")
    max_mb: float = Field(default=20.0, gt=0, description="rotate the file past this size (MB)")
    backups: int = Field(default=10, ge=0, le=1000, description="rotated files kept (agent.log.1 … .N)")


class ConsoleConfig(_Section):
    """The local web console (docs/console.md): served by the daemon when enabled, or `regbridge console`."""

    enabled: bool = Field(default=False, description="serve the console from `regbridge run` too")
    listen: str = Field(default="127.0.0.1", description="the address (loopback by default; LAN mode: 0.0.0.0)")
    port: int = Field(default=8470, ge=0, le=65535, description="the port (0: any free one)")
    tls_cert: Path | None = Field(default=None, description="LAN mode: the server certificate (PEM) served over TLS")
    tls_key: Path | None = Field(default=None, description="LAN mode: its private key (PEM, mode 0600)")
    behind_proxy: bool = Field(
        default=False,
        description="a reverse proxy terminates TLS: trust its X-Forwarded-Proto/-For (from trusted_proxies only)"
        " and set secure cookies",
    )
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"], description="the proxies' addresses whose X-Forwarded-* are believed"
    )
    session_minutes: int = Field(default=480, ge=5, description="a login lasts this long without use")

    @model_validator(mode="after")
    def _tls_pair(self) -> ConsoleConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("console.tls_cert and console.tls_key go together")
        return self


class AgentConfig(BaseSettings):
    """The agent's settings."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False
    )

    data_dir: Path = Field(default=Path("var"), description="the state store, audit log, encrypted copies, logs")
    secret_file: Path | None = Field(default=None, description="a file (mode 0600) holding the agent secret")
    default_operator: str | None = Field(default=None, description="the 经办人 when the export names none")
    concurrency: int = Field(default=4, ge=1, le=64, description="applications sent at the same time")
    rescan_seconds: float = Field(default=30.0, gt=0, description="a full rescan of the inboxes this often")
    straggler_seconds: float = Field(default=300.0, gt=0, description="read an application without news this often")
    max_poll_seconds: float = Field(default=60.0, gt=0, description="the event feed at least this often")
    retry_max_seconds: float = Field(
        default=600.0,
        ge=1,
        description="the longest wait before an application that keeps failing is tried again (the backoff doubles "
        "up to this)",
    )
    correction_warning_hours: float = Field(default=48.0, description="warn this long before a 补正 deadline")
    recheck_hours: float = Field(
        default=24.0,
        ge=0,
        description="re-check every stored certificate and sealed notice this often (在线核验 and locally: seal, "
        "today's CRL, digest; `regbridge certificates check` on demand); 0 = never",
    )
    transmittal_dir: Path = Field(default=Path("transmittals"), description="where transmittals are written")
    min_free_mb: int = Field(default=512, ge=0, description="`doctor` fails below this much free disk")
    pause_free_mb: int = Field(
        default=64,
        ge=0,
        description="the agent pauses (alert `disk_full`) below this much free disk where its state lives, "
        "and resumes by itself when space is freed",
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        description="the time zone of receipts and screens (IANA name); times carry their offset, e.g. +08:00",
    )
    centre: CentreConfig
    platform: PlatformConfig | None = Field(
        default=None, description="a provincial 总对总 platform the applications go through (`[platform]`)"
    )
    centres: dict[str, DirectCentreConfig] = Field(
        default_factory=dict,
        description="more centres reached directly, by the start of the 行政区划代码 of their units (2-6 digits; "
        '`[centres."<prefix>"]`); none: `[centre]` is the only direct centre',
    )
    inbox: list[InboxConfig] = Field(min_length=1, description="one [[inbox]] table per export folder")
    branches: dict[str, BranchConfig] = Field(
        default_factory=dict,
        description="the branches a head office's agent acts for, by the name an inbox or an export column gives"
        " (`[branches.<name>]`); none: every application is the enrolled institution's (`centre`)",
    )
    documents: DocumentsConfig = DocumentsConfig()
    fees: FeesConfig = FeesConfig()
    collateral: CollateralConfig = CollateralConfig()
    webhook: WebhookConfig = WebhookConfig()
    metrics: MetricsConfig = MetricsConfig()
    state: StateConfig = StateConfig()
    logging: LoggingConfig = LoggingConfig()
    console: ConsoleConfig = ConsoleConfig()

    _base: Path = PrivateAttr(default=Path("."))
    _source: Path | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _TOML_FILE.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @property
    def base(self) -> Path:
        """The folder relative paths are relative to (the config file's)."""
        return self._base

    @property
    def source(self) -> Path | None:
        """The config file this was read from."""
        return self._source

    @property
    def log_file(self) -> Path:
        """Where the agent logs (``[logging] file``, else ``agent.log`` in the data folder)."""
        return self.resolve(self.logging.file) if self.logging.file else self.resolve(self.data_dir) / "agent.log"

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self._base / path)

    def direct_centre(self, prefix: str) -> CentreConfig:
        """``[centres."<prefix>"]`` as a whole ``[centre]`` (the bank and the key store from ``[centre]``).

        Raises:
            KeyError: no such prefix.
        """
        own = self.centres[prefix].model_dump()
        return CentreConfig.model_validate({**self.centre.model_dump(include=set(_FROM_CENTRE)), **own})

    def for_centre(self, prefix: str) -> AgentConfig:
        """This configuration with ``[centres."<prefix>"]`` as its ``[centre]`` (what a client of that centre is
        built from: :func:`agent.centre.client.centre_client`)."""
        return self.model_copy(update={"centre": self.direct_centre(prefix)})

    @model_validator(mode="after")
    def _known_timezone(self) -> AgentConfig:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: {self.timezone!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
        return self

    @model_validator(mode="after")
    def _direct_centres(self) -> AgentConfig:
        for prefix in self.centres:
            if not (2 <= len(prefix) <= 6 and prefix.isdigit()):
                raise ValueError(f"centres: {prefix!r} is not the start of a 行政区划代码 (2-6 digits)")
            if self.platform is not None and prefix in self.platform.centres:
                raise ValueError(f"centres: {prefix} is a district of [platform.centres] (it goes to the platform)")
            try:
                self.direct_centre(prefix)
            except ValidationError as exc:
                raise ValueError(f"centres.{prefix}: {_describe(exc)}") from None
        return self

    @model_validator(mode="after")
    def _unique_inboxes(self) -> AgentConfig:
        names = [i.name for i in self.inbox]
        if len(set(names)) != len(names):
            raise ValueError("inbox names must be unique")
        unknown = [f"{i.name}: {i.branch}" for i in self.inbox if self.branches and i.branch
                   and i.branch not in self.branches]  # fmt: skip
        if unknown:
            raise ValueError(f"inbox branch not in [branches]: {', '.join(unknown)}")
        return self


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def load_config(path: Path) -> AgentConfig:
    """Read and check ``path`` (and the ``REGBRIDGE_*`` environment); the error names the setting that is wrong."""
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    token = _TOML_FILE.set(path)
    try:
        config = AgentConfig()  # the sources fill it
    except ValidationError as exc:
        raise ValueError(f"{path}: {_describe(exc)}") from None
    finally:
        _TOML_FILE.reset(token)
    config._base = path.resolve().parent
    config._source = path.resolve()
    return config


def env_overrides() -> list[str]:
    """The ``REGBRIDGE_*`` variables that override settings (names only, never values)."""
    fields = set(AgentConfig.model_fields)
    names = []
    for name in os.environ:
        if name.upper().startswith(ENV_PREFIX):
            head = name[len(ENV_PREFIX) :].lower().split("__")[0]
            if head in fields:
                names.append(name)
    return sorted(names)


def _redact_url(url: str) -> str:
    """``url`` with a password hidden: in the authority, and as a ``password=`` query parameter (libpq's)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() == "password" for k, _ in pairs):
        hidden = [(k, "***" if k.lower() == "password" else v) for k, v in pairs]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    if parts.password is None:
        return urlunsplit(parts)
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redacted(config: AgentConfig) -> dict[str, Any]:
    """The effective settings with secrets shown as ``***`` (for ``regbridge config show``)."""
    data = config.model_dump(mode="json", exclude_none=True)
    for key in ("access_key", "secret_key"):
        if data.get("documents", {}).get(key):
            data["documents"][key] = "***"
    for centre in [data["centre"], *data.get("centres", {}).values()]:
        if centre.get("proxy"):
            centre["proxy"] = _redact_url(centre["proxy"])
    if data.get("state", {}).get("url"):
        data["state"]["url"] = _redact_url(data["state"]["url"])
    return data


def schema_markdown() -> str:
    """docs/configuration.md: every setting, its type, default and meaning, from the model itself."""

    def type_name(annotation: Any) -> str:
        if get_origin(annotation) is Literal:
            return " \\| ".join(f'"{v}"' for v in get_args(annotation))
        text = getattr(annotation, "__name__", None) or str(annotation)
        text = text.replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")
        text = text.replace("__main__.", "").replace("agent.config.", "")
        return text.replace("decimal.", "").replace("|", "\\|")

    def table(model: type[BaseModel], prefix: str) -> list[str]:
        rows = ["| setting | type | default | environment | meaning |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            sections = {"centre", "centres", "platform", "branches", "inbox", "documents", "fees", "collateral",
                        "webhook", "metrics", "logging", "console", "state"}  # fmt: skip
            if (name in sections and model is AgentConfig) or (
                model is PlatformConfig and name in ("notify", "centres")
            ):
                continue
            default = "required" if field.is_required() else f"`{field.default}`"
            if isinstance(field.default, BaseModel):
                default = "—"
            env = f"`{ENV_PREFIX}{prefix.upper()}{name.upper()}`" if prefix != "inbox." else "—"
            env = env.replace(".", "__")
            rows.append(
                f"| `{prefix}{name}` | {type_name(field.annotation)} | {default} | {env} | {field.description or ''} |"
            )
        return rows

    out = [
        "# Agent configuration",
        "",
        "<!-- written by `python -m agent.config > docs/configuration.md`; a test keeps it current -->",
        "",
        "The agent reads one TOML file (`regbridge run --config agent.toml`; `REGBRIDGE_CONFIG` names it",
        "too). `regbridge enroll` writes it; edit it to add inboxes and change settings. Every setting can",
        "be overridden from the environment: `REGBRIDGE_` + its path in capitals, `__` between a section",
        "and its key (`REGBRIDGE_CENTRE__TIMEOUT=60`). The environment wins over the file, the file over",
        "the defaults. Relative paths are relative to the config file's folder.",
        "",
        "`regbridge config show` prints the effective settings with secrets redacted and names the",
        "environment variables that changed them; `regbridge doctor` checks them against the machine.",
        "",
        "Secrets are never in the file: the private key is in the OS keyring or an encrypted PKCS#8",
        "file (`centre.key_store`), its passphrase (the agent secret) comes from `REGBRIDGE_AGENT_SECRET`,",
        "a systemd credential `regbridge-secret`, `secret_file` (mode 0600) or the OS keyring. S3",
        "credentials belong in the environment or a systemd credential, not in the file; so does a PKCS#11",
        "token's PIN (a systemd credential `regbridge-pkcs11-pin` or `centre.pkcs11.pin_file`, mode 0600).",
        "",
        "## Top level",
        "",
        *table(AgentConfig, ""),
    ]
    sections: list[tuple[str, type[BaseModel], str]] = [
        ("centre", CentreConfig, "`[centre]`"),
        ("centre.pkcs11", Pkcs11Config, '`[centre.pkcs11]` (when `centre.key_store = "pkcs11"`)'),
        ("centres.<prefix>", DirectCentreConfig, '`[centres."<行政区划代码 prefix>"]` (more centres reached directly)'),
        ("platform", PlatformConfig, "`[platform]` (a provincial 总对总 platform; docs/dialects.md)"),
        ("platform.notify", PlatformNotifyConfig, "`[platform.notify]`"),
        ("platform.centres.<code>", PlatformCentreConfig, "`[platform.centres.<行政区划代码>]` (the routing table)"),
        ("branches.<name>", BranchConfig, "`[branches.<name>]` (the branches a head office's agent acts for)"),
        ("inbox", InboxConfig, "`[[inbox]]` (one per folder; override the whole list with `REGBRIDGE_INBOX` as JSON)"),
        ("documents", DocumentsConfig, "`[documents]`"),
        ("fees", FeesConfig, "`[fees]`"),
        ("collateral", CollateralConfig, "`[collateral]`"),
        ("webhook", WebhookConfig, "`[webhook]`"),
        ("metrics", MetricsConfig, "`[metrics]`"),
        ("state", StateConfig, "`[state]`"),
        ("logging", LoggingConfig, "`[logging]`"),
        ("console", ConsoleConfig, "`[console]`"),
    ]
    for name, model, title in sections:
        out += ["", f"## {title}", "", (model.__doc__ or "").strip(), "", *table(model, f"{name}.")]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(schema_markdown(), end="")
