"""The names the stored format shares between encoding, decoding and validation."""

from __future__ import annotations

import sys

__all__ = ["HEX_FROM", "TAG", "pydantic_base", "type_name"]

TAG = "$t"
"""The reserved key that marks a JSON object as a tagged value."""

#: From this size on, bytes are stored as hex rather than base64: a third larger, but
#: four times faster to read back (CPython decodes base64 a byte at a time).
HEX_FROM = 16 * 1024


def type_name(t: type) -> str:
    """The name of ``t`` for messages: ``int`` for builtins, else ``module.qualname``."""
    if t.__module__ == "builtins":
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"


def pydantic_base() -> type | None:
    """``pydantic.BaseModel`` if pydantic is already imported, else ``None`` (never imports)."""
    mod = sys.modules.get("pydantic.main")
    base = getattr(mod, "BaseModel", None) if mod is not None else None
    return base if isinstance(base, type) else None
