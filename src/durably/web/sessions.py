"""Decrypted sessions: after one audited decrypt, a run's pages show plaintext to that
browser for the rest of its session.

The decrypt action (:mod:`durably.web.actions`) appends a ``data_decrypted`` record to
the run and then grants the browser's session the run: a random session id in an
``HttpOnly``, ``SameSite=Strict`` cookie names, in this process's memory only, the runs
granted and until when (:data:`GRANT_SECONDS` at most, or until the browser closes, or
until "Hide plaintext"). Every page of a granted run (the run page and its live parts,
call pages, stream tails, its row in lists) then opens its payloads with the dashboard's
key. Nothing is stored in the browser but the id, and a restart of the dashboard ends
every grant.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["DECRYPT_COOKIE", "GRANT_SECONDS", "DecryptSessions"]

DECRYPT_COOKIE = "durably_web_decrypt"
#: How long a decrypt lasts at most (the browser closing ends it sooner).
GRANT_SECONDS = 3600.0
#: Sessions remembered at once (the oldest are forgotten first).
MAX_SESSIONS = 1000


class DecryptSessions:
    """The runs each browser session was granted plaintext of, until when."""

    def __init__(self, ttl: float = GRANT_SECONDS) -> None:
        self.ttl = ttl
        self._grants: OrderedDict[str, dict[str, float]] = OrderedDict()

    def session_of(self, request: Request) -> str | None:
        """The request's session id, if the cookie names a known session."""
        sid = request.cookies.get(DECRYPT_COOKIE)
        return sid if sid and sid in self._grants else None

    def granted(self, request: Request, *, at: float | None = None) -> dict[str, float]:
        """The runs granted to the request's session, with when each grant ends."""
        sid = self.session_of(request)
        if sid is None:
            return {}
        at = time.time() if at is None else at
        runs = self._grants[sid]
        for run_id in [r for r, until in runs.items() if until <= at]:
            del runs[run_id]
        return dict(runs)

    def grant(self, request: Request, response: Response, run_ids: Iterable[str]) -> float:
        """Grant ``run_ids`` to the request's session (a new one when it has none; the
        cookie is set on ``response``); returns when the grant ends."""
        sid = self.session_of(request) or secrets.token_urlsafe(24)
        until = time.time() + self.ttl
        runs = self._grants.setdefault(sid, {})
        for run_id in run_ids:
            runs[run_id] = until
        self._grants.move_to_end(sid)
        while len(self._grants) > MAX_SESSIONS:
            self._grants.popitem(last=False)
        response.set_cookie(
            DECRYPT_COOKIE,
            sid,
            path=str(request.scope.get("root_path", "")) or "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return until

    def revoke(self, request: Request, run_id: str) -> bool:
        """End the session's grant of ``run_id``; whether there was one."""
        sid = self.session_of(request)
        if sid is None:
            return False
        return self._grants[sid].pop(run_id, None) is not None
