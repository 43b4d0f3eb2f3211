"""The one retry policy of every CRM call: capped, randomised, logged.

A request is sent again only when its failure resolved to RETRY or REFRESH_SESSION in
:data:`sync.crm.errors.ERROR_RULES`, and only while both caps hold: at most
``max_attempts`` sends and at most ``max_seconds`` since the first. The wait grows
exponentially from ``initial_wait`` with full jitter (so many workers that failed
together do not retry together) and never exceeds ``max_wait``. A line is logged
before every sleep. A non-idempotent request (a create) is not sent again after an
*ambiguous* failure, one where the CRM may have applied it before the answer was lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import tenacity

from sync.crm.errors import CrmError

logger = logging.getLogger("sync.crm")


def should_retry(exc: BaseException, *, idempotent: bool = True) -> bool:
    """True when ``exc`` is worth another attempt of the same request.

    Args:
        exc: what the attempt raised.
        idempotent: sending the request twice has the effect of sending it once.
    """
    if not isinstance(exc, CrmError) or not exc.retryable:
        return False
    return idempotent or not exc.ambiguous


@dataclass(frozen=True)
class RetryPolicy:
    """Caps and backoff of the retry policy.

    Attributes:
        max_attempts: sends of one request, the first included.
        max_seconds: time from the first send after which no new attempt starts.
        initial_wait: scale of the first backoff, in seconds.
        max_wait: upper bound of a single backoff, in seconds.
        sleep: how to wait; tests pass a recorder so that they never sleep.
    """

    max_attempts: int = 5
    max_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_seconds < 0 or self.initial_wait < 0 or self.max_wait < 0:
            raise ValueError("retry times must not be negative")

    def retrying(self, *, idempotent: bool = True) -> tenacity.Retrying:
        """A tenacity controller applying this policy; it re-raises the last error."""
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: should_retry(e, idempotent=idempotent)),
            stop=(
                tenacity.stop_after_attempt(self.max_attempts)
                | tenacity.stop_after_delay(self.max_seconds)
            ),
            wait=tenacity.wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait),
            sleep=self.sleep,
            before_sleep=tenacity.before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )


NO_RETRY = RetryPolicy(max_attempts=1)
"""A policy that sends each request once (tools that report failures themselves)."""
