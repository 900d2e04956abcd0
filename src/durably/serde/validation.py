"""Validation against annotations: pydantic ``TypeAdapter`` (lax mode), cached per annotation."""

from __future__ import annotations

import inspect
import types
import typing
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ..errors import SerializationError
from .tags import type_name

__all__ = ["adapter_for", "validate"]

_NO_VALIDATION: tuple[Any, ...] = (inspect.Parameter.empty, Any, object)
_ADAPTERS: dict[Any, Any] = {}
_ADAPTERS_BY_ID: dict[int, tuple[Any, Any]] = {}


def adapter_for(annotation: Any) -> Any:
    """A cached ``pydantic.TypeAdapter`` for ``annotation``, or ``None`` for no validation.

    ``None`` is returned for missing/``Any``/``object`` annotations, string or forward
    references (they cannot be resolved here; resolve them with ``typing.get_type_hints``
    first), and anything pydantic cannot build a validator for.
    """
    if annotation is None or any(annotation is n for n in _NO_VALIDATION):
        return None
    try:
        return _ADAPTERS[annotation]
    except KeyError:
        adapter = _build_adapter(annotation)
        _ADAPTERS[annotation] = adapter
        return adapter
    except TypeError:  # unhashable annotation (e.g. Annotated with unhashable metadata)
        hit = _ADAPTERS_BY_ID.get(id(annotation))
        if hit is not None and hit[0] is annotation:
            return hit[1]
        adapter = _build_adapter(annotation)
        _ADAPTERS_BY_ID[id(annotation)] = (annotation, adapter)
        return adapter


def _build_adapter(annotation: Any) -> Any:
    if isinstance(annotation, (str, typing.ForwardRef)):
        return None
    try:
        from pydantic import TypeAdapter

        adapter = TypeAdapter(annotation)
    except Exception:
        return None
    if getattr(adapter, "pydantic_complete", True) is False:
        return None
    return adapter


_NONE_TYPE = type(None)
# A value of exactly one of these types is its own validation (and pydantic would refuse
# a Decimal('Infinity') or NaN that encode() stores: its Decimal is finite by default).
_EXACT = frozenset({str, int, float, bool, bytes, Decimal, datetime, date, time, timedelta, UUID})


def validate(value: Any, annotation: Any, *, where: str) -> Any:
    """Validate/convert ``value`` against ``annotation`` (pydantic, lax mode).

    A no-op for missing/``Any`` annotations and for annotations pydantic cannot handle.

    Raises:
        SerializationError: the value does not fit the annotation; names ``where``.
    """
    if annotation is None or annotation is inspect.Parameter.empty or annotation is Any:
        return value
    # The common cases need no pydantic round trip (this runs on every step call).
    if annotation is _NONE_TYPE:
        if value is None:
            return None
    elif annotation in _EXACT and type(value) is annotation:
        return value
    adapter = adapter_for(annotation)
    if adapter is None:
        return value
    try:
        return adapter.validate_python(value)
    except Exception as e:
        errors = getattr(e, "errors", None)
        if callable(errors):
            try:
                detail = _describe_errors(errors(include_url=False))
            except Exception:
                detail = str(e)
        elif type(e).__module__.startswith("pydantic"):
            return value  # a schema problem, not a value problem: no validation
        else:
            detail = f"{type(e).__name__}: {e}"
        raise SerializationError(
            f"{where} does not match its annotation {_annotation_name(annotation)}: {detail}"
        ) from None


def _describe_errors(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        loc = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in err["loc"])
        parts.append(f"{'value' + loc}: {err['msg']} (got {_short(err.get('input'))})")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "; ".join(parts)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _annotation_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias):
        return type_name(annotation)
    return repr(annotation)
