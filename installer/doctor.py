"""``regbridge doctor``: is this branch's agent ready to run? Each finding with a fix.

Checks, in order (a check that cannot run because an earlier one failed says so):
config valid · agent secret available · key present and usable (sign and verify) · the centre
reachable (TLS verified) and its clock close to ours · our key active at the centre and the
channel open · folders present with tight permissions · free disk · document store writable ·
trust anchors not near expiry · the state store intact · the institution certificate (机构证书): its
validity (a warning 30 days ahead) and the centre's CRL · with ``[platform]`` (a provincial 总对总
platform): the agent's SM2 keys for it, each county centre's trust anchors, a signed call answered
and opened (the platform's key from its registration), and where its notices are received.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sqlite3
import ssl
import stat
import tomllib
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature

import sdk
from agent.centre.client import centre_client, centre_clock_skew, centre_transport
from agent.config import AgentConfig, load_config
from agent.credentials.custody import KeyCustody, custody_for
from agent.credentials.pkcs11 import Pkcs11Signer, TokenUnavailable
from agent.state.secrets import SecretUnavailable, load_secret
from installer.enrol import MAX_CLOCK_SKEW
from sdk.gm.sm2 import Sm2PublicKey
from sdk.signing import jwk_fingerprint, jwk_from_public_key

__all__ = ["Finding", "diagnose", "diagnose_platform"]

Status = Literal["ok", "warn", "fail"]
EXPIRY_WARNING_DAYS = 30


@dataclass
class Finding:
    check: str
    status: Status
    detail: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _loopback(host: str | None) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class _Doctor:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.findings: list[Finding] = []
        self._certificate: str | None = None  # the key in use's institution certificate (PEM), if certified
        self._bank_ca: Path | None = None

    def add(self, check: str, status: Status, detail: str, hint: str = "") -> None:
        self.findings.append(Finding(check, status, detail, hint))

    # --- the checks ------------------------------------------------------------------------

    def config(self) -> AgentConfig | None:
        try:
            config = load_config(self.config_path)
        except ValueError as exc:
            self.add("config", "fail", str(exc), "fix the setting named (docs/configuration.md lists them)")
            return None
        if _mode(self.config_path) & stat.S_IWOTH:
            self.add("config", "fail", f"{self.config_path} is writable by anyone", f"chmod o-w {self.config_path}")
            return config
        raw = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        inline = [k for k in ("access_key", "secret_key") if raw.get("documents", {}).get(k)]
        if inline:
            self.add(
                "config",
                "warn",
                f"documents.{', documents.'.join(inline)} written in the config file",
                "move them to the environment (REGBRIDGE_DOCUMENTS__SECRET_KEY) or a systemd credential",
            )
            return config
        self.add("config", "ok", f"{self.config_path} valid ({len(config.inbox)} inbox(es))")
        return config

    def secret(self, config: AgentConfig) -> bytes | None:
        try:
            secret = load_secret(
                config.resolve(config.secret_file) if config.secret_file else None,
                keyring_user=config.centre.institution_id,
            )
        except SecretUnavailable as exc:
            self.add("secret", "fail", str(exc), "restore the agent secret the key was enrolled with")
            return None
        self.add("secret", "ok", "agent secret available")
        return secret

    def key(self, config: AgentConfig, secret: bytes) -> sdk.Signer | None:
        custody = custody_for(config, secret)
        try:
            entry = custody.entry(config.centre.key_id)
            signer = custody.signer(config.centre.key_id)
        except KeyError as exc:
            self.add("key", "fail", str(exc).strip("'\""), "enrol again (`regbridge enroll BUNDLE`)")
            return None
        probe = b"regbridge doctor " + os.urandom(16)
        try:
            signature = signer.sign(probe)
            public = signer.public_key()
            if signer.algorithm in ("ed25519", "sm2-sm3"):  # SM2: DER over SM3(Z_A ‖ data), the suite's user id
                public.verify(signature, probe)  # type: ignore[call-arg]
            else:
                from cryptography.hazmat.primitives import hashes
                from cryptography.hazmat.primitives.asymmetric import ec
                from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

                r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                public.verify(encode_dss_signature(r, s), probe, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
        except Exception as exc:
            self.add(
                "key", "fail", f"the key does not sign and verify: {exc}",
                "enrol a new bundle into this folder: regbridge enroll BUNDLE --dir DIR (a new key; the state is kept)",
            )  # fmt: skip
            return None
        self._certificate = entry.certificate
        self._bank_ca = custody.bank_ca
        if entry.store == "file":
            path = custody.key_dir / entry.location
            if _mode(path) & 0o077:
                self.add("key", "fail", f"{path} is readable by others", f"chmod 600 {path}")
                return signer
        where = custody.where(entry)
        if entry.age_days > config.centre.key_max_age_days:
            self.add(
                "key",
                "warn",
                f"{signer.key_id} ({entry.algorithm}) is {entry.age_days:.0f} days old; {where}",
                "rotate it: regbridge keys rotate",
            )
        else:
            self.add("key", "ok", f"{signer.key_id} ({entry.algorithm}) signs and verifies; {where}")
        return signer

    def centre(self, config: AgentConfig) -> bool:
        url = config.centre.url
        parts = urlsplit(url)
        if parts.scheme == "http" and not _loopback(parts.hostname):
            self.add("tls", "fail", f"{url} is plain HTTP to another machine", "use the centre's https:// URL")
        elif parts.scheme == "http":
            self.add("tls", "ok", "plain HTTP on loopback (a local sandbox centre)")
        try:
            skew = centre_clock_skew(url, transport=centre_transport(config), timeout=config.centre.timeout)
        except httpx.ConnectError as exc:
            hint = "check the certificate chain (centre.ca_bundle)" if "CERTIFICATE" in str(exc).upper() else ""
            self.add("connectivity", "fail", f"cannot connect to {url}: {exc}", hint or "check the network/proxy")
            return False
        except (httpx.HTTPError, ValueError) as exc:
            self.add("connectivity", "fail", f"{url}: {exc}", "check centre.url and the network")
            return False
        self.add("connectivity", "ok", f"{url} answers")
        if parts.scheme == "https":
            self.tls(config, parts.hostname or "", parts.port or 443)
        if abs(skew) > MAX_CLOCK_SKEW:
            self.add(
                "clock", "fail", f"{round(skew):+d} s against the centre's clock", "fix this machine's clock (NTP)"
            )
        elif abs(skew) > 30:
            self.add(
                "clock", "warn", f"{round(skew):+d} s against the centre's clock", "check NTP; the centre allows 300 s"
            )
        else:
            self.add("clock", "ok", f"{round(skew):+d} s against the centre's clock")
        return abs(skew) <= MAX_CLOCK_SKEW

    def tls(self, config: AgentConfig, host: str, port: int) -> None:
        if config.centre.proxy:
            self.add("tls", "ok", "verified through the proxy (certificate dates not inspected)")
            return
        ca = str(config.resolve(config.centre.ca_bundle)) if config.centre.ca_bundle else None
        context = ssl.create_default_context(cafile=ca)
        try:
            with (
                socket.create_connection((host, port), timeout=config.centre.timeout) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError) as exc:
            self.add("tls", "fail", f"{host}:{port}: {exc}", "check the centre's certificate chain (centre.ca_bundle)")
            return
        if der is None:
            self.add("tls", "fail", f"{host}:{port} sent no certificate")
            return
        left = (x509.load_der_x509_certificate(der).not_valid_after_utc - datetime.now(UTC)).days
        status: Status = "warn" if left < EXPIRY_WARNING_DAYS else "ok"
        self.add(
            "tls", status, f"{host} certificate verified, {left} days left", "tell the centre" if left < 30 else ""
        )

    def credential(self, config: AgentConfig, signer: sdk.Signer) -> None:
        try:
            with centre_client(config, signer) as client:
                records = client.credentials.list()
                profile = client.institution.get()
                operators = client.institution.operators()
        except sdk.RegBridgeError as exc:
            from agent.messages import refused_key_advice

            advice = refused_key_advice(str(exc), config.source).removeprefix(" — ")
            self.add("credential", "fail", f"the centre refuses our key: {exc}", advice or "ask the centre")
            return
        mine = next((r for r in records if r.key_id == signer.key_id), None)
        if mine is None or mine.status != "active":
            self.add("credential", "fail", f"key {signer.key_id} is not active at the centre", "enrol again")
        elif mine.revoke_at is not None:
            self.add(
                "credential",
                "warn",
                f"key {signer.key_id} is being retired by the centre at {mine.revoke_at}",
                "finish the rotation: regbridge keys rotate",
            )
        else:
            self.add("credential", "ok", f"key {signer.key_id} active at the centre")
        if profile.channel.status != "open":
            self.add(
                "channel", "fail", f"the centre suspended our channel: {profile.channel.reason}", "call the centre"
            )
        else:
            self.add("channel", "ok", f"channel open for {profile.name}")
        self.filing(profile)
        self.operators(config, operators)

    def certificate(self, config: AgentConfig, reachable: bool) -> None:
        """The key in use's institution certificate (机构证书): its validity (a warning 30 days before it ends: a
        rotation renews it; after, only a new enrolment does) and whether the centre's CRL lists it; a CRL that
        cannot be fetched, is not the centre's CA's, or is past its nextUpdate is a warning."""
        from sdk.csr import check_crl, read_certificate

        if self._certificate is None:
            return
        fix_refused = f"ask the centre for a new enrolment bundle, then: regbridge enroll BUNDLE --dir {config.base}"
        info = read_certificate(self._certificate)
        now = datetime.now(UTC)
        left = info.not_after - now
        serial = info.serial_hex
        if left.total_seconds() < 0:
            self.add(
                "certificate", "fail",
                f"机构证书 {serial} 已于 {info.not_after:%Y-%m-%d} 过期 (the bank certificate expired;"
                " the centre refuses the key)", fix_refused,
            )  # fmt: skip
            return
        if info.not_before > now:
            start = f"{info.not_before:%Y-%m-%d %H:%M}"
            self.add("certificate", "fail", f"机构证书 {serial} 尚未生效 (valid from {start} UTC)",
                     "check this machine's clock (NTP)")  # fmt: skip
            return
        if not reachable:
            crl_detail, crl_status = "the centre's CRL was not checked (the centre is not reachable)", "warn"
        else:
            crl_detail, crl_status = self._crl(config, info.serial, check_crl)
        if crl_status == "fail":
            refused = next((f for f in self.findings if f.check == "credential" and f.status == "fail"), None)
            if refused is not None:  # the centre's refusal is already a finding: it says why
                refused.detail += f"; {crl_detail}"
            else:
                self.add("certificate", "fail", crl_detail, fix_refused)
            return
        days = left.days
        if days <= EXPIRY_WARNING_DAYS:
            self.add(
                "certificate", "warn",
                f"机构证书 {serial} 将于 {info.not_after:%Y-%m-%d} 到期（剩 {days} 天）(the bank certificate ends in"
                f" {days} days); {crl_detail}",
                "rotate the key now, which renews the certificate: regbridge keys rotate (after it ends only a new"
                " enrolment helps)",
            )  # fmt: skip
        elif crl_status == "warn":
            self.add("certificate", "warn", f"机构证书 {serial} valid to {info.not_after:%Y-%m-%d}; {crl_detail}",
                     "check the network to the centre's /pki/banks.crl; ask the centre if it stays stale")  # fmt: skip
        else:
            self.add(
                "certificate", "ok", f"机构证书 {serial} valid to {info.not_after:%Y-%m-%d} ({days} days); {crl_detail}"
            )

    def _crl(self, config: AgentConfig, serial: int, check_crl: Any) -> tuple[str, Status]:
        url = config.centre.url.rstrip("/") + "/pki/banks.crl"
        try:
            with httpx.Client(transport=centre_transport(config), timeout=config.centre.timeout) as http:
                answer = http.get(url)
            answer.raise_for_status()
            assert self._bank_ca is not None
            crl = check_crl(answer.content, ca=self._bank_ca.read_bytes())
        except (httpx.HTTPError, OSError) as exc:
            return f"the centre's CRL {url} cannot be fetched: {exc}", "warn"
        except ValueError as exc:
            return f"the CRL at {url} does not check: {exc}", "warn"
        if serial in crl.revoked:
            return f"机构证书 {format(serial, 'x')} 已被登记中心吊销 (on the centre's CRL: the key is refused)", "fail"
        if crl.next_update is not None and crl.next_update < datetime.now(UTC):
            return f"the centre's CRL is stale: its next update was due {crl.next_update:%Y-%m-%d %H:%M} UTC", "warn"
        return "not on the centre's CRL", "ok"

    def filing(self, profile: sdk.models.InstitutionProfile) -> None:
        """银行信息备案 (seed 001 §5.2): the centre refuses applications unless the 营业执照 and 金融许可证 it holds
        are complete and valid; a document ending within 30 days is a warning."""
        from agent.centre.filing import FILING_COMMAND, describe_filing

        state = profile.filing_state
        detail = describe_filing(profile).replace("\n", "; ")
        if state.status != "complete":
            self.add("filing", "fail", detail, f"file them once: {FILING_COMMAND}")
        elif state.valid_until is not None and (state.valid_until - date.today()).days < 30:
            self.add("filing", "warn", detail, f"file the renewed licence before {state.valid_until}: {FILING_COMMAND}")
        else:
            self.add("filing", "ok", detail)

    def operators(self, config: AgentConfig, operators: list[sdk.models.Operator]) -> None:
        """The 业务办理人员 accounts the centre issued (seed 001 §4.2): the ids the export's 经办人 column may name."""
        active = [o.operator_id for o in operators if o.active]
        inactive = [o.operator_id for o in operators if not o.active]
        listing = f"active: {', '.join(active) or '(none)'}"
        if inactive:
            listing += f"; deactivated: {', '.join(inactive)}"
        if not active:
            self.add(
                "operators",
                "fail",
                f"the centre issued no active 经办人 account to this bank ({listing})",
                "ask the centre for an account per staff member (create-operator); use its id in the 经办人 column",
            )
        elif config.default_operator and config.default_operator not in active:
            self.add(
                "operators",
                "fail",
                f"default_operator {config.default_operator} is not an active account at the centre ({listing})",
                "set default_operator to one of the active ids, or leave it out",
            )
        else:
            self.add("operators", "ok", listing)

    def folders(self, config: AgentConfig) -> None:
        data = config.resolve(config.data_dir)
        problems: list[tuple[str, str]] = []
        if data.exists() and _mode(data) & 0o077:
            problems.append((f"{data} is open to others (mode {_mode(data):o})", f"chmod 700 {data}"))
        keys = config.resolve(config.centre.key_dir)
        if keys.exists() and _mode(keys) & 0o022:
            problems.append((f"{keys} is writable by others", f"chmod 700 {keys}"))
        for inbox in config.inbox:
            path = config.resolve(inbox.path)
            if not path.is_dir():
                problems.append((f"inbox {inbox.name}: {path} does not exist", f"mkdir -p {path} (or mount the share)"))
            elif not os.access(path, os.R_OK | os.W_OK | os.X_OK):
                problems.append((f"inbox {inbox.name}: {path} is not readable and writable", "chown the folder"))
            elif _mode(path) & stat.S_IWOTH:
                problems.append((f"inbox {inbox.name}: {path} is writable by anyone", f"chmod o-w {path}"))
        for detail, hint in problems:
            self.add("folders", "fail", detail, hint)
        if not problems:
            self.add("folders", "ok", f"data folder and {len(config.inbox)} inbox(es) present, permissions tight")

    def inboxes(self, config: AgentConfig) -> None:
        """Each inbox's profile (every problem with its line) and whether its completion rule is safe there."""
        from agent.mapping import ProfileInvalid, load_profile
        from agent.pipeline.writers import can_prove_no_writer

        for inbox in config.inbox:
            try:
                load_profile(inbox.profile, base=config.base)
            except ProfileInvalid as exc:
                for problem in exc.problems:
                    self.add(
                        "profile",
                        "fail",
                        f"inbox {inbox.name}: {exc.where}:{problem.line}: {problem.message}",
                        "fix that line of the profile (regbridge profile check EXPORT --profile P shows it)",
                    )
                continue
            except (FileNotFoundError, ValueError) as exc:
                self.add("profile", "fail", f"inbox {inbox.name}: {exc}", "name a profile in config/mappings or a path")
                continue
            self.add("profile", "ok", f"inbox {inbox.name}: profile {inbox.profile} valid")
            if inbox.completion != "stable":
                self.add("completion", "ok", f"inbox {inbox.name}: {inbox.completion} completion")
                continue
            proof = can_prove_no_writer(config.resolve(inbox.path))
            if proof.state == "none":
                self.add(
                    "completion", "ok", f"inbox {inbox.name}: stable completion, a writer can be seen ({proof.why})"
                )
            else:
                self.add(
                    "completion",
                    "fail",
                    f"inbox {inbox.name}: stable completion cannot prove that no one still writes a file: {proof.why}; "
                    "exports will wait there, never taken half-written",
                    'set completion = "rename" (the loan system writes a temporary name, then renames) or "marker" '
                    "(it writes name.done when complete) for this inbox",
                )

    def disk(self, config: AgentConfig) -> None:
        data = config.resolve(config.data_dir)
        probe = data if data.exists() else config.base
        free = shutil.disk_usage(probe).free // (1024 * 1024)
        if free < config.min_free_mb:
            self.add("disk", "fail", f"{free} MB free on {probe}", f"free space (at least {config.min_free_mb} MB)")
        elif free < 2 * config.min_free_mb:
            self.add("disk", "warn", f"{free} MB free on {probe}", "free space soon")
        else:
            self.add("disk", "ok", f"{free} MB free on {probe}")

    def documents(self, config: AgentConfig) -> None:
        from agent.daemon.agent import make_document_store
        from connectors.documents import DocumentStoreUnavailable

        try:
            where = make_document_store(config).probe()
        except (DocumentStoreUnavailable, OSError) as exc:
            self.add("documents", "fail", f"the document store refuses writes: {exc}", "check its permissions")
            return
        except Exception as exc:  # boto3 configuration and the like
            self.add("documents", "fail", f"the document store cannot be used: {exc}", "check [documents]")
            return
        self.add("documents", "ok", f"{where} writable")

    def trust(self, config: AgentConfig) -> None:
        path = config.resolve(config.centre.seal_ca_file)
        try:
            ca = x509.load_pem_x509_certificate(path.read_bytes())
            sdk.signing.public_key_from_jwk(config.centre.centre_key)
        except (OSError, ValueError) as exc:
            self.add("trust", "fail", f"trust anchors unusable: {exc}", "enrol again to restore them")
            return
        left = (ca.not_valid_after_utc - datetime.now(UTC)).days
        if left < 0:
            self.add("trust", "fail", f"the seal CA expired {-left} days ago", "ask the centre for a new bundle")
        elif left < EXPIRY_WARNING_DAYS:
            self.add("trust", "warn", f"the seal CA expires in {left} days", "ask the centre for its new CA")
        else:
            self.add("trust", "ok", f"seal CA valid {left} more days; centre key {config.centre.centre_key_id}")

    def directs(self, config: AgentConfig, secret: bytes | None) -> None:
        """Each other direct centre (``[centres."<prefix>"]``), one finding ``centre <prefix>`` each: its trust
        anchors (seal CA valid, signing key a key), the agent's key for it in the key store, and one signed call —
        the key active there, the channel open, 银行信息备案 complete."""
        for prefix in config.centres:
            check, sub = f"centre {prefix}", config.for_centre(prefix)
            centre = sub.centre
            try:
                ca = x509.load_pem_x509_certificate(config.resolve(centre.seal_ca_file).read_bytes())
                sdk.signing.public_key_from_jwk(centre.centre_key)
            except (OSError, ValueError) as exc:
                self.add(check, "fail", f"{centre.url}: trust anchors unusable ({exc})",
                         f"enrol again: regbridge enroll BUNDLE --district {prefix}")  # fmt: skip
                continue
            left = (ca.not_valid_after_utc - datetime.now(UTC)).days
            if left < 0:
                self.add(check, "fail", f"{centre.url}: its seal CA expired {-left} days ago", "ask for a new bundle")
                continue
            if secret is None:
                self.add(check, "fail", f"{centre.url}: not checked: no agent secret")
                continue
            try:
                signer = custody_for(config, secret).signer(centre.key_id)
            except KeyError as exc:
                self.add(check, "fail", f"{centre.url}: {str(exc).strip(chr(39) + chr(34))}",
                         f"enrol again: regbridge enroll BUNDLE --district {prefix}")  # fmt: skip
                continue
            try:
                with centre_client(sub, signer) as client:
                    records = client.credentials.list()
                    profile = client.institution.get()
            except sdk.RegBridgeError as exc:
                self.add(
                    check,
                    "fail",
                    f"{centre.url}: {type(exc).__name__}: {exc}",
                    f'check [centres."{prefix}"] url and the network; the key must be the one enrolled there',
                )
                continue
            mine = next((r for r in records if r.key_id == centre.key_id), None)
            if mine is None or mine.status != "active":
                self.add(check, "fail", f"{centre.url}: key {centre.key_id} is not active there",
                         f"enrol again: regbridge enroll BUNDLE --district {prefix}")  # fmt: skip
            elif profile.channel.status != "open" or profile.filing_state.status != "complete":
                self.add(check, "warn", f"{centre.url}: channel {profile.channel.status}, 银行信息备案 "
                         f"{profile.filing_state.status}", "ask the centre (备案, suspension)")  # fmt: skip
            else:
                self.add(check, "ok", f"{centre.url} ({centre.centre_name or prefix}): key {centre.key_id} active, "
                         f"channel open; seal CA valid {left} more days")  # fmt: skip

    def platform(self, config: AgentConfig, secret: bytes | None) -> None:
        """``[platform]``: keys, each county centre's anchors, one signed call (``channel``), the notify URL."""
        platform = config.platform
        if platform is None:
            return
        from agent.centre.province import platform_centre

        problems = []
        for district, centre in platform.centres.items():
            try:
                ca = x509.load_pem_x509_certificate(config.resolve(centre.seal_ca_file).read_bytes())
                sdk.signing.public_key_from_jwk(centre.centre_key)
                if ca.not_valid_after_utc < datetime.now(UTC):
                    problems.append(f"{district} {centre.name}: its seal CA has expired")
            except (OSError, ValueError) as exc:
                problems.append(f"{district} {centre.name}: trust anchors unusable ({exc})")
        if problems:
            self.add("platform trust", "fail", "; ".join(problems), "register again: `regbridge platform enroll`")
        else:
            self.add("platform trust", "ok", f"{len(platform.centres)} county centres: "
                     + ", ".join(f"{d} {c.name}" for d, c in platform.centres.items()))  # fmt: skip
        notify = platform.notify  # checked first: the platform's own check may end early
        if not notify.enabled:
            self.add("platform notify", "warn", "the platform's notices (查封, 解封, 异议, 产权变动) are not received",
                     "set [platform.notify] enabled = true and register its URL at the platform")  # fmt: skip
        elif not notify.public_url:
            self.add("platform notify", "warn", f"listening on {notify.listen}:{notify.port}, no public_url",
                     "set [platform.notify] public_url to the URL registered at the platform")  # fmt: skip
        elif not notify.port:
            self.add("platform notify", "warn", f"the platform posts to {notify.public_url}, but the receiver listens "
                     "on a different free port at every start ([platform.notify] port = 0): notices miss it",
                     "the fixed port that URL reaches: regbridge platform notify-url URL --notify-port N")  # fmt: skip
        else:
            self.add("platform notify", "ok", f"notices received at {notify.public_url}")
        if secret is None:
            self.add("platform", "fail", "not checked: no agent secret")
            return
        try:
            custody = custody_for(config, secret)
            signer = custody.sm2_signer(platform.key_id)
            decryption = custody.encryption_key()
            if decryption is None:
                raise KeyError("there is no SM2 encryption key in the key store")
        except KeyError as exc:
            self.add("platform", "fail", str(exc).strip("'\""), "register again: `regbridge platform enroll`")
            return
        except TokenUnavailable as exc:
            self.add("platform", "fail", f"the platform's signing key {platform.key_id}: {exc}",
                     "check [centre.pkcs11] (module, token, PIN) and that the token is present")  # fmt: skip
            return
        if isinstance(signer, Pkcs11Signer) and not self._token_signs_sm2(custody, signer):
            return
        port = platform_centre(config, signer=signer, decryption_key=decryption)
        try:
            open_ = port.channel_open()
        except sdk.RegBridgeError as exc:
            hint = "check [platform] url and the network; the keys must be the ones registered at the platform's desk"
            self.add("platform", "fail", f"{platform.url}: {type(exc).__name__}: {exc}", hint)
            return
        finally:
            port.close()
        if not open_:
            self.add("platform", "warn", f"{platform.url} answers {platform.app_id}, but its channel is closed",
                     "ask the platform why (备案, suspension)")  # fmt: skip
        else:
            self.add("platform", "ok", f"{platform.url} answers {platform.app_id} (signed and sealed both ways)")

    def _token_signs_sm2(self, custody: KeyCustody, signer: Pkcs11Signer) -> bool:
        """The platform's signing key in a PKCS#11 token: the key the manifest names (its fingerprint), and a
        signature by the token that verifies as SM2 with its public half (vendor codes that name another
        mechanism — an ECDSA one, say — make signatures the platform refuses as 4011)."""
        entry = custody.entry(signer.key_id)
        where = custody.where(entry)
        if jwk_fingerprint(jwk_from_public_key(signer.public)) != entry.fingerprint:
            self.add("platform", "fail", f"the key in the token is not the one registered ({where})",
                     "restore the token, or register again: `regbridge platform enroll`")  # fmt: skip
            return False
        probe = b"regbridge doctor: platform signing key"
        try:
            signature = signer.sign(probe)
            assert isinstance(signer.public, Sm2PublicKey)
            signer.public.verify(signature, probe)
        except TokenUnavailable as exc:
            self.add("platform", "fail", f"the token did not sign with the platform's key: {exc}",
                     "check [centre.pkcs11] and its SM2 codes ([centre.pkcs11.mechanisms])")  # fmt: skip
            return False
        except InvalidSignature:
            codes = (
                ", ".join(f"{k}=0x{v:X}" for k, v in sorted(custody.token.mechanisms.items())) if custody.token else ""
            )
            self.add("platform", "fail", f"the token's signature does not verify as SM2 ({where}; {codes}): the "
                     "platform would refuse every request (4011)",
                     "set [centre.pkcs11.mechanisms] to the token vendor's SM2 codes (CKM_VENDOR_SM2 or "
                     "CKM_VENDOR_SM2_SM3), or register with --software-key")  # fmt: skip
            return False
        return True

    def state(self, config: AgentConfig) -> None:
        from agent.state.migrations import MIGRATIONS

        if config.state.url:
            self.shared_state(config)
            return
        path = config.resolve(config.data_dir) / "state.db"
        if not path.exists():
            self.add("state", "ok", "no state yet (first run)")
            return
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                check = db.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error as exc:
            self.add("state", "fail", f"{path}: {exc}", "restore the state from backup")
            return
        if check != "ok":
            self.add("state", "fail", f"{path}: {check}", "restore the state from backup")
        elif version > len(MIGRATIONS):
            self.add("state", "fail", f"{path} is from a newer agent (schema {version})", "upgrade the agent")
        else:
            self.add("state", "ok", f"{path} intact (schema {version})")

    def shared_state(self, config: AgentConfig) -> None:
        """A state at ``state.url`` (docs/state.md): reachable, its schema not newer than this agent (read only:
        nothing is migrated here), the instances on it, and a shared blobs folder for a second instance."""
        import sqlalchemy as sa
        from alembic.runtime.migration import MigrationContext

        from agent.state.migrations import SCHEMA_VERSION
        from agent.state.sql import redact_url

        assert config.state.url is not None
        where = redact_url(config.state.url)
        engine = sa.create_engine(config.state.url)
        try:
            with engine.connect() as db:
                revision = MigrationContext.configure(db).get_current_revision()
                instances = []
                if revision is not None and int(revision) >= 7:  # schema 7 made the instances table
                    instances = [r[0] for r in db.execute(sa.text("SELECT host FROM instances ORDER BY id"))]
        except (sa.exc.SQLAlchemyError, ValueError) as exc:
            fix = "check the database is up and reachable from this host, and the password in PGPASSFILE"
            self.add("state", "fail", f"{where}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}", fix)
            return
        finally:
            engine.dispose()
        if revision is None:
            self.add("state", "ok", f"{where}: empty (the first instance to start makes the schema)")
        elif int(revision) > SCHEMA_VERSION:
            self.add("state", "fail", f"{where} is from a newer agent (schema {int(revision)})", "upgrade the agent")
        else:
            hosts = f"; {len(instances)} instance(s) registered: {', '.join(instances)}" if instances else ""
            self.add("state", "ok", f"{where} reachable (schema {int(revision)}){hosts}")
        parsed = sa.make_url(config.state.url)
        if parsed.password or "password" in parsed.query:  # in agent.toml (or the unit's environment) in the clear
            fix = (
                "remove it from state.url and put it in the service user's ~/.pgpass (its home is the state"
                " folder, e.g. /var/lib/regbridge/.pgpass, mode 0600) or a file PGPASSFILE names (docs/state.md)"
            )
            self.add(
                "state password", "warn", "state.url carries the database password in plaintext (hidden here)", fix
            )
        if sa.make_url(config.state.url).get_backend_name() != "sqlite" and not config.state.blobs_dir:
            self.add("shared blobs", "warn", "state.url is shared but state.blobs_dir is not set: another instance"
                     " cannot read the copies of exports this host keeps in its own data folder",
                     "set [state] blobs_dir to a folder on a mount every host shares (docs/state.md)")  # fmt: skip

    def calendar(self) -> None:
        """The working-day calendar the committed time limits (承诺办结时限) count with, from today to a limit's reach.

        Warns when chinese-calendar is not installed or a year in reach has neither its data nor a holiday table in
        ``config/time_limits.toml`` (weekends alone). A year counted from the config table (statutory holidays, 调休
        unknown until the State Council publishes them) is named in the detail as an estimate; the agent also warns
        in its logs, ``regbridge status`` and a metric while a running limit counts such days.
        """
        from datetime import UTC, datetime, timedelta
        from importlib.util import find_spec

        from agent.state.time_limits import calendar_warnings
        from config import load_time_limits, working_calendar

        cal = working_calendar()
        today = datetime.now(UTC).date()
        longest = max(load_time_limits().defaults.values(), default=0)
        reach = today + timedelta(days=longest * 2 + 30)  # past the longest limit, holidays included
        hint = "pip install -U chinesecalendar, or add the year's schedule to config/time_limits.toml"
        if find_spec("chinese_calendar") is None:
            self.add("calendar", "warn", "chinese-calendar 未安装：工作日只按 config 节假日表和周末计算", hint)
            return
        notes = calendar_warnings(cal, today, reach)
        weekends_only = [y for y in cal.fallback_years(today, reach) if cal.source(y) == "weekends"]
        if weekends_only:
            self.add("calendar", "warn", "；".join(notes), hint)
            return
        detail = f"working days to {reach.isoformat()}: chinese-calendar"
        self.add("calendar", "ok", detail + ("；" + "；".join(notes) if notes else ""), hint if notes else "")

    def run(self) -> list[Finding]:
        config = self.config()
        if config is None:
            return self.findings
        secret = self.secret(config)
        signer = self.key(config, secret) if secret is not None else None
        if secret is None:
            self.add("key", "fail", "not checked: no agent secret")
        reachable = self.centre(config)
        if reachable and signer is not None:
            self.credential(config, signer)
        if signer is not None:
            self.certificate(config, reachable)
        self.folders(config)
        self.inboxes(config)
        self.disk(config)
        self.documents(config)
        self.trust(config)
        self.directs(config, secret)
        self.platform(config, secret)
        self.state(config)
        self.calendar()
        return self.findings


def diagnose(config_path: Path) -> list[Finding]:
    """Every check's finding for the agent configured at ``config_path``."""
    return _Doctor(config_path).run()


def diagnose_platform(config_path: Path) -> list[Finding]:
    """The config, the agent secret and the ``[platform]`` checks only (what ``regbridge platform enroll`` set up)."""
    doctor = _Doctor(config_path)
    config = doctor.config()
    if config is not None:
        doctor.platform(config, doctor.secret(config))
    return doctor.findings
