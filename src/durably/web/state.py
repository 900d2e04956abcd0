"""What the dashboard's pages (:mod:`.views`) and actions (:mod:`.actions`) share: the
:class:`Dashboard` (world, registry, templates, secrets, one-time messages) and small
helpers on requests. Both import this module and neither imports :mod:`.app`, which
assembles their routes: so the three import in one direction only.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..agent_steps import agent_step_kind, agent_summary
from ..control import Control
from ..crypto import KeyRing, Sealer, is_sealed, resolve_keyring
from ..errors import DecryptionError, DurablyError
from ..registry import Workflows
from ..worlds import World, key_policy, open_world
from ..worlds.encrypted import EncryptedWorld
from .payloads import Decryption
from .security import new_secret
from .sessions import DecryptSessions
from .timeline import human_duration

__all__ = ["Dashboard", "dashboard", "fmt_time", "now", "redirect", "relative", "root"]

HERE = Path(__file__).parent


class Dashboard:
    """What the pages and actions share: the world, the registry, templates, secrets."""

    def __init__(
        self,
        registry: Workflows,
        *,
        owns_registry: bool,
        encryption_key: str | bytes | None = None,
    ) -> None:
        self.registry = registry
        self.owns_registry = owns_registry
        self.encryption_key = encryption_key
        self.world_url = registry.world_url
        self.csrf = new_secret()
        self._world: World | None = None
        self._sealed: World | None = None
        self._lock: asyncio.Lock | None = None
        self._flashes: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.sessions = DecryptSessions()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            {
                "time": fmt_time,
                "dur": human_duration,
                "since": lambda t, t0: "+" + human_duration((t or t0) - t0),
                "compact_json": lambda d: json.dumps(d, separators=(",", ":"), default=str),
                "ago": relative,
                "type_name": lambda name: str(name).rsplit(":", 1)[-1],
                "short": lambda text, n=140: text if len(text) <= n else text[: n - 1] + "…",
            }
        )
        self.env.globals["csrf"] = self.csrf
        # Steps of an agent run (durably.ai) shown as what they are: model, tool, ...
        self.env.globals["agent_kind"] = agent_step_kind
        self.env.globals["agent_summary"] = agent_summary

    async def world(self) -> World:
        """The world as stored (opened on first use; the app may be mounted elsewhere)."""
        if self._world is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._world is None:
                    world = open_world(self.world_url)
                    await world.open()
                    self._world = world
        return self._world

    async def writer_for(self, run_id: str) -> World:
        """The world to write payloads of ``run_id`` through: sealed like the run's own
        payloads (its input), so the dashboard never downgrades an encrypted run nor
        encrypts for workers that hold no key. Reading through it decrypts in memory,
        which the actions use only to copy an input, never to show it.

        Raises:
            ConfigurationError, DecryptionError: the run is encrypted and no key is at hand.
        """
        raw = await self.world()
        first = await raw.read_events(run_id, after_seq=0, limit=1)
        if not first or not is_sealed(first[0].payload):
            return raw
        if not self.owns_registry:
            return await self.registry.open()  # the application's own key
        if self._sealed is None:
            self._sealed = cast(World, EncryptedWorld(raw, Sealer(self.keyring())))
        return self._sealed

    async def control_for(self, run_id: str) -> Control:
        """The control plane writing about ``run_id`` (and runs made from it) through
        :meth:`writer_for`, waking the registry's embedded worker, if any."""
        return Control(
            await self.writer_for(run_id),
            worker=self.registry.worker,
            world_url=self.world_url,
            deployment=self.registry.deployment,
        )

    def keyring(self) -> KeyRing:
        """The key ring that opens this world's payloads, found as the CLI finds it: the
        dashboard's key (``durably web --key``, ``create_app(encryption_key=)``; for a
        registry given to :func:`create_app`, its own), else ``$DURABLY_ENCRYPTION_KEY``,
        else the world's default: the key file beside an SQLite database (never created
        here), an in-process key for ``memory://``.

        Raises:
            DecryptionError: no key is at hand; the message says why.
        """
        key = self.encryption_key if self.owns_registry else self.registry.encryption_key
        if key is True:
            key = None
        if key is False:
            raise DecryptionError("the registry has encryption off (encryption_key=False)")
        env = os.environ.get("DURABLY_ENCRYPTION_KEY")
        if not key and not env:
            try:
                policy = key_policy(self.world_url)  # the world says where its key lives
            except DurablyError as e:
                raise DecryptionError(f"no key: {e}") from None
            path = policy.path
            if policy.source == "file" and path is not None and not path.exists():
                raise DecryptionError(
                    f"no key: neither --key nor $DURABLY_ENCRYPTION_KEY is set, and there is "
                    f"no key file {path}"
                )
        try:
            ring = resolve_keyring(self.world_url, key)
        except DurablyError as e:
            raise DecryptionError(f"no key: {e}") from None
        if ring is None:
            raise DecryptionError("no key: $DURABLY_ENCRYPTION_KEY is set to off")
        return ring

    def session_decryption(self, request: Request) -> Decryption | None:
        """What opens the payloads of the runs granted to ``request``'s session by an
        audited decrypt (see :mod:`durably.web.sessions`); ``None`` when none is, or the
        key is no longer at hand."""
        granted = self.sessions.granted(request)
        if not granted:
            return None
        try:
            return Decryption(Sealer(self.keyring()), runs=granted)
        except DecryptionError:
            return None

    def key_problem(self) -> str | None:
        """Why payloads cannot be decrypted here (``None``: they can)."""
        try:
            self.keyring()
        except DecryptionError as e:
            return str(e)
        return None

    async def close(self) -> None:
        """Close the world (and the registry when the dashboard made it)."""
        if self._world is not None:
            await self._world.close()
            self._world = None
            self._sealed = None
        if self.owns_registry:
            await self.registry.aclose()

    def render(
        self, request: Request, name: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        """Render template ``name`` (autoescaped) with ``context``."""
        context.setdefault("flash", self.take_flash(request))
        html = self.env.get_template(name).render(
            request=request,
            world_url=self.world_url,
            root=root(request),
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def flash_redirect(self, url: str, kind: str, text: str) -> RedirectResponse:
        """Redirect to ``url`` (after a POST) and show ``text`` once there."""
        key = secrets.token_urlsafe(8)
        self._flashes[key] = (kind, text)
        while len(self._flashes) > 200:
            self._flashes.popitem(last=False)
        sep = "&" if "?" in url else "?"
        return RedirectResponse(f"{url}{sep}flash={key}", status_code=303)

    def take_flash(self, request: Request) -> tuple[str, str] | None:
        """The message a redirect left for this page, once."""
        key = request.query_params.get("flash")
        return self._flashes.pop(key, None) if key else None


def fmt_time(ts: float | None) -> str:
    """A timestamp as UTC text to the millisecond."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def relative(ts: float | None, at: float | None = None) -> str:
    """A time relative to now (or ``at``): ``"12.0s ago"``, ``"in 25.00s"``."""
    if ts is None:
        return "-"
    at = time.time() if at is None else at
    if ts <= at:
        return human_duration(at - ts) + " ago"
    return "in " + human_duration(ts - at)


def now() -> float:
    """The current time (one place, for tests)."""
    return time.time()


def dashboard(request: Request) -> Dashboard:
    """The dashboard serving ``request``."""
    dash: Dashboard = request.app.state.dashboard
    return dash


def root(request: Request) -> str:
    """Where the dashboard is mounted (``""`` at the top)."""
    return str(request.scope.get("root_path", ""))


def redirect(url: str) -> Response:
    """A 303 to ``url``."""
    return RedirectResponse(url, status_code=303)
