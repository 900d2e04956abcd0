"""Concurrency limits of workflows: ``@wf.workflow(concurrency=N, concurrency_key=fn)``.

At most ``N`` runs of the workflow (per key, when ``concurrency_key`` is given) are
started and not yet ended at once, across every worker of the world; a sleeping or
waiting run counts. The others stay ``pending``, with no turn due, and start in priority
(``start(..., priority=N)``, higher first), then start order. The limit is a lock of the
world (:mod:`durably.worlds.locks`) that a run asks for in the commit that creates it and
gives back in the commit that ends it, so it survives every crash.

Each key has its own permits and its own queue, so a backlog of one key never holds up
another: a run of a quiet key is admitted as soon as it is started, whatever waits
elsewhere, and admitted runs are claimed in the order they became due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError
from .locks import check_limit
from .worlds.locks import admission_key

__all__ = ["Concurrency", "check_priority"]


@dataclass(frozen=True, slots=True)
class Concurrency:
    """A workflow's concurrency limit: ``limit`` runs at once, per ``key_fn(*args,
    **kwargs)`` when given (called once, at start)."""

    limit: int
    key_fn: Callable[..., Any] | None = None

    @classmethod
    def of(
        cls, workflow: str, limit: object, key_fn: Callable[..., Any] | None
    ) -> Concurrency | None:
        """The limit of ``@wf.workflow(concurrency=limit, concurrency_key=key_fn)``.

        Raises:
            ConfigurationError: ``limit`` is not a whole number of at least 1, or a key
                function is given without a limit, or is not callable.
        """
        if limit is None:
            if key_fn is not None:
                raise ConfigurationError(
                    f"workflow {workflow!r} has a concurrency_key but no concurrency limit: "
                    "add concurrency=N (how many runs per key at once)"
                )
            return None
        n = check_limit(limit, f"concurrency of workflow {workflow!r}")
        if key_fn is not None and not callable(key_fn):
            raise ConfigurationError(
                f"concurrency_key of workflow {workflow!r} must be a function of the "
                f"workflow's arguments returning a string, got {key_fn!r}"
            )
        return cls(n, key_fn)

    def key(
        self, namespace: str, workflow: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str:
        """The lock key a new run with these arguments is admitted by.

        Raises:
            ConfigurationError: the key function does not return a string.
        """
        if self.key_fn is None:
            return admission_key(namespace, workflow, None)
        key = self.key_fn(*args, **kwargs)
        if not isinstance(key, str):
            raise ConfigurationError(
                f"concurrency_key of workflow {workflow!r} returned {key!r} "
                f"({type(key).__name__}); it must return a string"
            )
        return admission_key(namespace, workflow, key)

    def admission(self, workflow: str) -> Callable[..., tuple[str, int]]:
        """``(namespace, args, kwargs) -> (lock key, limit)``: how a child run of the
        workflow (started from another workflow's body) is admitted."""

        def admit(namespace: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, int]:
            return self.key(namespace, workflow, args, kwargs), self.limit

        return admit


def check_priority(priority: object) -> int:
    """``start(..., priority=)`` as an int.

    Raises:
        ConfigurationError: it is not a whole number.
    """
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigurationError(
            f"priority must be a whole number (higher starts first, default 0), got {priority!r}"
        )
    return priority
