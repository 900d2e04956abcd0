"""The retry policy of steps, in one place: how many attempts, how long between them, and
which errors are worth another attempt.

A step declares ``max_retries`` and ``retry_after`` (``@wf.step`` or ``durably.run_step``);
whatever it leaves out comes from :data:`DEFAULT_RETRY`. When an attempt fails, the worker
asks :meth:`RetryPolicy.next_attempt` whether (and when) the next one runs, records the
answer in the step's ``step_retrying`` fact (its ``retry_at``), and the world queues the
step's task for that time.
"""

from __future__ import annotations

from dataclasses import dataclass

from .durations import deadline
from .errors import FatalError, PayloadTooLargeError, RetryableError, SerializationError

__all__ = ["DEFAULT_RETRY", "NOT_RETRYABLE", "RetryPolicy"]

#: Errors no further attempt can fix: the step fails at once, whatever its retries left.
NOT_RETRYABLE: tuple[type[BaseException], ...] = (
    FatalError,
    SerializationError,
    PayloadTooLargeError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a step is retried.

    Attributes:
        max_retries: retries after the first attempt (3: up to 4 attempts).
        backoff: base of the exponential backoff, in seconds: after failed attempt n the
            next one runs ``backoff * 2**(n-1)`` seconds later.
        max_delay: the longest wait between two attempts the backoff reaches.
    """

    max_retries: int = 3
    backoff: float = 1.0
    max_delay: float = 300.0

    @classmethod
    def of(cls, max_retries: int, retry_after: float | None) -> RetryPolicy:
        """The policy of a step declared with these options (``retry_after=None``: the
        default backoff)."""
        if retry_after is None:
            return cls(max_retries, DEFAULT_RETRY.backoff, DEFAULT_RETRY.max_delay)
        return cls(max_retries, retry_after, DEFAULT_RETRY.max_delay)

    def may_run(self, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (the first is 1) may run at all."""
        return attempt <= self.max_retries + 1

    def delay(self, attempt: int) -> float:
        """Seconds between failed attempt ``attempt`` and the next, by backoff alone."""
        return min(self.backoff * float(2 ** (attempt - 1)), self.max_delay)

    def next_attempt(self, error: BaseException, attempt: int, now: float) -> float | None:
        """When the attempt after failed attempt ``attempt`` runs (epoch seconds), or
        ``None`` if there is none and the step fails.

        A :data:`NOT_RETRYABLE` error fails the step at once; so does the last attempt's
        error. A :class:`RetryableError` with ``retry_after`` runs the next attempt no
        sooner than that; any other error backs off exponentially (see :meth:`delay`).

        Raises:
            ConfigurationError: the ``retry_after`` of a ``RetryableError`` is not a
                duration or an aware datetime.
        """
        if isinstance(error, NOT_RETRYABLE) or not self.may_run(attempt + 1):
            return None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return deadline(error.retry_after, now)
        return now + self.delay(attempt)


#: The one default: 3 retries, backoff from 1 s doubling up to 5 minutes.
DEFAULT_RETRY = RetryPolicy()
