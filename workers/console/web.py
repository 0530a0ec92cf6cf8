"""What every console page shares: the templates, the security headers, the guard that lets
only the admin token's holder in, and the forms' CSRF check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.amounts import money, of_asset, points
from models.console import age
from workers.console.auth import FORM_BODY_BYTES, Access, Auth, BodyTooLarge, read_form

HERE = Path(__file__).parent
TEMPLATES = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.globals.update(of_asset=of_asset, points=points, money=money, age=age)

HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # A login URL carrying the token must not leak through a Referer.
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Adds the console's headers to every response it sends, pages and refusals alike."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def render(
    request: Request,
    template: str,
    access: Access | None,
    /,
    *,
    http_status: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(
        request=request, csrf=access.csrf if access else None, signed_in=access, **context
    )
    return HTMLResponse(html, status_code=http_status)


Page = Callable[[Request, Access], Awaitable[Response]]
Action = Callable[[Request, Access, dict[str, str]], Awaitable[Response]]


def page(auth: Auth, handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint only the admin token's holder reaches."""

    async def endpoint(request: Request) -> Response:
        access = auth.access(request)
        if access is None:
            return auth.refused(request)
        return await handler(request, access)

    return endpoint


def action(auth: Auth, handler: Action) -> Callable[[Request], Awaitable[Response]]:
    """A state-changing endpoint: the token's holder, and a form carrying the session's CSRF
    token (a Bearer request needs none)."""

    async def endpoint(request: Request) -> Response:
        access = auth.access(request)
        if access is None:
            return auth.refused(request)
        try:
            form = await read_form(request, FORM_BODY_BYTES)
        except BodyTooLarge:
            return error(request, access, 413, f"the form is larger than {FORM_BODY_BYTES} bytes")
        if not auth.csrf_ok(access, form):
            return error(
                request,
                access,
                403,
                "the form's CSRF token is missing or wrong: nothing was changed. Reload the "
                "page and submit it again (a form from another site or an old session is "
                "refused)",
            )
        return await handler(request, access, form)

    return endpoint


def error(request: Request, access: Access | None, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", access, http_status=status, message=message)


async def in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Database work off the event loop: the receiver's deliveries never wait for a page."""
    return await run_in_threadpool(function, *args, **kwargs)
