"""Errors of pydantic-ai that no retry of a step can fix fail the step at once.

durably retries a step unless its error is a :class:`~durably.errors.FatalError`; the
workflow then sees the step's error with its class and message. An error a retry cannot
fix (a misconfiguration, a model that keeps answering nonsense) is re-raised as an
instance of a class that is both its own class and ``FatalError``, under its own name, so
that the step fails at once and the workflow still catches the original class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic.errors import PydanticUserError
from pydantic_ai.exceptions import UnexpectedModelBehavior, UserError

from ..errors import FatalError

__all__ = ["fatal_for_step"]

_NOT_RETRYABLE: tuple[type[BaseException], ...] = (
    UserError,
    PydanticUserError,
    UnexpectedModelBehavior,
)

_fatal_classes: dict[type[BaseException], type[BaseException]] = {}


def _fatal_class(cls: type[BaseException]) -> type[BaseException]:
    made = _fatal_classes.get(cls)
    if made is None:
        made = type(cls.__name__, (cls, FatalError), {"__module__": cls.__module__})
        made.__qualname__ = cls.__qualname__
        _fatal_classes[cls] = made
    return made


@contextmanager
def fatal_for_step() -> Iterator[None]:
    """Re-raise a not-retryable pydantic-ai error so that the step fails at once."""
    try:
        yield
    except _NOT_RETRYABLE as exc:
        if isinstance(exc, FatalError):
            raise
        try:
            fatal = _fatal_class(type(exc)).__new__(_fatal_class(type(exc)))
            fatal.__dict__.update(exc.__dict__)
            fatal.args = exc.args
        except TypeError:  # a class that cannot be combined: keep it, retried
            raise exc from None
        raise fatal from exc
