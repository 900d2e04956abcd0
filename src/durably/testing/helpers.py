"""Helpers for tests of workflows: resume a hook once a run waits on it, read a stream."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..errors import HookNotFoundError
from ..hooks import BaseHook, get_hook_by_token

if TYPE_CHECKING:
    from ..registry import Workflows
    from ..run import Run

__all__ = ["read_stream", "resume_when_waiting"]


async def resume_when_waiting(
    payload: BaseHook,
    token: str,
    *,
    registry: Workflows | None = None,
    timeout: float = 10.0,
) -> str:
    """Resume the hook holding ``token`` with ``payload`` as soon as a run waits on it
    (a test usually starts the run and resumes before the run got that far).

    Under :func:`~durably.testing.time_skipping`, a timeout raced against the hook fires
    as soon as the registry is idle: open ``with clock.paused():`` around the start and
    this call to resume before it.

    Returns:
        The run id of the hook.

    Raises:
        TimeoutError: no run created the hook within ``timeout`` seconds (real time).
    """
    until = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            await get_hook_by_token(token, registry=registry)
        except HookNotFoundError:
            if time.monotonic() >= until:
                raise TimeoutError(
                    f"no run waited on a hook with token {token!r} within {timeout}s; "
                    "check the token, and that the run got that far (durably inspect run)"
                ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        return await payload.resume(token, registry=registry)


async def read_stream(
    run: Run,
    namespace: str | None = None,
    *,
    type: Any = None,
    committed: bool = False,
    timeout: float = 30.0,
) -> list[Any]:
    """Every value of a run's stream, in order, once the stream is closed (or the run
    ended without opening it).

    Raises:
        TimeoutError: the stream was not closed within ``timeout`` seconds.
    """

    async def collect() -> list[Any]:
        return [v async for v in run.readable(0, namespace, type, committed=committed)]

    return await asyncio.wait_for(collect(), timeout)
