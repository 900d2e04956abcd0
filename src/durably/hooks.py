"""Hooks: a run waits, holding no compute, until the outside world resumes it.

    @dataclass
    class Approval(BaseHook):
        approved: bool

    @wf.workflow
    async def refund(order_id: str) -> bool:
        async with Approval.wait(token=f"refund:{order_id}") as hook:
            await send_email(hook.token)
            approval = await hook          # suspends until resumed
            return approval.approved

    await Approval(approved=True).resume("refund:o1")   # any process on the same world

Creating a hook is a durable call: its token is recorded, checked against every live
hook (``HookConflictError``) and indexed so that a resume from anywhere finds the run.
Each resume is a fact in the run's log; ``async for payload in hook`` receives many.

A token is a bearer secret: whoever holds it can resume the hook. The world indexes a
keyed digest of it (see :meth:`durably.crypto.Sealer.hook_digest`) and keeps the token
and the metadata only sealed in the ``hook_created`` payload, so that a reader of the
database cannot resume a hook. A plain hook is resumed by server code only;
``wait(webhook=True)`` makes a *webhook*, with a generated token, which the HTTP app
(``POST /hooks/{token}``, :mod:`durably.http`) may resume too::

    async with Approval.wait(webhook=True) as hook:
        await send_email(f"https://example.com/hooks/{hook.token}")
        approval = await hook
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import sys
from collections.abc import AsyncIterator, Generator
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from . import serde
from .errors import ConfigurationError, PayloadTooLargeError, SerializationError
from .registry import Workflows, default_registry
from .runtime.context import current_instance
from .worlds.base import HookRecord

__all__ = [
    "BaseHook",
    "HookWait",
    "get_hook_by_token",
    "hook_type_named",
    "resume_hook",
    "resume_webhook",
]

H = TypeVar("H", bound="BaseHook")


class BaseHook:
    """Base of hook payload types: subclass it as a dataclass or a pydantic model."""

    _types: ClassVar[dict[str, type[BaseHook]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        BaseHook._types[_type_key(cls)] = cls

    @classmethod
    def wait(
        cls: type[H],
        token: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        webhook: bool = False,
    ) -> HookWait[H]:
        """Create a hook inside a workflow body (use ``async with`` or ``await``).

        Args:
            token: the token resumers use; unguessable and generated when not given.
                Unique among live hooks.
            metadata: JSON data kept (encrypted) with the hook, returned by
                :func:`get_hook_by_token`.
            webhook: make it a webhook, which the HTTP app (``POST /hooks/{token}``)
                may resume; its token is always generated. A plain hook is resumed only
                by server code (``Hook(...).resume(token)``, :func:`resume_hook`).

        Raises:
            ConfigurationError: ``webhook=True`` with a ``token`` (a webhook's token
                must be unguessable: anyone who can reach the HTTP app may try it).
        """
        if webhook and token is not None:
            raise ConfigurationError(
                f"{cls.__name__}.wait(webhook=True) generates its token: a webhook can be "
                f"resumed by anyone who reaches the HTTP app, so its token must be "
                f"unguessable (got token={token!r}). Drop the token and send hook.token "
                "to whoever resumes it, or drop webhook=True to resume it from server "
                "code with your own token."
            )
        return HookWait(cls, token, metadata, webhook=webhook)

    async def resume(self, token: str, *, registry: Workflows | None = None) -> str:
        """Deliver this payload to the live hook holding ``token``; returns its run id.

        Server code may resume any hook, plain or webhook, of any namespace of the world.

        Raises:
            HookNotFoundError: no live hook holds the token (unknown, or disposed).
            SerializationError: a field does not fit the class (named in the message).
            PayloadTooLargeError: the encoded payload is over the registry's limit.
        """
        return await _deliver(self, token, registry)

    @classmethod
    def validate(cls: type[H], data: Any) -> H:
        """Build a payload from JSON-like data, validated against the class's fields.

        Raises:
            SerializationError: the data does not fit (names the problem).
        """
        return serde.validate(data, cls, where=f"the payload of hook type {cls.__name__!r}")  # type: ignore[no-any-return]


def _type_key(cls: type) -> str:
    """How a hook's payload type is recorded: ``module:qualname`` (two classes of one
    name in different modules are different types).

    A class defined in the module run as ``__main__`` is recorded under the name other
    processes import that module by, when Python knows it (``python -m pkg.mod``
    records ``pkg.mod``): a worker or the HTTP app that imports the module then finds
    the type. A plain script's classes stay ``__main__:...`` and are resolved by their
    qualified name (see :func:`hook_type_named`).
    """
    module = cls.__module__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        name = getattr(spec, "name", None)
        if name and name != "__main__":
            module = name
    return f"{module}:{cls.__qualname__}"


def hook_type_named(key: str) -> type[BaseHook] | None:
    """The hook payload type this process defines under the recorded ``key``, if any.

    A type recorded from a script run as ``__main__`` (``python app.py``) is looked up
    by its qualified name, when exactly one hook type of this process has it: the
    script's name as ``__main__`` means nothing to the HTTP app or a worker, which
    import it as ``app``.
    """
    cls = BaseHook._types.get(key)
    if cls is not None or not key.startswith("__main__:"):
        return cls
    qualname = key.partition(":")[2]
    found = {c for k, c in BaseHook._types.items() if k.partition(":")[2] == qualname}
    return found.pop() if len(found) == 1 else None


def _not_defined(token: str, key: str) -> ConfigurationError:
    if key.startswith("__main__:"):
        qualname = key.partition(":")[2]
        return ConfigurationError(
            f"hook {token!r} waits for a {qualname!r} payload defined in the script run as "
            f"__main__; this process defines no single hook type named {qualname!r} "
            "(none, or several). Import the script's module here, or better, define "
            f"{qualname} in an importable module that both processes import"
        )
    return ConfigurationError(
        f"hook {token!r} waits for a {key!r} payload, a type this process "
        "does not define; import the module that defines it where the hook is resumed"
    )


def _check_payload_type(cls: type) -> None:
    if not (dataclasses.is_dataclass(cls) or issubclass(cls, BaseModel)):
        raise ConfigurationError(
            f"hook type {cls.__name__!r} must be a dataclass (@dataclass) or a pydantic model "
            "(class X(BaseHook, BaseModel)) so its payload can be validated"
        )


class HookWait(Generic[H]):
    """A hook created by ``Hook.wait()`` inside a workflow body."""

    def __init__(
        self,
        cls: type[H],
        token: str | None,
        metadata: dict[str, Any] | None,
        *,
        webhook: bool = False,
    ) -> None:
        inst = current_instance()
        if inst is None:
            raise RuntimeError(
                f"{cls.__name__}.wait() works only inside a workflow body; to deliver a "
                f"payload from elsewhere use {cls.__name__}(...).resume(token)"
            )
        _check_payload_type(cls)
        meta = dict(metadata or {})
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as e:
            raise SerializationError(f"hook metadata must be JSON data: {e}") from None
        self.cls = cls
        self.metadata = meta
        self._loop = inst.loop
        self._inst = inst
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._queue: collections.deque[bytes | None] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._disposed = False
        self.webhook = webhook
        self.call, self.token = inst.call_hook(self, _type_key(cls), token, meta, webhook=webhook)

    # -- facts from the run's log ------------------------------------------------------

    def registered(self, error: BaseException | None) -> None:
        """The world answered the hook's creation: ``error`` is a conflict, or None."""
        if self._ready.done():
            return
        if error is None:
            self._ready.set_result(None)
        else:
            self._ready.set_exception(error)

    def received(self, payload: bytes | None) -> None:
        """A resume arrived from the log: queue its encoded payload for the body."""
        self._queue.append(payload)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- what the body does ------------------------------------------------------------

    async def _next(self) -> H:
        await asyncio.shield(self._ready)
        while not self._queue:
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        data = self._queue.popleft()
        return serde.decode(  # type: ignore[no-any-return]
            data or b"null", self.cls, where=f"a resume of hook {self.token!r}"
        )

    def __await__(self) -> Generator[Any, None, H]:
        return self._next().__await__()

    def __aiter__(self) -> AsyncIterator[H]:
        return self

    async def __anext__(self) -> H:
        return await self._next()

    async def __aenter__(self) -> HookWait[H]:
        await asyncio.shield(self._ready)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        """Release the token: later resumes get ``HookNotFoundError``."""
        if not self._disposed:
            self._disposed = True
            self._inst.dispose_hook(self.call, self.token)


async def _deliver(
    payload: BaseHook, token: str, registry: Workflows | None, hook: HookRecord | None = None
) -> str:
    reg = registry or default_registry()
    control = await reg.control()
    if hook is None:
        hook = await control.live_hook(token)
    name = _type_key(type(payload))
    if hook.hook_type != name and hook_type_named(hook.hook_type) is not type(payload):
        raise TypeError(
            f"hook {token!r} waits for a {_short(hook.hook_type)!r} payload "
            f"({hook.hook_type}), got a {_short(name)!r} ({name})"
        )
    where = f"the payload resuming hook {token!r}"
    # A dataclass does not check its fields when built: validate them, as the body
    # would receive them, before anything is recorded.
    data = serde.encode(_revalidated(payload), where=where)
    limit = reg.limits.max_payload_bytes
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"{where} is {len(data):,} bytes serialized, over the limit of {limit:,} bytes "
            "per payload; store large data elsewhere (object storage) and pass a reference"
        )
    return await control.resume_hook(hook, data)


def _revalidated(payload: BaseHook) -> BaseHook:
    cls = type(payload)
    if isinstance(payload, BaseModel):
        fields: Any = payload.model_dump()
    elif dataclasses.is_dataclass(payload):
        fields = dataclasses.asdict(payload)
    else:
        _check_payload_type(cls)
    return cls.validate(fields)


def _short(type_key: str) -> str:
    return type_key.rsplit(":", 1)[-1]


async def resume_hook(token: str, data: Any, *, registry: Workflows | None = None) -> str:
    """Resume the hook holding ``token`` with JSON-like ``data`` (the webhook path):
    validated against the hook's payload type when that type is defined in this process.

    Raises:
        HookNotFoundError: no live hook holds the token.
        SerializationError: the data does not fit the hook's payload type.
    """
    return await _resume(token, data, registry, webhook=False)


async def resume_webhook(token: str, data: Any, *, registry: Workflows | None = None) -> str:
    """Resume the *webhook* holding ``token`` with JSON-like ``data``: what the HTTP app
    does. Only a hook created with ``wait(webhook=True)`` by a run of the registry's
    namespace is found; any other is reported exactly as an unknown token, so that a
    caller learns nothing about hooks it may not resume. Runs of every deployment of
    the namespace are served (runs finish on the code that started them, while the app
    may already run a newer deployment).

    Raises:
        HookNotFoundError: no live webhook of this namespace holds the token.
        SerializationError: the data does not fit the hook's payload type.
        PayloadTooLargeError: the encoded payload is over the registry's limit.
    """
    return await _resume(token, data, registry, webhook=True)


async def _resume(token: str, data: Any, registry: Workflows | None, *, webhook: bool) -> str:
    reg = registry or default_registry()
    control = await reg.control()
    hook = await control.live_hook(
        token, namespace=reg.namespace if webhook else None, webhook=webhook
    )
    cls = hook_type_named(hook.hook_type)
    if cls is None:
        raise _not_defined(token, hook.hook_type)
    return await _deliver(cls.validate(data), token, reg, hook)


async def get_hook_by_token(token: str, *, registry: Workflows | None = None) -> HookRecord:
    """The live hook holding ``token``: its ``run_id``, ``metadata``, ``created_at``
    (the metadata is stored encrypted: this process must hold the world's key).

    Raises:
        HookNotFoundError: no live hook holds the token.
        DecryptionError: the hook's metadata does not decrypt with this process's key.
    """
    control = await (registry or default_registry()).control()
    return await control.reveal_hook(await control.live_hook(token))
