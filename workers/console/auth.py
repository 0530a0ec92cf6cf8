"""Who may use the console: the holder of VOUCHERHOOK_ADMIN_TOKEN, by a session cookie (a
browser, after the login form) or by `Authorization: Bearer` (a script).

The session is stateless, so any number of web processes accept it: the cookie is
`issued.nonce.mac`, the mac an HMAC-SHA256 keyed by the admin token, so changing the token
ends every session. The CSRF token of a session is another HMAC of its nonce, put in every
form and checked on every POST a cookie authenticates (a Bearer request carries no ambient
credential and needs none). Tokens and macs are compared in constant time.

The cookie is HttpOnly, SameSite=Strict, scoped to /console, and Secure unless the console is
served over plain http to a loopback address (127.0.0.0/8, ::1, localhost): a browser keeps a
Secure cookie only from https, and on loopback the cookie never leaves the machine. Over plain
http to any other address the login form refuses, naming why: the token would cross the
network in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from receiver.limits import Throttled

log = structlog.get_logger(__name__)

COOKIE = "voucherhook_console"
SESSION_SECONDS = 12 * 3600
"""A session lasts a working day; then the login form again."""
LOGIN_BODY_BYTES = 4096
"""A login form is a token and a path: anything longer is refused unread."""
FORM_BODY_BYTES = 16384
"""An action's form (a CSRF token, a filter, a few ids)."""
PREFIX = "/console"


class BodyTooLarge(Exception):
    pass


@dataclass(frozen=True)
class Access:
    """An authenticated request: by a session (whose CSRF token forms carry) or by Bearer."""

    csrf: str | None
    """None for a Bearer request: it needs no CSRF token."""


class Auth:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self._refused = Throttled(lambda **fields: log.warning("console_unauthorized", **fields))

    def _mac(self, purpose: str, value: str) -> str:
        assert self.token is not None
        message = f"{purpose}:{value}".encode()
        return hmac.new(self.token.encode(), message, hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())

    def new_session(self, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        nonce = secrets.token_urlsafe(16)
        return f"{issued}.{nonce}.{self._mac('session', f'{issued}.{nonce}')}"

    def access(self, request: Request) -> Access | None:
        """The request's access, or None when it has neither a valid session nor the token."""
        if self.token is None:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(given.strip()):
            return Access(csrf=None)
        cookie = request.cookies.get(COOKIE, "")
        if len(cookie) > 200 or cookie.count(".") != 2:
            return None
        issued, nonce, mac = cookie.split(".")
        if not hmac.compare_digest(
            mac.encode(), self._mac("session", f"{issued}.{nonce}").encode()
        ):
            return None
        if not issued.isdigit() or time.time() - int(issued) > SESSION_SECONDS:
            return None
        return Access(csrf=self._mac("csrf", nonce))

    def refused(self, request: Request) -> Response:
        """No access: a browser's GET goes to the login form, anything else is a 401; with no
        admin token configured, a 403 says how to turn the console on."""
        if self.token is None:
            return JSONResponse(
                {
                    "status": "forbidden",
                    "error": "the console is off: set VOUCHERHOOK_ADMIN_TOKEN (at least 16 "
                    "characters, e.g. `openssl rand -hex 32`) and restart",
                },
                status_code=403,
            )
        self._refused(path=request.url.path)
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(
                f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303
            )
        return JSONResponse(
            {
                "status": "unauthorized",
                "error": "missing or wrong admin token: log in at /console/login, or send "
                "`Authorization: Bearer <token>` with the value of VOUCHERHOOK_ADMIN_TOKEN",
            },
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def csrf_ok(self, access: Access, form: dict[str, str]) -> bool:
        if access.csrf is None:
            return True
        return hmac.compare_digest(form.get("csrf", "").encode(), access.csrf.encode())


def cookie_is_secure(request: Request) -> bool | None:
    """Whether the session cookie is marked Secure; None when it cannot be set safely
    (plain http to an address that is not loopback)."""
    if request.url.scheme == "https":
        return True
    return False if is_loopback(request.url.hostname or "") else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def set_session(response: Response, value: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path=PREFIX,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console path, never another site."""
    if (
        target
        and target.startswith(PREFIX + "/")
        and not any(c in target for c in ("\\", "\n", "\r"))
    ):
        return target
    return PREFIX + "/"


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """An url-encoded form, read up to `limit` bytes (then BodyTooLarge): before the login
    the body is a stranger's, so its size and the work on it are bounded."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs[:64])
