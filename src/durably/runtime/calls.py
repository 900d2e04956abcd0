"""Arguments and results of workflow and step calls, as payloads.

A :class:`CallShape` is made once per decorated function: it binds call arguments to the
signature (so bad calls fail at the call site with the function's name), validates each
argument against its annotation on the way in, and rebuilds annotated types (dataclasses,
pydantic models, enums, tuples) when a recorded payload is read back.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from .. import serde

__all__ = ["CallShape"]

_EMPTY = inspect.Parameter.empty
_NO_ARGS = serde.encode({"a": [], "k": {}}, where="arguments")


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:
        # Unresolvable forward references: fall back to no validation, never crash.
        return {}


class CallShape:
    """How calls to one function are bound, validated, stored and read back."""

    def __init__(self, fn: Callable[..., Any], *, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        self.signature = inspect.signature(fn)
        hints = _hints(fn)
        self.annotations: dict[str, Any] = {
            p: hints.get(p, _EMPTY) for p in self.signature.parameters
        }
        self.return_annotation: Any = hints.get("return", _EMPTY)
        self.takes_nothing = not self.signature.parameters
        self._checked = {p for p, a in self.annotations.items() if _worth_checking(a)}
        # Made once: every step's result is encoded and decoded with these.
        self._result_checked = _worth_checking(self.return_annotation)
        self._result_where = f"the return value of {kind} {name!r}"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        """Bind a call or raise ``TypeError`` that names the function."""
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(
                f"{self.kind} {self.name!r} called with arguments that do not match its "
                f"signature {self.name}{self.signature}: {e}"
            ) from None

    def encode_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """Bind, validate and serialize the arguments of a call."""
        if self.takes_nothing:
            if args or kwargs:
                self.bind(args, kwargs)
            return _NO_ARGS
        bound = self.bind(args, kwargs)
        if self._checked:
            for pname in self._checked:
                if pname in bound.arguments:
                    bound.arguments[pname] = serde.validate(
                        bound.arguments[pname],
                        self.annotations[pname],
                        where=f"argument {pname!r} of {self.kind} {self.name!r}",
                    )
        return serde.encode(
            {"a": list(bound.args), "k": bound.kwargs},
            where=f"the arguments of {self.kind} {self.name!r}",
        )

    def decode_args(self, data: bytes | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Read recorded arguments back, rebuilding annotated types."""
        if not data or data == _NO_ARGS:
            return (), {}
        doc = serde.decode(data, where=f"the arguments of {self.kind} {self.name!r}")
        args, kwargs = tuple(doc.get("a", ())), dict(doc.get("k", {}))
        if not self._checked:
            return args, kwargs
        bound = self.bind(args, kwargs)
        for pname in self._checked:
            if pname in bound.arguments:
                bound.arguments[pname] = serde.validate(
                    bound.arguments[pname],
                    self.annotations[pname],
                    where=f"argument {pname!r} of {self.kind} {self.name!r}",
                )
        return tuple(bound.args), dict(bound.kwargs)

    def encode_result(self, value: Any) -> bytes:
        """Serialize a return value (validated against the return annotation)."""
        where = self._result_where
        if self._result_checked:
            value = serde.validate(value, self.return_annotation, where=where)
        return serde.encode(value, where=where)

    def decode_result(self, data: bytes | None) -> Any:
        """Read a recorded return value back."""
        if data is None:
            return None
        ann = self.return_annotation if self._result_checked else None
        return serde.decode(data, ann, where=self._result_where)


def _worth_checking(annotation: Any) -> bool:
    return annotation is not _EMPTY and annotation is not Any and annotation is not object
