"""``regbridge platform enroll``: a head office's agent registered at a provincial 总对总 platform (docs/dialects.md).

How a bank IT gets there (the agent is already enrolled with ``regbridge enroll``: its secret, key
store and ``agent.toml`` exist):

1. :func:`registration_request` makes the bank's SM2 signing key for the platform and its SM2
   encryption key in the key store (encrypted PKCS#8 under the agent secret, or the OS keyring —
   never plaintext; the signing key inside the PKCS#11 token when the key store is one) and answers
   the registration form the platform's desk takes: ``appId``, both
   public keys (PEM), the notify URL and the branches (支行) the head office acts for — each its name,
   统一社会信用代码 and 经办人 accounts, from ``[branches]`` (``regbridge platform enroll --request``, printed
   as JSON);
2. the desk registers them and answers its own ``appId``, its signing and encryption public keys,
   its URL and each county centre's trust anchors (``platformAppId``, ``signingKey``,
   ``encryptionKey``, ``url``, ``centres`` — the shape of the sandbox's ``POST /admin/enrol``);
   the sandbox's desk can be called directly (``--desk URL --desk-token-file F``);
3. :func:`write_platform` checks that answer and writes ``[platform]`` into ``agent.toml``: the
   platform's keys as registered there (never read from a message later), the routing table
   ``[platform.centres.<行政区划代码>]`` and each centre's seal CAs as ``trust/<code>.pem``.

``regbridge doctor`` then checks the keys and a signed call to the platform.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, load_config
from agent.credentials.custody import KeyCustody, custody_for
from agent.credentials.pkcs11 import TokenUnavailable
from installer.enrol import _plain
from sdk.dialects.province import parse_json
from sdk.gm.sm2 import Sm2PrivateKey, Sm2PublicKey, load_pem_public_key
from sdk.support.files import atomic_write

__all__ = [
    "PlatformAnswerInvalid",
    "PlatformKeyUnavailable",
    "change_notify_url",
    "enrol_at_desk",
    "registration_request",
    "write_platform",
]


class PlatformAnswerInvalid(ValueError):
    """The platform desk's answer is not what registration gives (the message names the member)."""


class PlatformKeyUnavailable(ValueError):
    """The bank's SM2 signing key for the platform cannot be made or used where the key store keeps keys."""


def _key_id(app_id: str) -> str:
    return f"platform-{app_id}"


def platform_keys(custody: KeyCustody, app_id: str, *, software: bool = False) -> tuple[Sm2PublicKey, Sm2PrivateKey]:
    """The public half of the bank's SM2 signing key for ``app_id``, and its SM2 encryption key, each made once.

    The signing key is made where the key store keeps keys: with ``key_store = "pkcs11"`` inside the token
    (sensitive, not extractable; SM2 by the vendor codes of ``[centre.pkcs11.mechanisms]``, as a gm centre's
    key is), else — or with ``software`` — as encrypted PKCS#8 in the key store. The encryption key, which
    opens what the platform seals to the bank (SM2 decryption of ``encKey``), is a software key even beside a
    token, as it is for a gm centre's envelope (:meth:`KeyCustody.ensure_encryption_key`): the vendor SM2 codes
    RegBridge speaks are for signing. A key made before is used as it is, wherever it was made.

    Raises:
        PlatformKeyUnavailable: the token cannot make an SM2 key (the message says what it needs).
        KeyError: the key kept before cannot be read, or is not SM2.
    """
    key_id = _key_id(app_id)
    entry = next((e for e in custody.entries() if e.key_id == key_id and e.state == "platform"), None)
    if entry is None and custody.store == "pkcs11" and not software:
        token = custody.token
        assert token is not None
        if "CKM_VENDOR_SM2_KEY_PAIR_GEN" not in token.mechanisms:
            raise PlatformKeyUnavailable(
                "the platform's SM2 signing key is made inside the PKCS#11 token ([centre.pkcs11]), and this token "
                "is not configured for SM2: add its vendor's codes to [centre.pkcs11.mechanisms] in agent.toml "
                "(CKM_VENDOR_SM2_KEY_PAIR_GEN, and CKM_VENDOR_SM2 or CKM_VENDOR_SM2_SM3; docs/install.md; SoftHSM2 "
                "has none), or keep this key as an encrypted software key: --software-key"
                "（本令牌未配置 SM2 厂商机制码；或用 --software-key 将平台签名密钥加密保存在软件密钥库）"
            )
        try:
            custody.generate("sm2-sm3", "platform", key_id=key_id)
        except TokenUnavailable as exc:
            raise PlatformKeyUnavailable(
                f"the PKCS#11 token did not make the platform's SM2 signing key: {exc}; check "
                "[centre.pkcs11.mechanisms] against the token vendor's codes, or use --software-key"
            ) from None
    elif entry is None:
        custody.put_software(Sm2PrivateKey.generate(), "platform", key_id=key_id)
    try:
        signer = custody.sm2_signer(key_id)
    except TokenUnavailable as exc:
        raise PlatformKeyUnavailable(f"the platform's signing key {key_id} cannot be read: {exc}") from None
    public = signer.public if isinstance(signer, Sm2PrivateKey) else signer.public_key()
    assert isinstance(public, Sm2PublicKey)
    return public, custody.ensure_encryption_key()


def _open(config_path: Path, secret: bytes | None) -> tuple[AgentConfig, KeyCustody]:
    from agent.state.secrets import load_secret

    config = load_config(config_path)
    if secret is None:
        secret = load_secret(
            config.resolve(config.secret_file) if config.secret_file else None,
            keyring_user=config.centre.institution_id,
        )
    return config, custody_for(config, secret)


def registration_request(
    config_path: Path,
    app_id: str,
    *,
    notify_url: str | None = None,
    secret: bytes | None = None,
    branches: list[dict[str, Any]] | None = None,
    software_key: bool = False,
) -> dict[str, Any]:
    """The registration form for the platform's desk: ``{appId, signingKey, encryptionKey, notifyUrl?,
    branches?}`` (public keys, PEM; ``branches``: ``[{name, uscc, operators}]``, the ones given, else each of
    ``[branches]`` with its ``default_operator``); the private halves are made here and kept in the key store
    (the signing key inside a PKCS#11 token when ``key_store = "pkcs11"`` unless ``software_key``:
    :func:`platform_keys`).

    Raises:
        ValueError: the config does not load, or ``app_id`` is not 1-64 letters, digits, ``_.-``.
        PlatformKeyUnavailable: the token cannot make an SM2 key.
        agent.state.secrets.SecretUnavailable: no agent secret.
    """
    import re

    if not re.fullmatch(r"[0-9A-Za-z_.\-]{1,64}", app_id):
        raise ValueError(f"appId {app_id!r} is not 1-64 letters, digits, '_', '.', '-'")
    config, custody = _open(config_path, secret)
    signing, decryption = platform_keys(custody, app_id, software=software_key)
    if branches is None:
        branches = [{"name": b.institution_name, "uscc": b.institution_uscc,
                     "operators": [b.default_operator] if b.default_operator else []}
                    for b in config.branches.values()
                    if b.institution_uscc != config.centre.institution_uscc]  # fmt: skip
    form: dict[str, Any] = {
        "appId": app_id,
        "signingKey": signing.to_pem().decode("ascii"),
        "encryptionKey": decryption.public.to_pem().decode("ascii"),
    }
    if notify_url:
        form["notifyUrl"] = notify_url
    if branches:
        form["branches"] = branches
    return form


def _text(answer: dict[str, Any], name: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str) or not value:
        raise PlatformAnswerInvalid(f"the platform's answer has no {name}")
    return value


def write_platform(
    config_path: Path,
    app_id: str,
    answer: dict[str, Any],
    *,
    dialect: str = "province",
    notify: dict[str, Any] | None = None,
    secret: bytes | None = None,
) -> Path:
    """Check the desk's ``answer`` and write ``[platform]`` (and ``trust/<code>.pem``) beside ``config_path``.

    Raises:
        PlatformAnswerInvalid: a member is missing or wrong (not an SM2 key, a district not of 6 digits).
        ValueError: the config does not load, or does not load with the new section.
    """
    import tomlkit

    config, custody = _open(config_path, secret)
    if not any(e.key_id == _key_id(app_id) and e.state == "platform" for e in custody.entries()):
        raise PlatformAnswerInvalid(
            f"no key of this agent is registered as {app_id}: make the registration request first (--request)"
        )
    keys = {}
    for name in ("signingKey", "encryptionKey"):
        try:
            keys[name] = load_pem_public_key(_text(answer, name).encode("ascii")).to_pem().decode("ascii")
        except (ValueError, UnicodeEncodeError) as exc:
            raise PlatformAnswerInvalid(f"the platform's {name} is not an SM2 public key (PEM): {exc}") from None
    centres = answer.get("centres")
    if not isinstance(centres, dict) or not centres:
        raise PlatformAnswerInvalid("the platform's answer names no county centres (centres)")
    trust_dir = config.base / "trust"
    trust_dir.mkdir(parents=True, exist_ok=True)
    table: dict[str, Any] = {}
    for code, anchors in centres.items():
        if not (isinstance(code, str) and len(code) == 6 and code.isdigit()) or not isinstance(anchors, dict):
            raise PlatformAnswerInvalid(f"centres: {code!r} is not a 6-digit 行政区划代码 with its anchors")
        ca = _text(anchors, "ca_pem")
        if "BEGIN CERTIFICATE" not in ca or not isinstance(anchors.get("jwk"), dict):
            raise PlatformAnswerInvalid(
                f"centres.{code}: ca_pem (PEM certificates) and jwk (the centre's key) expected"
            )
        atomic_write(trust_dir / f"{code}.pem", ca.encode("ascii"))
        table[code] = {
            "name": _text(anchors, "name"),
            "centre_key_id": _text(anchors, "key_id"),
            "centre_key": anchors["jwk"],
            "seal_ca_file": f"trust/{code}.pem",
        }
    section: dict[str, Any] = {
        "url": _text(answer, "url"),
        "dialect": dialect,
        "app_id": app_id,
        "platform_app_id": _text(answer, "platformAppId"),
        "platform_signing_key": keys["signingKey"],
        "platform_encryption_key": keys["encryptionKey"],
        "key_id": _key_id(app_id),
        "notify": dict(notify or {}),
        "centres": table,
    }
    text = config_path.read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    doc["platform"] = _plain(section)
    new = tomlkit.dumps(doc)
    tomllib.loads(new)
    atomic_write(config_path, new.encode("utf-8"), mode=config_path.stat().st_mode & 0o777)
    try:
        load_config(config_path)
    except ValueError:
        atomic_write(config_path, text.encode("utf-8"), mode=config_path.stat().st_mode & 0o777)
        raise
    return config_path


def change_notify_url(
    config_path: Path,
    url: str,
    *,
    port: int | None = None,
    listen: str | None = None,
    secret: bytes | None = None,
) -> str | None:
    """Change the notify URL the platform pushes notices to (``regbridge platform notify-url``): ask the platform
    (its ``notify_url`` service, signed by the key registered at its desk), then write ``[platform.notify]``
    ``public_url`` (and ``port``, ``listen`` when given) and an audit record (``platform.notify_url``: the URL
    before and after). Answers the URL the platform had before.

    Raises:
        ValueError: no ``[platform]``, ``url`` is not an absolute http(s) URL, or the config does not load with it.
        KeyError: the platform's signing key or the SM2 encryption key is not in the key store.
        sdk.RegBridgeError: the platform refused the change or could not be reached (nothing written here).
    """
    from urllib.parse import urlsplit

    import tomlkit

    from agent.centre.province import platform_centre
    from agent.state.audit import AuditLog

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"notify URL {url!r}: an absolute http(s) URL expected (the one the platform posts to)")
    config, custody = _open(config_path, secret)
    if config.platform is None:
        raise ValueError(f"{config_path}: no [platform] (register first: regbridge platform enroll)")
    decryption = custody.encryption_key()
    if decryption is None:
        raise KeyError("there is no SM2 encryption key in the key store (regbridge platform enroll --request)")
    text = config_path.read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    notify = doc["platform"].setdefault("notify", tomlkit.table())
    notify["public_url"] = url
    if port is not None:
        notify["port"] = port
    if listen is not None:
        notify["listen"] = listen
    mode = config_path.stat().st_mode & 0o777
    # the new config is checked before the platform is asked: a port or address it refuses must not leave the
    # platform posting to a URL this agent's config does not listen at
    trial = config_path.with_name(f".{config_path.name}.notify-url")
    try:
        atomic_write(trial, tomlkit.dumps(doc).encode("utf-8"), mode=mode)
        load_config(trial)
    finally:
        trial.unlink(missing_ok=True)
    centre = platform_centre(config, signer=custody.sm2_signer(config.platform.key_id), decryption_key=decryption)
    try:
        previous = centre.change_notify_url(url)
    finally:
        centre.close()
    atomic_write(config_path, tomlkit.dumps(doc).encode("utf-8"), mode=mode)
    AuditLog(config.resolve(config.data_dir) / "audit.log").append(
        "platform.notify_url", config.platform.app_id, "changed", previous=previous or "", url=url
    )
    return previous


def enrol_at_desk(
    config_path: Path,
    app_id: str,
    *,
    desk_url: str,
    desk_token: str,
    notify: dict[str, Any] | None = None,
    dialect: str = "province",
    secret: bytes | None = None,
    branches: list[dict[str, Any]] | None = None,
    software_key: bool = False,
) -> Path:
    """Register at a platform desk that takes the form over HTTP (the sandbox's ``POST {desk_url}/admin/enrol``,
    bearer ``desk_token``), with the branches it acts for (:func:`registration_request`), and write ``[platform]``
    from its answer.

    Raises:
        PlatformAnswerInvalid: the desk refused, answered something else, or could not be reached; or its URL is
            plain ``http`` to a host other than this machine (its answer is the platform's keys and every county
            centre's trust anchors: over plain HTTP anyone on the path could plant their own).
    """
    import ipaddress
    from urllib.parse import urlsplit

    import httpx

    parts = urlsplit(desk_url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise PlatformAnswerInvalid(
            f"the desk URL {desk_url} is not https: its answer carries the platform's keys and the centres' trust"
            " anchors (plain http only to this machine; else use --request and --answer through a trusted channel)"
        )
    notify_url = (notify or {}).get("public_url")
    form = registration_request(
        config_path, app_id, notify_url=notify_url, secret=secret, branches=branches, software_key=software_key
    )
    try:
        response = httpx.post(
            f"{desk_url.rstrip('/')}/admin/enrol", json=form, headers={"Authorization": f"Bearer {desk_token}"},
            timeout=60.0,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        raise PlatformAnswerInvalid(f"the platform desk {desk_url} could not be reached: {exc}") from None
    try:
        answer = parse_json(response.content)
    except ValueError:
        answer = None
    if response.status_code != 200 or not isinstance(answer, dict):
        detail = answer.get("error") if isinstance(answer, dict) else response.text[:200]
        raise PlatformAnswerInvalid(
            f"the platform desk refused the registration (HTTP {response.status_code}): {detail}"
        )
    return write_platform(config_path, app_id, answer, dialect=dialect, notify=notify, secret=secret)
