"""Every error durably raises, in one place.

Each message says what happened and what to do about it. Errors raised inside a step
and recorded in the log are rebuilt inside the workflow with the same class name and
message; see :func:`durably.runtime.failures.rebuild_error`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "DecryptionError",
    "DurablyError",
    "DurablyWarning",
    "FatalError",
    "ForkError",
    "HistoryError",
    "HookConflictError",
    "HookNotFoundError",
    "KeyFileMissingError",
    "MissingExtraError",
    "NonDeterminismError",
    "PayloadTooLargeError",
    "RetryableError",
    "RunCancelledError",
    "RunNotFoundError",
    "SandboxError",
    "SerializationError",
    "StepAbandonedError",
    "StepError",
    "StepNotRegisteredError",
    "StepTimeoutError",
    "WorkflowNotRegisteredError",
    "WorkflowRunFailedError",
    "WorldError",
    "WorldFullError",
    "WorldUnavailableError",
]


def redact_url(url: str) -> str:
    """A world URL without its password (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    creds, _, host = rest.partition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if ':' in creds else user}@{host}"


class DurablyError(Exception):
    """Base class of the errors durably itself raises."""


class FatalError(DurablyError):
    """Raise from a step to fail it at once, without further retries."""


class RetryableError(DurablyError):
    """Raise from a step to retry it, no sooner than ``retry_after``.

    Args:
        message: what went wrong.
        retry_after: a duration (``"10s"``, seconds, ``timedelta``) or an aware
            ``datetime``; ``None`` uses the step's backoff.
    """

    def __init__(self, message: str = "", *, retry_after: Any = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StepError(DurablyError):
    """Stands in for a step's error whose class cannot be found in this process.

    A subclass with the original class name is made on the fly, so ``type(e).__name__``
    and ``str(e)`` match what the step raised.
    """

    remote_traceback: str = ""


class StepTimeoutError(DurablyError, TimeoutError):
    """A step attempt ran longer than its ``timeout``."""


class StepAbandonedError(DurablyError, RuntimeError):
    """A step attempt that durably has already given up on tried to record something.

    The attempt ran past its ``timeout``, its run was cancelled, or its worker stopped:
    its outcome is already recorded, so nothing it writes afterwards (stream chunks,
    attributes) is. A ``def`` step's thread that outlives its attempt should check
    :func:`durably.step_cancelled` and return early.
    """


class WorkflowRunFailedError(DurablyError):
    """The run failed; ``cause`` is the error that failed it (rebuilt from the log)."""

    def __init__(self, run_id: str, cause: BaseException) -> None:
        super().__init__(f"run {run_id} failed: {type(cause).__name__}: {cause}")
        self.run_id = run_id
        self.cause = cause
        self.__cause__ = cause


class RunCancelledError(DurablyError):
    """The run was cancelled before it finished."""

    def __init__(self, run_id: str, reason: str | None = None) -> None:
        msg = f"run {run_id} was cancelled"
        if reason:
            msg += f": {reason}"
        super().__init__(msg)
        self.run_id = run_id
        self.reason = reason


class RunNotFoundError(DurablyError, LookupError):
    """No run with this id exists in the world."""

    def __init__(self, run_id: str, world: str = "") -> None:
        where = f" in world {redact_url(world)}" if world else ""
        super().__init__(
            f"no run with id {run_id!r}{where}; list runs with `durably inspect runs`"
            " and check that --world points at the database the run was started on"
        )
        self.run_id = run_id


class NonDeterminismError(DurablyError):
    """The workflow body made different calls on replay than the log recorded."""


class ForkError(DurablyError, ValueError):
    """A run cannot be forked as asked (the message says why and what to do)."""


class SerializationError(DurablyError, TypeError):
    """A value cannot be stored as a payload (or a stored payload cannot be read)."""


class PayloadTooLargeError(DurablyError):
    """A payload, or a run's payloads in total, is over the limit."""


class HookNotFoundError(DurablyError, LookupError):
    """No live hook has this token."""


class HookConflictError(DurablyError):
    """Another live hook already holds this token."""


class StepNotRegisteredError(DurablyError, LookupError):
    """A recorded step names a step this process has not registered."""


class WorkflowNotRegisteredError(DurablyError, LookupError):
    """A run names a workflow this process has not registered."""


class WorldError(DurablyError):
    """The world (storage backend) is misconfigured or failed."""


class WorldUnavailableError(WorldError):
    """The world cannot take a write for now (another process holds its write lock, its
    disk is full): nothing of the write was stored, and the same write may succeed later.
    The worker retries such writes with backoff until they go through."""


class WorldFullError(WorldUnavailableError):
    """The world's storage is full (disk full): nothing of the write was stored; free
    space (or give the database more room) and the same write goes through."""


class ConfigurationError(DurablyError, ValueError, TypeError):
    """A registry, decorator or command was given bad options (a bad value or a value of
    the wrong kind: it is both a ``ValueError`` and a ``TypeError``)."""


class SandboxError(DurablyError, RuntimeError):
    """A workflow body used something that cannot be replayed (threads, sockets, ...)."""


class DecryptionError(DurablyError):
    """A payload cannot be decrypted with the key given; nothing was changed."""


class MissingExtraError(DurablyError, ImportError):
    """A feature needs an optional part of durably that is not installed; the message
    names the extra to install (``pip install "durably[postgres]"``)."""

    def __init__(self, feature: str, extra: str, missing: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional dependencies of durably[{extra}], which are not "
            f"installed (no module named {missing!r}). Install them with: "
            f'pip install "durably[{extra}]"',
            name=missing,
        )


class DurablyWarning(UserWarning):
    """A likely mistake that durably cannot refuse outright: a workflow called as a plain
    function, a step call never awaited, the wall clock or global ``random`` read in a
    workflow body. The message names the line and what to use instead."""


class KeyFileMissingError(DecryptionError, ConfigurationError):
    """The key file of a database that holds encrypted payloads is missing: no new key is
    made beside data it could not read. Put the key file back, or give the key with
    ``encryption_key=`` or ``$DURABLY_ENCRYPTION_KEY``."""


class HistoryError(DurablyError, ValueError):
    """A file given as a run's history is not one (``durably inspect events RUN --export
    FILE`` writes them), or its workflow is not in the registry it is replayed against."""
