"""The back-off of a document the agent failed to fetch or store (a certificate, or a sealed notice as
``notice:<id>``): shared by the deliver and notices stages, which import none of each other.

A failing download waits 2, 4, 8 … s (jittered, at least the centre's ``Retry-After``, at most
:data:`HOLD_MAX_SECONDS`) instead of being tried on every round (issue 17 item 9: 131 attempts in 40 s).
The holds live in this process: a restarted agent tries each document once at once, then backs off again.
"""

from __future__ import annotations

import random
import threading
import time

from agent.pipeline.context import StageContext

__all__ = ["DELIVERING", "HOLD_MAX_SECONDS", "hold", "ready", "release"]

#: the longest a failing certificate waits before its next attempt, in seconds
HOLD_MAX_SECONDS = 30.0
#: certificates whose last delivery failed, and when each may be tried again: (store, id) → (attempts, not before)
_held: dict[tuple[int, str], tuple[int, float]] = {}
_held_lock = threading.Lock()


def ready(ctx: StageContext, certificate_id: str) -> bool:
    """Whether a certificate (or ``notice:<id>``) may be tried now: no failure held, or its back-off over."""
    with _held_lock:
        held = _held.get((id(ctx.store), certificate_id))
    return held is None or held[1] <= time.monotonic()


def hold(ctx: StageContext, certificate_id: str, exc: BaseException) -> float:
    """Back off a certificate whose delivery failed: 2, 4, 8 … s (jittered, at least a ``Retry-After``), so
    a failing download is not retried on every round (issue 17 item 9: 131 attempts in 40 s in batch
    mode). At most :data:`HOLD_MAX_SECONDS`, so a centre back from an outage is drained promptly.
    Answers the delay."""
    key = (id(ctx.store), certificate_id)
    with _held_lock:
        attempts = _held.get(key, (0, 0.0))[0] + 1
        delay = min(HOLD_MAX_SECONDS, ctx.config.retry_max_seconds, 2.0 ** min(attempts, 10))
        delay *= random.uniform(0.5, 1.0)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            delay = max(delay, float(retry_after))
        _held[key] = (attempts, time.monotonic() + delay)
    return delay


def release(ctx: StageContext, certificate_id: str) -> None:
    """Forget a certificate's (or ``notice:<id>``'s) failures once it was delivered."""
    with _held_lock:
        _held.pop((id(ctx.store), certificate_id), None)


#: the stages of a certificate the deliver stage works on
DELIVERING = ("pending", "storing")
