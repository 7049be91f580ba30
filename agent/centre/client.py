"""The connection to the configured centre: its transport (proxy, CA bundle), an SDK client, its clock."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

import sdk
from agent.config import AgentConfig
from sdk.certificates import TrustAnchors
from sdk.gm.sm2 import Sm2PublicKey
from sdk.signing import public_key_from_jwk

__all__ = ["FEED_RESERVE", "centre_client", "centre_clock_skew", "centre_transport", "direct_trust"]

#: the share of the client's retry budget only the event feed may spend (:class:`sdk.RetryBudget`): failed
#: submissions, payments and downloads under a flaky network cannot starve the feed every application moves by
FEED_RESERVE = 0.2


def centre_transport(config: AgentConfig) -> httpx.HTTPTransport:
    """The HTTP transport to the configured centre: its proxy and CA bundle, if any."""
    centre = config.centre
    verify: Any = str(config.resolve(centre.ca_bundle)) if centre.ca_bundle else True
    return httpx.HTTPTransport(proxy=centre.proxy, verify=verify)


def centre_client(
    config: AgentConfig, credential: sdk.Credential | sdk.Signer | None, *, wrap: Any = None, **kwargs: Any
) -> sdk.Client:
    """An SDK client for the configured centre; ``wrap`` wraps its transport (metrics).

    Its retry budget keeps :data:`FEED_RESERVE` of its tokens for the event feed unless ``retry`` is given.
    """
    transport: httpx.BaseTransport = centre_transport(config)
    if wrap is not None:
        transport = wrap(transport)
    centre = config.centre
    decryption_key = kwargs.pop("decryption_key", None)  # the bank's own SM2 encryption key (custody)
    if centre.envelope and centre.centre_encryption_key and "envelope" not in kwargs:
        # the centre asks for the personal fields encrypted (seed 002 §5.1 加密传输): wrap to its key
        recipient = public_key_from_jwk(centre.centre_encryption_key)
        if not isinstance(recipient, Sm2PublicKey):
            raise ValueError("centre.centre_encryption_key is not an SM2 key")
        kwargs["envelope"] = sdk.FieldEncryption(recipient, centre.envelope, decryption_key=decryption_key)
    if "retry" not in kwargs:
        budget = sdk.RetryBudget(capacity=100.0, reserve=100.0 * FEED_RESERVE)
        kwargs["retry"] = sdk.RetryPolicy(budget=budget)
    return sdk.Client(centre.url, credential, timeout=centre.timeout, transport=transport, **kwargs)


def direct_trust(config: AgentConfig) -> dict[str, TrustAnchors]:
    """The trust anchors of each other direct centre by its prefix (``[centres."<prefix>"]``): a certificate of a
    unit in its districts is checked against that centre's seal CA and signing key.

    Raises:
        OSError: a ``seal_ca_file`` cannot be read.
    """
    found = {}
    for prefix in config.centres:
        centre = config.direct_centre(prefix)
        found[prefix] = TrustAnchors(
            seal_ca_pem=config.resolve(centre.seal_ca_file).read_text(encoding="ascii"),
            centre_key_id=centre.centre_key_id,
            centre_key=centre.centre_key,
            sm2_user_id=centre.crypto_suite.sm2_user_id,
            centre_name=centre.centre_name,
        )
    return found


def centre_clock_skew(url: str, *, transport: httpx.BaseTransport | None = None, timeout: float = 10.0) -> float:
    """Seconds the centre's clock (its ``Date`` header) is ahead of this machine's (negative: behind)."""
    with httpx.Client(transport=transport, timeout=timeout) as http:
        before = time.time()
        response = http.get(url.rstrip("/") + "/v1/institution")
        after = time.time()
    date = response.headers.get("Date")
    if not date:
        raise ValueError(f"{url} sent no Date header; cannot compare clocks")
    return email.utils.parsedate_to_datetime(date).timestamp() - (before + after) / 2
