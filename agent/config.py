"""The agent's configuration: one TOML file (``regbridge run --config agent.toml``).

Relative paths are relative to the config file's folder. Secrets are never in it: the private
key is an encrypted PKCS#8 file (``centre.key_file``) and the passphrase comes from
:mod:`agent.secrets`. docs/agent.md documents every setting.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AgentConfig", "load_config"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CentreConfig(_Section):
    url: str
    institution_id: str
    institution_name: str
    institution_uscc: str
    key_id: str
    key_file: Path
    seal_ca_file: Path
    centre_key_id: str
    centre_key: dict[str, Any]
    timeout: float = 30.0


class InboxConfig(_Section):
    name: str
    path: Path
    profile: str
    completion: Literal["stable", "rename", "marker"] = "stable"
    stable_seconds: float = Field(default=2.0, ge=0, description="size and mtime unchanged this long (stable)")
    polling: bool = Field(default=False, description="a polling observer (network shares)")
    receipts: Path | None = Field(default=None, description="default: the profile's receipts folder in the inbox")


class DocumentsConfig(_Section):
    kind: Literal["filesystem", "s3"] = "filesystem"
    root: Path = Path("documents")
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_env: str = "REGBRIDGE_S3_ACCESS_KEY"
    secret_key_env: str = "REGBRIDGE_S3_SECRET_KEY"

    @model_validator(mode="after")
    def _bucket(self) -> DocumentsConfig:
        if self.kind == "s3" and not self.bucket:
            raise ValueError("documents.kind = 's3' needs documents.bucket")
        return self


class FeesConfig(_Section):
    auto_pay: bool = False
    daily_cap: Decimal = Decimal("0")
    method: Literal["bank_transfer", "online"] = "bank_transfer"
    payer_account: str | None = None


class WebhookConfig(_Section):
    enabled: bool = False
    listen: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = Field(default=None, description="the URL the centre posts to; default http://listen:port/")


class AgentConfig(_Section):
    data_dir: Path = Path("var")
    secret_file: Path | None = None
    default_operator: str | None = None
    concurrency: int = Field(default=4, ge=1, le=64)
    rescan_seconds: float = Field(default=30.0, gt=0)
    straggler_seconds: float = Field(default=300.0, gt=0)
    max_poll_seconds: float = Field(default=60.0, gt=0)
    correction_warning_hours: float = 48.0
    transmittal_dir: Path = Path("transmittals")
    centre: CentreConfig
    inbox: list[InboxConfig] = Field(min_length=1)
    documents: DocumentsConfig = DocumentsConfig()
    fees: FeesConfig = FeesConfig()
    webhook: WebhookConfig = WebhookConfig()
    base: Path = Path(".")

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self.base / path)

    @model_validator(mode="after")
    def _unique_inboxes(self) -> AgentConfig:
        names = [i.name for i in self.inbox]
        if len(set(names)) != len(names):
            raise ValueError("inbox names must be unique")
        return self


def load_config(path: Path) -> AgentConfig:
    """Read and check ``path``; the error names the setting that is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    try:
        return AgentConfig.model_validate({**data, "base": path.resolve().parent})
    except Exception as exc:
        raise ValueError(f"{path}: {exc}") from None
