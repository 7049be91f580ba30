"""The systemd notify protocol (``Type=notify``): ready, status, watchdog pings and stopping.

A datagram to ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace); nothing is
sent when the agent is not run by systemd. ``WatchdogSec=`` reaches us as ``$WATCHDOG_USEC``.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_seconds"]


def notify(*lines: str) -> bool:
    """Send ``READY=1``, ``WATCHDOG=1``, ``STATUS=…``, ``STOPPING=1``; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)  # never let a slow reader stall the agent: a lost ping is retried
            sock.connect(address)
            sock.send("\n".join(lines).encode())
    except OSError:
        return False
    return True


def watchdog_seconds() -> float | None:
    """The watchdog interval systemd expects pings within, if it set one for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000
    except ValueError:
        return None
