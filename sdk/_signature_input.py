"""The one RFC 9421 signature a request is judged by, parsed once from its headers (no ambiguity accepted)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import http_sf

SIGNATURE_LABEL = "sig1"
SIGNATURE_TAG = "regbridge"
#: fields a request may carry once only: a second line would let two readers see two values
SINGLE_FIELDS = ("signature-input", "signature", "content-type", "idempotency-key", "host", "authorization")
_PARAMETERS = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})


class SignatureInput:
    """The one signature a request is judged by, parsed once from its headers.

    Every part of the authentication — label, key id, algorithm, ``created``/``expires``,
    ``nonce``, tag and the covered components — comes from this one structure; nothing reads
    ``Signature-Input`` or ``Signature`` again. Anything ambiguous is refused: a repeated
    ``Signature-Input``, ``Signature`` (or another single-valued field: ``Content-Type``,
    ``Idempotency-Key``, ``Host``), a label given twice, a parameter given twice, more than one
    ``regbridge`` signature, or no member with the label asked for.
    """

    def __init__(self, label: str, covered: tuple[str, ...], params: dict[str, int | str], signature: bytes) -> None:
        self.label = label
        self.covered = covered
        self.params = params
        self.signature = signature

    @property
    def key_id(self) -> str:
        value = self.params.get("keyid")
        return value if isinstance(value, str) else ""

    @property
    def alg(self) -> str | None:
        value = self.params.get("alg")
        return value if isinstance(value, str) else None

    @property
    def created(self) -> int:
        value = self.params["created"]
        assert isinstance(value, int)
        return value

    @property
    def expires(self) -> int | None:
        value = self.params.get("expires")
        return value if isinstance(value, int) else None

    @property
    def nonce(self) -> str | None:
        value = self.params.get("nonce")
        return value if isinstance(value, str) else None

    def field_values(self) -> tuple[str, str]:
        """``Signature-Input`` and ``Signature`` holding this signature alone, serialised afresh."""
        members = [(f'"{c}"' if not c.startswith('"') else c) for c in self.covered]
        params = "".join(
            f";{k}={v}" if isinstance(v, int) else f";{k}={http_sf.ser(v)}" for k, v in self.params.items()
        )
        signature = base64.b64encode(self.signature).decode("ascii")
        return f"{self.label}=({' '.join(members)}){params}", f"{self.label}=:{signature}:"

    @classmethod
    def parse(cls, headers: Iterable[tuple[str, str]], *, label: str = SIGNATURE_LABEL) -> SignatureInput:
        """The ``label`` signature of ``headers``, or :class:`SignatureError` (``signature_missing`` /
        ``signature_invalid``) saying what is ambiguous or malformed."""
        lines: dict[str, list[str]] = {}
        for name, value in headers:
            lines.setdefault(name.lower(), []).append(value)
        if "signature" not in lines or "signature-input" not in lines:
            raise _fail("signature_missing", "the request carries no Signature / Signature-Input")
        for name in SINGLE_FIELDS:
            if len(lines.get(name, ())) > 1:
                raise _fail("signature_invalid", f"the {name} field is sent {len(lines[name])} times; send it once")
        inputs = _dictionary("Signature-Input", lines["signature-input"][0])
        signatures = _dictionary("Signature", lines["signature"][0])
        ours = [k for k, (_m, p) in inputs.items() if p.get("tag") == SIGNATURE_TAG]
        if len(ours) > 1:
            raise _fail("signature_invalid", f"{len(ours)} signatures tagged {SIGNATURE_TAG!r}; send one")
        if label not in inputs:
            raise _fail("signature_invalid", f"no signature labelled {label!r}")
        if label not in signatures:
            raise _fail("signature_invalid", f"Signature has no member {label!r}")
        members, params = inputs[label]
        value, _sig_params = signatures[label]
        if not isinstance(members, list) or not isinstance(value, bytes) or not value:
            raise _fail("signature_invalid", f"the {label!r} signature is malformed")
        covered: list[str] = []
        for item, item_params in members:
            if not isinstance(item, str) or item_params or item != item.lower():
                raise _fail("signature_invalid", f"covered component {item!r} is not a plain lowercase name")
            if item in covered:
                raise _fail("signature_invalid", f"component {item!r} is covered twice")
            covered.append(item)
        unexpected = set(params) - _PARAMETERS
        if unexpected:
            raise _fail("signature_invalid", f"unexpected signature parameter(s) {sorted(unexpected)}")
        for name in ("created", "expires"):
            if name in params and type(params[name]) is not int:
                raise _fail("signature_invalid", f"{name} must be an integer")
        for name in ("alg", "keyid", "nonce", "tag"):
            if name in params and not isinstance(params[name], str):
                raise _fail("signature_invalid", f"{name} must be a string")
        if params.get("tag") != SIGNATURE_TAG:
            raise _fail("signature_invalid", f"the signature is not tagged {SIGNATURE_TAG!r}")
        if "created" not in params:
            raise _fail("signature_invalid", "the signature has no created time")
        if not isinstance(params.get("keyid"), str) or not params["keyid"]:
            raise _fail("unknown_key", "the signature names no key id")
        return cls(label, tuple(covered), dict(params), value)


def _fail(code: str, message: str) -> Exception:
    from .errors import SignatureError

    err = SignatureError(message)
    err.code = code  # type: ignore[attr-defined]
    return err


def _dictionary(name: str, value: str) -> dict[str, Any]:
    """Parse a Structured Field dictionary, refusing a key given twice (in members or in parameters)."""

    def duplicate(key: str, context: str) -> None:
        raise ValueError(f"{key!r} given twice ({context})")

    try:
        parsed: Any = http_sf.parse(value.encode(), tltype="dictionary", on_duplicate_key=duplicate)
    except Exception as e:
        raise _fail("signature_invalid", f"{name} is malformed: {e}") from None
    return dict(parsed)
