"""The Jinja2 environment for notifications: an operator's directory first, then ours."""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

BUILT_IN = Path(__file__).parent / "templates"


def environment(override: Path | None = None) -> Environment:
    """Templates named like the built-in ones (`email/redemption.succeeded.txt.j2`, …) in
    `override` replace them one by one."""
    paths = [override, BUILT_IN] if override else [BUILT_IN]
    return Environment(
        loader=ChoiceLoader([FileSystemLoader(str(path)) for path in paths if path]),
        undefined=StrictUndefined,
        autoescape=False,  # plain text mail and chat messages, never HTML
        keep_trailing_newline=True,
    )
