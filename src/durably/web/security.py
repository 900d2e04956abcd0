"""Who may use the dashboard, and how its actions are protected from other sites.

* **Token.** With a token (``durably web --token`` or ``$DURABLY_WEB_TOKEN``; required on
  any host other than loopback), every request needs it: an ``Authorization: Bearer``
  header, or the cookie that opening any page with ``?token=...`` sets once.
* **Host check.** Without a token the dashboard answers only requests addressed to a
  loopback name (``127.0.0.1``, ``localhost``, ``[::1]``), so a web page elsewhere cannot
  read it through a DNS name that points at 127.0.0.1 (DNS rebinding).
* **Cross-site requests.** Actions are POST forms that carry a per-process secret in a
  hidden field, which must match a ``SameSite=Strict`` cookie holding the same secret; a
  request whose ``Origin`` (or ``Sec-Fetch-Site``) says it comes from another site is
  refused as well.
* **Headers.** A strict Content-Security-Policy (scripts and styles only from the
  dashboard itself), no framing, no caching, no content sniffing. Templates escape
  everything they render (Jinja2 autoescape).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "AUTH_COOKIE",
    "CSRF_COOKIE",
    "LOOPBACK_HOSTS",
    "Guard",
    "csrf_problem",
    "is_loopback",
]

AUTH_COOKIE = "durably_web_auth"
CSRF_COOKIE = "durably_web_csrf"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to bind or a Host header's name) is loopback."""
    h = host.strip().lower().strip("[]")
    return h in LOOPBACK_HOSTS or h.startswith("127.")


def _hostname(host_header: str) -> str:
    h = host_header.strip().lower()
    if h.startswith("["):  # [::1]:8233
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _session_value(token: str) -> str:
    """What the auth cookie holds: derived from the token, not the token itself."""
    return hmac.new(token.encode(), b"durably-web-session", hashlib.sha256).hexdigest()


class Guard:
    """ASGI middleware: the token, the host check and the security headers.

    Args:
        app: the dashboard.
        token: when set, every request must present it.
        allowed_hosts: Host names accepted without a token (default: loopback names);
            ``None`` accepts any (for an app that mounts the dashboard behind its own auth).
        csrf_secret: the per-process secret of the action forms (set as a cookie).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        csrf_secret: str,
        allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
    ) -> None:
        self.app = app
        self.token = token or None
        self.session = _session_value(token) if token else ""
        self.csrf_secret = csrf_secret
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a refused request itself; pass the rest on, adding the security headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is None and self.token is not None:
            given = request.query_params.get("token")
            if given is not None:
                refusal = self._login(request, given)
        target = self.app if refusal is None else refusal
        set_csrf = request.cookies.get(CSRF_COOKIE) != self.csrf_secret
        secure = request.url.scheme == "https"

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    if key not in headers:
                        headers[key] = value
                if set_csrf:
                    cookie = f"{CSRF_COOKIE}={self.csrf_secret}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append("set-cookie", cookie + ("; Secure" if secure else ""))
            await send(message)

        await target(scope, receive, send_guarded)

    def _refusal(self, request: Request) -> Response | None:
        if self.token is None:
            if self.allowed_hosts is not None:
                host = _hostname(request.headers.get("host", ""))
                if host not in self.allowed_hosts and not host.startswith("127."):
                    return PlainTextResponse(
                        f"durably web: this dashboard serves loopback only, not {host!r}; "
                        "to serve other hosts, start it with a token (--token)",
                        status_code=403,
                    )
            return None
        if "token" in request.query_params:
            return None  # _login decides
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(
            auth[7:].strip().encode(), self.token.encode()
        ):
            return None
        cookie = request.cookies.get(AUTH_COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), self.session.encode()):
            return None
        return PlainTextResponse(
            "durably web: this dashboard needs its token. Open it once with ?token=TOKEN "
            "(as `durably web` printed it), or send the header `Authorization: Bearer TOKEN`.",
            status_code=401,
        )

    def _login(self, request: Request, given: str) -> Response:
        if not hmac.compare_digest(given.encode(), (self.token or "").encode()):
            return PlainTextResponse("durably web: wrong token", status_code=401)
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + ("?" + urlencode(rest) if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            AUTH_COOKIE,
            self.session,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response


def csrf_problem(request: Request, form_secret: str | None, secret: str) -> str | None:
    """Why a POST must be refused as a possible cross-site request, or ``None``."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin.rstrip("/") != expected:
            return f"cross-site request refused (Origin {origin} is not {expected})"
    elif origin == "null":
        return "cross-site request refused (Origin: null)"
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not form_secret or not hmac.compare_digest(form_secret.encode(), secret.encode()):
        return "the form's security token is missing or stale: reload the page and try again"
    if not hmac.compare_digest(cookie.encode(), secret.encode()):
        return "the security cookie is missing: reload the page and try again"
    return None


def new_secret() -> str:
    """A fresh per-process secret for the action forms."""
    return secrets.token_urlsafe(32)
