"""Where the centre may send webhooks: not into its own network (SSRF), unless it is a development centre.

A real centre refuses a webhook URL whose host is loopback, private (RFC 1918, ULA), link-local
(cloud metadata at 169.254.169.254 among them), shared (100.64/10), multicast, reserved or
unspecified, or a name that resolves to one (``localhost`` and ``*.localhost`` too). The check
runs when the URL is set and again before each delivery (a name can resolve elsewhere later).
A development centre (``regbridge sandbox serve`` on a loopback address, the tests) accepts them:
the bank's receiver runs on the same machine there.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from .errors import CentreError

__all__ = ["check_webhook_url", "internal_address"]


def internal_address(address: str) -> bool:
    """Whether an IP address is one a centre must not call out to."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
        or ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )  # fmt: skip


def check_webhook_url(url: str, *, development: bool) -> None:
    """Refuse a webhook URL that points inside the centre's network, unless ``development``.

    Raises:
        CentreError: 422 ``webhook_url_refused`` saying why.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # a malformed authority ("http://[", a port that is not a number)
        raise CentreError(422, "webhook_url_refused", "the webhook URL is malformed") from None
    if parts.scheme not in ("http", "https") or not host:
        raise CentreError(422, "webhook_url_refused", "a webhook URL is http(s)://host/…")
    if development:
        return
    if parts.username or parts.password:
        raise CentreError(422, "webhook_url_refused", "a webhook URL carries no user name or password")
    if host == "localhost" or host.endswith(".localhost"):
        raise CentreError(422, "webhook_url_refused", f"{host} is this machine: a centre does not call itself")
    try:
        addresses = [host] if _is_ip(host) else [i[4][0] for i in socket.getaddrinfo(host, port or 443)]
    except OSError:
        raise CentreError(422, "webhook_url_refused", f"{host} cannot be resolved") from None
    for address in addresses:
        if internal_address(str(address).split("%")[0]):
            raise CentreError(
                422, "webhook_url_refused",
                f"{host} is (or resolves to) {address}, an internal address: a real centre does not deliver there",
            )  # fmt: skip


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
