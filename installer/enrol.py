"""Enrolment: a centre's bundle → a key pair made here, registered with the one-time token, and
the agent's config (centre URL, institution, key id, trust anchors) written beside it.

Checks before anything is sent: the bundle's signature (with the centre key it carries and, when
given, against the fingerprint the centre published out of band, or the centre key this folder
already trusts), its expiry, and this machine's clock against the centre's. The private key never
leaves this machine and is kept only encrypted (:mod:`agent.credentials`), in the OS keyring where one
works, else in a file only its owner can read. Enrolling again is safe: a folder already enrolled
with this institution is left as it is while the centre accepts its key, and an enrolment whose
answer was lost is completed with the same key (the centre answers the same enrolment again). When
the centre refuses the key in use — its institution certificate revoked or expired, the key revoked
or unknown — or the key is gone, a new bundle enrols a new key into the same folder: only
``centre.key_id`` changes in the config (a running agent follows it), the state is kept and the
refused key is erased. A rotation cannot do this: it is signed by the refused key.

When the centre issues institution certificates (its bundle names their CA, ``bank_ca_pem``), the
enrolment sends a PKCS#10 request signed by the new key (wherever it is kept, a PKCS#11 token
included) and keeps the X.509 certificate the centre answers beside the key, once checked against
that CA (:meth:`agent.credentials.custody.KeyCustody.accept_certificate`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx

import sdk
from agent.centre.client import centre_clock_skew
from agent.config import Pkcs11Config
from agent.credentials.custody import KeyCustody
from agent.credentials.pkcs11 import Pkcs11Token, read_pin
from agent.state.secrets import SecretUnavailable, keyring_backend, load_secret, new_secret, store_secret
from sdk.certificates import verify_detached
from sdk.csr import read_certificate
from sdk.signing import jwk_fingerprint, jwk_from_public_key, public_key_from_jwk
from sdk.suites import suite_of
from sdk.support.files import atomic_write

__all__ = ["MAX_CLOCK_SKEW", "BundleError", "Enrolment", "enrol", "enrol_direct", "render_config", "verify_bundle"]

MAX_CLOCK_SKEW = 120.0  # seconds; the centre refuses signatures more than 300 s off


class BundleError(ValueError):
    """The enrolment bundle cannot be trusted or used."""


def _fingerprint(jwk: dict[str, Any]) -> str:
    return jwk_fingerprint(sdk.models.PublicJwk.model_validate(jwk))


def verify_bundle(doc: dict[str, Any], *, expected_fingerprint: str | None = None) -> dict[str, Any]:
    """The bundle, once its signature, origin and expiry are checked."""
    try:
        bundle, signature = doc["bundle"], doc["signature"]
        trust = bundle["trust"]
        public_key_from_jwk(trust["centre_key"])
        suite = suite_of(bundle.get("suite"))  # inside what the signature covers
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"not an enrolment bundle: {exc}") from None
    if signature.get("keyid") != trust["centre_key_id"]:
        raise BundleError("the bundle is signed by another key than the centre key it names")
    if expected_fingerprint and _fingerprint(trust["centre_key"]) != expected_fingerprint:
        raise BundleError(
            "the bundle is signed by someone else than the centre: its key's fingerprint is not the one the centre"
            " published"
        )
    if not verify_detached(bundle, signature, trust["centre_key"], sm2_user_id=suite.sm2_user_id):
        raise BundleError("the bundle's signature does not verify: it was altered or signed by someone else")
    if suite.envelope and not isinstance(trust.get("centre_encryption_key"), dict):
        raise BundleError("the bundle asks for the personal-field envelope but names no centre encryption key")
    if datetime.fromisoformat(bundle["expires_at"]) < datetime.now(UTC):
        raise BundleError(f"the bundle expired at {bundle['expires_at']}; ask the centre for a new one")
    return dict(bundle)


def render_config(sections: dict[str, Any]) -> str:
    """The agent's config as TOML (tomlkit), with a header naming where it is documented."""
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment("RegBridge agent configuration (written by `regbridge enroll`; docs/configuration.md)"))
    doc.add(tomlkit.comment("Every setting can be overridden from the environment: REGBRIDGE_<SECTION>__<KEY>."))
    for key, value in sections.items():
        if value is not None:
            doc[key] = _plain(value)
    return tomlkit.dumps(doc)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, int | float | bool | str):
        return value
    return str(value)  # Decimal and the like: exact, as text


@dataclass(frozen=True)
class Enrolment:
    """What enrolment did."""

    path: Path
    key_id: str
    key_store: Literal["file", "keyring", "pkcs11"]
    key_where: str
    secret_where: str | None
    already: bool
    #: the centre's certificate of the key (serial hex; ISO 8601 end), when one was asked for
    certificate_serial: str | None = None
    certificate_not_after: str | None = None
    #: (old key id, why) when this enrolment replaced a key the centre refuses (or that is gone)
    replaced: tuple[str, str] | None = None


#: what is each host's own in a config another instance joins (its key, its data folder)
_PER_HOST = ("key_id", "key_store", "pkcs11", "key_dir", "seal_ca_file", "esign_ca_file")


def _without_password(url: str) -> str:
    """``url`` without a password (``agent:pw@`` or libpq's ``?password=``): a joining host's config never gets a
    copy of one in plaintext; its user gives it in ``~/.pgpass`` (docs/state.md)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and not any(k.lower() == "password" for k, _ in pairs):
        return url  # as written (urlunsplit would fold sqlite:////path's empty authority)
    if any(k.lower() == "password" for k, _ in pairs):
        parts = parts._replace(query=urlencode([(k, v) for k, v in pairs if k.lower() != "password"]))
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0].split(':', 1)[0]}@{host}")
    return urlunsplit(parts)


def _joined(path: Path, institution: str) -> dict[str, Any]:
    """The settings a new instance takes from the config of an instance of the shared state it joins.

    Raises:
        BundleError: the config does not load, is for another institution, or has no shared state.
    """
    try:
        current = tomllib.loads(path.read_text(encoding="utf-8"))
        centre = dict(current["centre"])
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise BundleError(f"--join {path}: not an agent config ({exc})") from None
    if centre.get("institution_id") != institution:
        raise BundleError(
            f"--join {path}: that agent serves institution {centre.get('institution_id')}, the bundle {institution}"
        )
    if not (current.get("state") or {}).get("url"):
        raise BundleError(
            f"--join {path}: that agent has no shared state (state.url); instances share work only on one"
            " PostgreSQL state (docs/state.md)"
        )
    base = path.resolve().parent

    def absolute(value: str) -> str:
        p = Path(value)
        return str(p if p.is_absolute() else base / p)

    settings = {k: v for k, v in current.items() if k not in ("centre", "inbox", "data_dir", "secret_file")}
    state = dict(settings["state"])
    if not state.get("blobs_dir"):
        raise BundleError(
            f"--join {path}: that agent keeps its encrypted copies in its own data folder; set state.blobs_dir to a"
            " folder every host mounts first (docs/state.md)"
        )
    state["blobs_dir"] = absolute(state["blobs_dir"])
    state["url"] = _without_password(str(state["url"]))  # never copied to another file: this host's ~/.pgpass
    settings["state"] = state
    documents = dict(settings.get("documents") or {})
    if documents.get("kind", "filesystem") == "filesystem":  # one document store for all instances
        documents["root"] = absolute(documents.get("root", "documents"))
        settings["documents"] = documents
    inbox = [{**i, "path": absolute(i["path"])} for i in current.get("inbox", [])]
    return {
        "settings": settings,
        "inbox": inbox,
        "centre": {k: v for k, v in centre.items() if k not in _PER_HOST},
    }


def _existing(path: Path, bundle: dict[str, Any], *, new_centre_key_confirmed: bool) -> dict[str, Any] | None:
    """The config's [centre] when this folder is already enrolled with the bundle's institution."""
    if not path.exists():
        return None
    try:
        current = tomllib.loads(path.read_text(encoding="utf-8"))
        centre = current["centre"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise BundleError(f"{path} exists but is not an agent config ({exc}); move it away first") from None
    if centre.get("institution_id") != bundle["institution_id"]:
        raise BundleError(
            f"{path.parent} is already enrolled for institution {centre.get('institution_id')}; "
            "enrol this bundle in another folder (--dir)"
        )
    if _fingerprint(centre["centre_key"]) != _fingerprint(bundle["trust"]["centre_key"]):
        if new_centre_key_confirmed:
            return None  # the centre changed its key and the bank confirmed the new one: enrol afresh
        raise BundleError(
            "the bundle is signed by another centre key than the one this agent already trusts; "
            "if the centre changed its key, confirm its new fingerprint with the centre and pass it with --fingerprint"
        )
    return dict(centre)


#: the centre's refusals of a key that only a new enrolment gets past (a rotation is signed by that key)
REFUSED_KEY_CODES = frozenset({"certificate_revoked", "certificate_expired", "key_revoked", "unknown_key"})


def _refusal_of_current_key(path: Path, secret: bytes | None) -> tuple[str, bytes] | None:
    """Why the folder's key in use can no longer sign (the centre's refusal code, or ``key_missing``) and the
    folder's agent secret (the new key is kept under it: the state is encrypted with it); None when the centre
    accepts the key or it cannot be told here (the centre unreachable, another refusal, the agent secret or
    config unreadable): then the folder is left as it is, as enrolling again always did.
    """
    from agent.centre.client import centre_client
    from agent.config import load_config
    from agent.credentials.custody import custody_for

    try:
        config = load_config(path)
        secret = secret or load_secret(
            config.resolve(config.secret_file) if config.secret_file else None,
            keyring_user=config.centre.institution_id,
        )
    except (ValueError, SecretUnavailable):
        return None  # cannot tell here: left as it is (doctor names what is wrong)
    custody = custody_for(config, secret)
    try:
        custody.entry(config.centre.key_id)
    except KeyError:
        return "key_missing", secret
    try:
        signer = custody.signer(config.centre.key_id)
    except KeyError as exc:
        # the key file or keyring entry is gone; another failure (the agent secret) is left for doctor to name
        return ("key_missing", secret) if "is missing" in str(exc) else None
    try:
        with centre_client(config, signer) as client:
            client.institution.get()
    except sdk.AuthenticationFailed as exc:
        if exc.code in REFUSED_KEY_CODES:
            return str(exc.code), secret
    except (sdk.RegBridgeError, httpx.HTTPError):
        pass  # the centre cannot say now (down, clock): the folder stays as it is, as before
    return None


def _replace_key(
    path: Path, custody: KeyCustody, fingerprint: str, key_id: str, replacing: tuple[str, str]
) -> Enrolment:
    """Switch the enrolled folder to the newly enrolled key: the manifest first, then ``centre.key_id`` in the
    config (the rest of the file kept; a running agent follows it within a second), then erase the refused key."""
    from agent.credentials.rotation import set_config_key_id

    old_id, _ = replacing
    entries = custody.entries()
    refused = []
    for e in entries:
        if e.key_id == old_id or (e.state == "current" and e.fingerprint != fingerprint):
            e.state = "retired"
            refused.append(e)
    custody.save(entries)
    set_config_key_id(path, key_id)
    for e in refused:
        custody.erase(e)
    entry = custody.entry(key_id)
    serial = not_after = None
    if entry.certificate:
        info = read_certificate(entry.certificate)
        serial, not_after = info.serial_hex, info.not_after.isoformat()
    return Enrolment(path, key_id, entry.store, custody.where(entry), None, already=False,
                     certificate_serial=serial, certificate_not_after=not_after, replaced=replacing)  # fmt: skip


def enrol(
    doc: dict[str, Any],
    directory: Path,
    *,
    secret: bytes | None = None,
    inboxes: list[dict[str, Any]],
    settings: dict[str, Any] | None = None,
    algorithm: sdk.signing.Algorithm | None = None,
    label: str = "agent",
    key_store: Literal["auto", "file", "keyring", "pkcs11"] = "file",
    pkcs11: dict[str, Any] | None = None,
    expected_fingerprint: str | None = None,
    check_clock: bool = True,
    key_dir: Path = Path("keys"),
    secret_file: Path = Path("agent.secret"),
    certificate: bool | None = None,
    join: Path | None = None,
) -> Enrolment:
    """Enrol with the centre and write ``directory/agent.toml``.

    ``join``: the ``agent.toml`` of an instance of a shared state (``state.url``, docs/state.md) this one
    joins: this host makes and registers its own key for the same institution (a bundle of its own, the
    centre keeps several active keys per institution; keys are never copied between hosts) and takes the
    rest of its settings (state, inboxes, documents, fees…) from that config, relative paths made absolute.
    The agent secret must already be here (the one secret of the shared state, delivered to each host):
    a new one would not open the shared state, so none is made (:class:`BundleError`).

    ``secret`` is the agent secret; without one, the one already kept for this folder is used, or
    a new one is made and kept in the OS keyring (keyring custody) or ``agent.secret`` (mode 0600).
    The key's ``algorithm`` is the bundle's crypto suite's (``sm2-sm3`` in gm, ``ed25519`` in intl)
    unless given; one the suite does not accept is refused (:class:`BundleError`). ``certificate``:
    ask the centre for an X.509 certificate of the key (default: when the bundle names the centre's
    institution CA); a certificate that does not check is a :class:`BundleError`.
    """
    bundle = verify_bundle(doc, expected_fingerprint=expected_fingerprint)
    joined: dict[str, Any] | None = None
    if join is not None:
        joined = _joined(join, bundle["institution_id"])
        settings = {**joined["settings"], **(settings or {})}
        inboxes = joined["inbox"]
    suite = suite_of(bundle.get("suite"))
    algorithm = algorithm or suite.default_algorithm  # type: ignore[assignment]
    if algorithm not in suite.algorithms:
        raise BundleError(
            f"the centre speaks the {suite.name} crypto suite: its keys are {', '.join(suite.algorithms)},"
            f" not {algorithm}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "agent.toml"
    institution = bundle["institution_id"]
    existing = _existing(path, bundle, new_centre_key_confirmed=expected_fingerprint is not None)
    replacing: tuple[str, str] | None = None
    if existing is not None:
        where = existing.get("key_store", "file")
        refused = _refusal_of_current_key(path, secret)
        if refused is None:
            return Enrolment(path, existing["key_id"], where, where, None, already=True)
        # the centre refuses the key in use (its certificate revoked or expired, the key revoked) or the key is
        # gone: this bundle enrols a new key into the same folder, keeping its settings, state and secret
        replacing, secret = (str(existing["key_id"]), refused[0]), refused[1]
        key_store, pkcs11 = where, existing.get("pkcs11")
        key_dir = Path(existing.get("key_dir", key_dir))

    issued = datetime.fromisoformat(bundle["issued_at"])
    if check_clock:
        ahead = (issued - datetime.now(UTC)).total_seconds()
        if ahead > MAX_CLOCK_SKEW:
            raise BundleError(
                f"the bundle was issued {ahead:.0f} s in this machine's future: this clock is far off; fix it (NTP)"
            )
        try:
            skew = centre_clock_skew(bundle["api_base_url"])
        except (httpx.HTTPError, ValueError) as exc:
            raise BundleError(f"cannot reach the centre at {bundle['api_base_url']}: {exc}") from None
        if abs(skew) > MAX_CLOCK_SKEW:
            side = "behind" if skew > 0 else "ahead of"
            raise BundleError(
                f"this machine's clock is {abs(skew):.0f} s {side} the centre's; signed requests would be refused."
                " Fix the clock (NTP) and enrol again"
            )

    store: Literal["file", "keyring", "pkcs11"]
    if key_store == "pkcs11" and not pkcs11:
        raise BundleError("--key-store pkcs11 needs the token: module, token label or slot, PIN file")
    if key_store == "auto":
        store = "keyring" if keyring_backend() else "file"
    elif key_store == "keyring" and not keyring_backend():
        raise BundleError("no usable OS keyring here; use --key-store file (an encrypted key file)")
    else:
        store = key_store
    settings = dict(settings or {})
    secret_where = None
    if secret is None:
        secret_path = secret_file if secret_file.is_absolute() else directory / secret_file
        try:
            secret = load_secret(secret_path, keyring_user=institution)
        except SecretUnavailable:
            if joined is not None:
                raise BundleError(
                    "the agent secret of the shared state is not on this host: deliver the one secret every instance"
                    f" uses first (the systemd credential regbridge-secret, or {secret_path}, mode 0600); a new"
                    " secret would not open the shared state"
                ) from None
            secret = new_secret()
            if store == "keyring":
                secret_where = store_secret(secret, keyring_user=institution)
            else:
                secret_where = store_secret(secret, secret_file=secret_path)
        if store == "file" and secret_path.exists():
            settings.setdefault("secret_file", str(secret_file))

    keys = key_dir if key_dir.is_absolute() else directory / key_dir
    token = None
    if store == "pkcs11":
        assert pkcs11 is not None
        settings_p11 = Pkcs11Config.model_validate(pkcs11)
        pin_file = settings_p11.pin_file
        pin = read_pin(pin_file if pin_file is None or pin_file.is_absolute() else directory / pin_file)
        token = Pkcs11Token(settings_p11.module, pin, settings_p11.token_label, settings_p11.slot,
                            dict(settings_p11.mechanisms))  # fmt: skip
    custody = KeyCustody(keys, store, institution, secret, suite=suite, token=token)
    pending = next((e for e in custody.entries() if e.state == "pending" and e.key_id is None), None)
    if pending is None:  # else an enrolment whose answer was lost: the same key again
        pending = custody.generate(algorithm, "pending")
    public = custody.public_key(pending)
    bank_ca = bundle["trust"].get("bank_ca_pem")
    if certificate and not bank_ca:
        raise BundleError("this centre issues no institution certificates (its bundle names no bank_ca_pem)")
    request = None
    if bank_ca and certificate is not False:
        atomic_write(custody.bank_ca, bank_ca.encode(), mode=0o644)
        request = custody.certificate_request(
            pending,
            {"country_name": "CN", "organization_name": bundle["institution_name"],
             "organization_identifier": bundle["institution_uscc"], "common_name": label},
        )  # fmt: skip
    # a centre asking for the personal-field envelope seals its answers and webhooks to the bank's own
    # SM2 encryption key: made here, kept in the custody encrypted, its public half registered
    encryption = custody.ensure_encryption_key() if suite.envelope else None
    try:
        with sdk.Client(bundle["api_base_url"]) as anon:
            result = anon.credentials.enroll(
                bundle["token"], jwk_from_public_key(public), label=label, certificate_request=request,
                encryption_key=jwk_from_public_key(encryption.public) if encryption else None,
            )  # fmt: skip
    except sdk.AuthenticationFailed:
        raise BundleError(
            "the centre refused the bundle's one-time token: it was already used (by another machine) or has"
            " expired; ask the centre for a new bundle"
        ) from None
    if request is not None:
        if result.certificate is None:
            raise BundleError("the centre answered the enrolment without the certificate it was asked for")
        try:
            custody.accept_certificate(pending, result.certificate)
        except ValueError as exc:
            raise BundleError(f"the centre's certificate for the new key does not check: {exc}") from None
    entries = custody.entries()
    for e in entries:
        if e.fingerprint == pending.fingerprint:
            e.state, e.key_id = "current", result.key_id
    custody.save(entries)
    if replacing is not None:
        return _replace_key(path, custody, pending.fingerprint, result.key_id, replacing)
    atomic_write(keys / "seal-ca.pem", bundle["trust"]["seal_ca_pem"].encode(), mode=0o644)
    esign_cas = [str(pem) for pem in bundle["trust"].get("esign_ca_pems") or []]
    if esign_cas:  # the e-signature CAs whose applicant signatures the centre accepts (seed 003 细则 (四))
        atomic_write(keys / "esign-ca.pem", "".join(esign_cas).encode(), mode=0o644)
    config = {
        **settings,
        "centre": {
            **(joined["centre"] if joined is not None else {}),
            "url": bundle["api_base_url"],
            "institution_id": institution,
            "institution_name": bundle["institution_name"],
            "institution_uscc": bundle["institution_uscc"],
            "key_id": result.key_id,
            "key_store": store,
            **({"pkcs11": pkcs11} if store == "pkcs11" else {}),
            "key_dir": str(key_dir),
            "seal_ca_file": str(key_dir / "seal-ca.pem"),
            **({"esign_ca_file": str(key_dir / "esign-ca.pem")} if esign_cas else {}),
            "centre_key_id": bundle["trust"]["centre_key_id"],
            "centre_key": bundle["trust"]["centre_key"],
            "centre_name": bundle["centre"]["name"],
            **({"suite": "gm", "sm2_user_id": suite.sm2_user_id.decode()} if suite.name == "gm" else {}),
            **(
                {"envelope": suite.envelope, "centre_encryption_key": bundle["trust"]["centre_encryption_key"]}
                if suite.envelope
                else {}
            ),
        },
        "inbox": inboxes,
    }
    atomic_write(path, render_config(config).encode(), mode=0o640)
    for folder in (Path(i["path"]) for i in inboxes):  # the inboxes exist before the first run
        (folder if folder.is_absolute() else directory / folder).mkdir(parents=True, exist_ok=True, mode=0o750)
    data = Path(settings.get("data_dir", "var"))
    (data if data.is_absolute() else directory / data).mkdir(parents=True, exist_ok=True, mode=0o700)
    entry = custody.entry(result.key_id)
    serial = not_after = None
    if entry.certificate:
        info = read_certificate(entry.certificate)
        serial, not_after = info.serial_hex, info.not_after.isoformat()
    return Enrolment(path, result.key_id, store, custody.where(entry), secret_where, already=False,
                     certificate_serial=serial, certificate_not_after=not_after)  # fmt: skip


def enrol_direct(
    doc: dict[str, Any],
    config_path: Path,
    prefix: str,
    *,
    secret: bytes | None = None,
    expected_fingerprint: str | None = None,
) -> str:
    """Enrol the agent of ``config_path`` with another centre it reaches directly, for the units whose 行政区划代码
    starts with ``prefix`` (``regbridge enroll BUNDLE --district PREFIX -c agent.toml``): a key made in the agent's
    key store (state ``direct``; the algorithm the bundle's suite signs with), registered with the bundle's one-time
    token; the centre's seal CA kept as ``keys/seal-ca-<prefix>.pem``; ``[centres."<prefix>"]`` written into the
    config (its account, the key id, its anchors). Answers the key id. The bank (name, 统一社会信用代码) must be the
    one ``[centre]`` names.

    Raises:
        BundleError: the bundle does not check, names another bank, the prefix is not 2-6 digits, or the centre
            refused the token.
        ValueError: the config does not load (before or with the new table: then it is left as it was).
    """
    import tomlkit

    from agent.config import load_config
    from agent.credentials.custody import custody_for

    if not (2 <= len(prefix) <= 6 and prefix.isdigit()):
        raise BundleError(f"--district {prefix!r}: the start of a 行政区划代码 (2-6 digits) expected")
    bundle = verify_bundle(doc, expected_fingerprint=expected_fingerprint)
    config = load_config(config_path)
    if bundle["institution_uscc"] != config.centre.institution_uscc:
        raise BundleError(f"the bundle is for {bundle['institution_uscc'][:6]}…, not this agent's bank "
                          f"({config.centre.institution_uscc[:6]}…)")  # fmt: skip
    if secret is None:
        secret = load_secret(config.resolve(config.secret_file) if config.secret_file else None,
                             keyring_user=config.centre.institution_id)  # fmt: skip
    suite = suite_of(bundle.get("suite"))
    custody = custody_for(config, secret)
    key = sdk.signing.generate_private_key(suite.default_algorithm)  # type: ignore[arg-type]
    entry = custody.put_software(suite.adopt(key), "direct")
    encryption = custody.ensure_encryption_key() if suite.envelope else None
    try:
        with sdk.Client(bundle["api_base_url"]) as anon:
            result = anon.credentials.enroll(
                bundle["token"], jwk_from_public_key(custody.public_key(entry)), label=f"agent:{prefix}",
                encryption_key=jwk_from_public_key(encryption.public) if encryption else None,
            )  # fmt: skip
    except sdk.AuthenticationFailed:
        raise BundleError("the centre refused the bundle's one-time token (used or expired): ask for a new bundle"
                          ) from None  # fmt: skip
    entries = custody.entries()
    for e in entries:
        if e.fingerprint == entry.fingerprint:
            e.key_id = result.key_id
    custody.save(entries)
    seal_ca = Path(config.centre.key_dir) / f"seal-ca-{prefix}.pem"
    atomic_write(config.resolve(seal_ca), bundle["trust"]["seal_ca_pem"].encode(), mode=0o644)
    table = {
        "url": bundle["api_base_url"],
        "institution_id": bundle["institution_id"],
        "key_id": result.key_id,
        "seal_ca_file": str(seal_ca),
        "centre_key_id": bundle["trust"]["centre_key_id"],
        "centre_key": bundle["trust"]["centre_key"],
        "centre_name": bundle["centre"]["name"],
        **({"suite": "gm", "sm2_user_id": suite.sm2_user_id.decode()} if suite.name == "gm" else {}),
        **({"envelope": suite.envelope, "centre_encryption_key": bundle["trust"]["centre_encryption_key"]}
           if suite.envelope else {}),
    }  # fmt: skip
    text = config_path.read_text(encoding="utf-8")
    document = tomlkit.parse(text)
    centres = document.setdefault("centres", tomlkit.table())
    centres[prefix] = _plain(table)
    mode = config_path.stat().st_mode & 0o777
    atomic_write(config_path, tomlkit.dumps(document).encode("utf-8"), mode=mode)
    try:
        load_config(config_path)
    except ValueError:
        atomic_write(config_path, text.encode("utf-8"), mode=mode)
        raise
    return str(result.key_id)
