"""Verify a webhook delivery from the centre.

The centre POSTs one :class:`~sdk.models.Event` per delivery, signed like a request
(RFC 9421, tag ``regbridge``, covering ``@method``, ``@target-uri``, ``content-digest`` and
``content-type``) with the webhook key from the enrolment bundle. A delivery is accepted only
if the signature verifies with that key, the digest matches the body and it was signed within
``max_age`` seconds. Deliveries are at-least-once: dedupe by ``event.event_id``.

A gm centre asking for the personal-field envelope seals the personal fields of a delivery to the
bank's SM2 encryption key registered at enrolment (:mod:`sdk.gm.envelope`); pass that key as
``decryption_key`` and the event comes back opened (after the signature, which covers the sealed body).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .errors import SignatureError
from .gm.sm2 import Sm2PrivateKey
from .models import Event
from .signing import PublicKey, verify_request

__all__ = ["verify_webhook"]


def verify_webhook(
    *,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    centre_keys: Mapping[str, PublicKey],
    max_age: int = 300,
    decryption_key: Sm2PrivateKey | Sequence[Sm2PrivateKey] | None = None,
) -> Event:
    """Return the delivered event, or raise :class:`~sdk.errors.SignatureError`.

    Args:
        method, url, headers, body: the delivery exactly as received (``url`` as the centre
            addressed it, i.e. the registered webhook URL).
        centre_keys: the centre's webhook key(s) by key id, from the enrolment bundle.
        max_age: how old a signature may be, in seconds.
        decryption_key: the bank's SM2 encryption key (or keys, tried in turn), to open a sealed delivery's
            personal fields.

    Raises:
        SignatureError: the signature does not verify, the body is no event, or it carries a
            personal-field envelope that does not open with ``decryption_key`` (or none is given).
    """
    from ._client import open_answer

    verify_request(method=method, url=url, headers=headers, body=body, keys=centre_keys, max_skew=max_age)
    body = open_answer(body, decryption_key)
    try:
        return Event.model_validate_json(body)
    except ValueError as e:
        raise SignatureError(f"the delivery verified but is not an event: {e}") from None
