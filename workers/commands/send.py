"""`voucherhook send`: sign payloads (files, or a built-in sample) the way Voucherify does and
POST them, by default to the local receiver."""

from __future__ import annotations

import argparse
import json

import httpx

from workers import sample_events
from workers.commands import CommandError
from workers.settings import Settings
from workers.sign_and_post import post

WEBHOOK_PATH = "/webhooks/voucherify"


def local_url(settings: Settings) -> str:
    """The webhook URL of a receiver started here by `voucherhook serve` with these settings."""
    host = settings.host
    if host in ("", "0.0.0.0"):  # every address: this machine's is one of them
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}{WEBHOOK_PATH}"


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    url: str = args.url or local_url(settings)
    if args.sample is not None:
        if args.event_type:
            raise CommandError(
                "--type goes with FILE: a sample knows its type "
                "(--raw sends it without an envelope, the type in the URL)"
            )
        sent = sample_events.deliveries(args.sample, raw=args.raw, target_url=url)
        bodies = [(d.encoded(), d.event_type if args.raw else None) for d in sent]
    else:
        if args.raw:
            raise CommandError("--raw goes with --sample: for a raw FILE, name its --type")
        # Every file is read before the first is sent: a typo in the last sends nothing.
        missing = [str(path) for path in args.files if not path.is_file()]
        if missing:
            raise CommandError(f"{', '.join(missing)}: no such file; nothing was sent")
        bodies = [(path.read_bytes(), args.event_type) for path in args.files]
    ok = True
    for body, event_type in bodies:
        try:
            response = post(body, url, settings.secrets[0], event_type)
        except httpx.HTTPError as exc:
            hint = "" if args.url else " (is `voucherhook serve` running? --url sends elsewhere)"
            raise CommandError(f"could not POST to {url}: {exc}{hint}") from None
        try:
            shown = json.dumps(response.json())
        except ValueError:
            shown = response.text[:500]
        print(f"{response.status_code} {shown}", flush=True)
        ok = ok and response.is_success
    return 0 if ok else 1
