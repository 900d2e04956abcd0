"""Riding out a world that cannot take writes for a while (disk full, a write lock held
by another process): back off, and say so once rather than on every attempt.

A :class:`~durably.errors.WorldUnavailableError` means nothing of the write was stored,
so the worker retries the same write until it goes through: the run goes on as soon as
there is room again, instead of a lease later. Each part of the worker that writes (the
commits, the claim loop, the heartbeat) keeps an :class:`Outage` of its own.
"""

from __future__ import annotations

import logging
import time

from ..errors import WorldUnavailableError

__all__ = ["Outage"]

_log = logging.getLogger("durably.worker")

#: The first retry comes soon (a lock held briefly); later ones back off to RETRY_MAX,
#: which bounds how long a run waits after the world can take writes again.
RETRY_START = 0.05
RETRY_MAX = 2.0
#: While an outage lasts, it is logged again at most this often (seconds).
LOG_EVERY = 60.0


class Outage:
    """Backoff and bounded logging while the world cannot take ``what``'s writes.

    Args:
        what: what is being retried, for the log (``"committing"``, ``"claiming"``).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.failures = 0  # failed attempts of the outage in progress (0: none)
        self.total_failures = 0
        self._since = 0.0
        self._logged_at = 0.0
        self._delay = RETRY_START

    def failed(self, error: WorldUnavailableError) -> float:
        """Note a failed attempt; returns how long to wait before the next one."""
        now = time.monotonic()
        if self.failures == 0:
            self._since = now
            self._delay = RETRY_START
        self.failures += 1
        self.total_failures += 1
        if self.failures == 1 or now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            _log.warning(
                "durably worker: %s is waiting for the world (attempt %d, retrying with "
                "backoff, logged again at most every %ds): %s",
                self.what,
                self.failures,
                int(LOG_EVERY),
                error,
            )
        delay = self._delay
        self._delay = min(self._delay * 2, RETRY_MAX)
        return delay

    def recovered(self) -> None:
        """Note a write that went through (ends the outage in progress, if any)."""
        if self.failures:
            _log.warning(
                "durably worker: %s goes on: the world took the write after %d failed "
                "attempts over %.1fs",
                self.what,
                self.failures,
                time.monotonic() - self._since,
            )
            self.failures = 0
