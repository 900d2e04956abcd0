"""Optional dependencies, checked before a feature that needs them is loaded.

The core (``import durably``, the SQLite and memory worlds, the CLI's demo, worker and
inspect) needs only the packages in ``[project.dependencies]``. The rest come with
extras: ``durably[postgres]`` (asyncpg, and orjson for its commits), ``durably[web]``
(starlette, uvicorn, jinja2: ``durably.http`` and the dashboard), ``durably[otel]``
(opentelemetry-api), ``durably[mcp]`` (the official MCP SDK: ``durably mcp``),
``durably[ai]`` (pydantic-ai-slim: ``durably.ai``).
"""

from __future__ import annotations

import importlib.util

from .errors import MissingExtraError

__all__ = ["EXTRAS", "require"]

# The import names each extra provides (pyproject.toml lists the distributions).
EXTRAS: dict[str, tuple[str, ...]] = {
    "postgres": ("asyncpg", "orjson"),
    "web": ("starlette", "uvicorn", "jinja2"),
    "otel": ("opentelemetry",),
    "mcp": ("mcp",),
    "ai": ("pydantic_ai",),
}


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` unless its modules are importable."""
    for module in EXTRAS[extra]:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(feature, extra, module)
