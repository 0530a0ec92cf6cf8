"""The console's address as `voucherhook serve` prints it on start."""

from __future__ import annotations

from urllib.parse import quote


def console_url(host: str, port: int, token: str) -> str:
    """The line that opens the console logged in: the token rides in the URL's fragment,
    which a browser sends to no server (nor in a Referer), and the login page reads it."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    fragment = quote(token, safe="")
    return f"    open the console: http://{shown}:{port}/console/login#token={fragment}"
