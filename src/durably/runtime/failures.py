"""Errors as recorded in the log, and rebuilt where the workflow awaits them.

A step's final error is stored as its class's module and qualified name, its message and
its traceback as text. Inside the workflow it is raised again with the same class name and
message: the original class when it is already imported in this process (never importing
anything because of what a payload says), otherwise a :class:`~durably.errors.StepError`
subclass made on the fly with the same name. The remote traceback is attached as a note.

An error's cause (``raise FatalError(...) from TypeError(...)``, or the error being
handled when it was raised) is stored with it, class, message and all, a few levels deep,
and rebuilt as the ``__cause__`` of the rebuilt error: a workflow that catches a step's
error, and :class:`~durably.errors.WorkflowRunFailedError`, see the whole chain.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from ..errors import StepError

__all__ = ["encode_error", "error_type_name", "rebuild_error"]

_MAX_TB = 64 * 1024
#: How many causes deep an error's chain is kept.
_MAX_CAUSES = 8


def error_type_name(exc: BaseException) -> str:
    """The class name stored in plaintext beside an error (for tables and filters)."""
    return type(exc).__name__


def encode_error(exc: BaseException) -> bytes:
    """Serialize ``exc`` (class, message, traceback text, and its causes) as a payload."""
    return json.dumps(_error_doc(exc, _MAX_CAUSES), separators=(",", ":")).encode()


def _cause_of(exc: BaseException) -> BaseException | None:
    """What ``exc`` was raised from (``from``), or the error being handled when it was
    raised (unless ``from None`` suppressed it)."""
    if exc.__cause__ is not None:
        return exc.__cause__
    if exc.__suppress_context__:
        return None
    return exc.__context__


def _error_doc(exc: BaseException, depth: int) -> dict[str, Any]:
    cls = type(exc)
    remote = getattr(exc, "remote_traceback", "")
    tb = remote or "".join(traceback.format_exception(exc))
    if len(tb) > _MAX_TB:
        tb = tb[: _MAX_TB // 2] + "\n... (traceback cut) ...\n" + tb[-_MAX_TB // 2 :]
    doc = {
        "module": getattr(cls, "__durably_module__", cls.__module__),
        "qualname": cls.__qualname__,
        "message": _message(exc),
        "traceback": tb,
    }
    if all(isinstance(a, str | int | float | bool) or a is None for a in exc.args):
        doc["args"] = list(exc.args)
    cause = _cause_of(exc)
    if cause is not None and depth > 0:
        inner = _error_doc(cause, depth - 1)
        inner["traceback"] = ""  # the outer traceback text already shows the chain
        doc["cause"] = inner
    return doc


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the error
        return repr(exc)


def decode_error_doc(data: bytes | None) -> dict[str, Any]:
    """The stored error document (``module``, ``qualname``, ``message``, ``traceback``)."""
    if not data:
        return {"module": "builtins", "qualname": "Exception", "message": "", "traceback": ""}
    doc: dict[str, Any] = json.loads(data)
    return doc


_made: dict[tuple[str, str], type[StepError]] = {}


def rebuild_error(data: bytes | None) -> BaseException:
    """An exception equal in class name and message to the recorded one, with its
    recorded causes as its ``__cause__`` chain."""
    return _rebuild(decode_error_doc(data))


def _rebuild(doc: dict[str, Any]) -> BaseException:
    module, qualname = str(doc.get("module", "")), str(doc.get("qualname", "Exception"))
    message, tb = str(doc.get("message", "")), str(doc.get("traceback", ""))
    cls = _resolve(module, qualname)
    exc: BaseException | None = None
    if cls is not None:
        candidates: list[tuple[Any, ...]] = [(message,)]
        if isinstance(doc.get("args"), list):
            candidates.insert(0, tuple(doc["args"]))
        for args in candidates:
            try:
                made = cls.__new__(cls)
                BaseException.__init__(made, *args)
                if str(made) == message:
                    exc = made
                    break
            except Exception:
                continue
    if exc is None:
        key = (module, qualname)
        stand_in = _made.get(key)
        if stand_in is None:
            name = qualname.rsplit(".", 1)[-1]
            stand_in = type(name, (StepError,), {"__module__": "durably.errors"})
            stand_in.__durably_module__ = module  # type: ignore[attr-defined]
            stand_in.__qualname__ = qualname
            _made[key] = stand_in
        exc = stand_in(message)
    try:
        exc.remote_traceback = tb  # type: ignore[attr-defined]
    except Exception:
        pass
    if tb:
        exc.add_note("Remote traceback (where the error was first raised):\n" + tb.rstrip())
    if isinstance(doc.get("cause"), dict):
        exc.__cause__ = _rebuild(doc["cause"])
    return exc


def _resolve(module: str, qualname: str) -> type[BaseException] | None:
    mod = sys.modules.get(module)
    if mod is None:
        return None
    obj: Any = mod
    for part in qualname.split("."):
        if part == "<locals>":
            return None
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return obj
    return None
