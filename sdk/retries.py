"""Retry policy: what is retried, how long to wait, and a budget against retry storms.

Only what may succeed later is retried: transport errors and timeouts, 408, 425, 429 and 5xx.
Waits grow exponentially with full jitter, and a ``Retry-After`` from the centre (seconds, a
fraction, an HTTP date, repeated: :func:`parse_retry_after`) is honoured instead. A
:class:`RetryBudget` shared by one client refuses retries once too many have failed recently
(botocore's retry quota): during an outage the client fails fast instead of multiplying the
load. Every attempt is signed afresh and reuses the operation's Idempotency-Key, so retrying a
write is safe.

For tests, :func:`set_testing` removes the waits (stamina's idea) while keeping the attempts.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["RetryBudget", "RetryPolicy", "is_testing", "parse_retry_after", "set_testing"]

_TESTING = False


def set_testing(enabled: bool = True) -> None:
    """Turn retry waits off (``True``) or back on, process-wide."""
    global _TESTING
    _TESTING = enabled


def is_testing() -> bool:
    return _TESTING


def parse_retry_after(value: str | Sequence[str] | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (RFC 9110 §10.2.3), as servers send it in practice.

    Args:
        value: the field's value, or every field line of it (``response.headers.get_list``).
        now: the time an HTTP date is measured from (defaults to the current time).

    Accepted, leniently: delta-seconds (``120``), a decimal fraction (``1.5``, which some
    servers send), an HTTP date in any of the three forms RFC 9110 §5.6.7 names (IMF-fixdate,
    RFC 850, asctime), surrounding whitespace or quotes, and the field repeated — on separate
    lines or joined with commas by a proxy (``120, 120``). When it says several things, the
    longest wait is taken (the server asked for at least that much). A date in the past is 0 s.
    Answers ``None`` when nothing in it can be read (the caller's own backoff applies).
    """
    if value is None:
        return None
    lines = [value] if isinstance(value, str) else list(value)
    waits = [w for line in lines for w in _retry_after_line(line, now or datetime.now(UTC))]
    return max(waits) if waits else None


_DELTA = re.compile(r"^\d+(?:\.\d*)?$|^\.\d+$")


def _retry_after_line(line: str, now: datetime) -> list[float]:
    text = line.strip().strip('"').strip()
    if not text:
        return []
    whole = _retry_after_value(text, now) if text.count(",") <= 1 else None  # a date has one comma at most
    if whole is not None:
        return [whole]
    # a proxy may join repeated fields with commas; a date has a comma of its own, so try dates first
    parts = [p.strip().strip('"').strip() for p in text.split(",")]
    waits: list[float] = []
    i = 0
    while i < len(parts):
        pair = _retry_after_value(f"{parts[i]}, {parts[i + 1]}", now) if i + 1 < len(parts) else None
        if pair is not None:
            waits.append(pair)
            i += 2
            continue
        single = _retry_after_value(parts[i], now)
        if single is not None:
            waits.append(single)
        i += 1
    return waits


def _retry_after_value(text: str, now: datetime) -> float | None:
    if _DELTA.match(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    if not any(c.isalpha() for c in text):
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class RetryBudget:
    """A token bucket shared by one client's requests.

    Each retry costs ``retry_cost`` tokens (a timeout costs ``timeout_cost``), each success
    returns ``success_refund`` up to the capacity. With no tokens left, retries are refused.

    The last ``reserve`` tokens are kept for priority requests — the event feed
    (:func:`sdk.events.list`), through which every application learns its progress: ordinary
    retries may not spend the bucket below it, so a flaky network whose failed submissions,
    payments and downloads spend the budget does not also silence the feed (under a fifth of
    requests failing, one application waited five minutes for news the centre had long sent).
    Refunds fill the reserve first, since ordinary retries cannot take from it. No reserve by
    default; the agent keeps a fifth of its budget for its feed (:mod:`agent.centre.client`).
    """

    def __init__(
        self,
        capacity: float = 100.0,
        *,
        retry_cost: float = 5.0,
        timeout_cost: float = 10.0,
        success_refund: float = 1.0,
        reserve: float = 0.0,
    ) -> None:
        if not 0 <= reserve <= capacity:
            raise ValueError(f"reserve must be between 0 and the capacity {capacity}, not {reserve}")
        self.capacity = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.success_refund = success_refund
        self.reserve = reserve
        self._tokens = capacity
        self._lock = threading.Lock()
        self.retries_granted = 0
        self.retries_refused = 0

    @property
    def tokens(self) -> float:
        return self._tokens

    def acquire(self, *, timeout: bool = False, priority: bool = False) -> bool:
        """Take the cost of one retry (``timeout``: of a retry after a timeout); ``False`` when refused.

        ``priority`` (the event feed) may spend the reserve; other retries leave it untouched.
        """
        cost = self.timeout_cost if timeout else self.retry_cost
        floor = 0.0 if priority else self.reserve
        with self._lock:
            if self._tokens - cost < floor:
                self.retries_refused += 1
                return False
            self._tokens -= cost
            self.retries_granted += 1
            return True

    def refund(self) -> None:
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + self.success_refund)


@dataclass
class RetryPolicy:
    """How a client retries.

    Args:
        max_attempts: attempts in all, the first included.
        initial_backoff: the first wait's upper bound, in seconds.
        max_backoff: no computed wait exceeds this.
        max_retry_after: a ``Retry-After`` longer than this is not waited for; the error is raised.
        budget: shared by every request of one client; ``None`` for no budget.
        sleep: called instead of waiting (tests pass a recorder); ``None`` waits for real
            (``time.sleep`` / ``asyncio.sleep``) unless :func:`set_testing` is on.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0
    budget: RetryBudget | None = field(default_factory=RetryBudget)
    sleep: Callable[[float], None] | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.max_backoff, self.initial_backoff * (2 ** (attempt - 1)))
        return self.rng.uniform(0, ceiling)

    @classmethod
    def none(cls) -> RetryPolicy:
        """No retries at all."""
        return cls(max_attempts=1, budget=None)
