"""`voucherhook send`: sign a payload the way Voucherify does and POST it."""

from __future__ import annotations

import argparse
import json

import httpx

from models.settings import Settings
from workers.commands import CommandError
from workers.send import send


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    if not args.file.is_file():
        raise CommandError(f"{args.file}: no such file")
    try:
        response = send(args.file, args.url, settings.secrets[0], args.event_type)
    except httpx.HTTPError as exc:
        raise CommandError(f"could not POST to {args.url}: {exc}") from None
    try:
        shown = json.dumps(response.json())
    except ValueError:
        shown = response.text[:500]
    print(f"{response.status_code} {shown}")
    return 0 if response.is_success else 1
