"""`voucherhook send`: sign a payload (a file, or a built-in sample) the way Voucherify does
and POST it."""

from __future__ import annotations

import argparse
import json

import httpx

from workers import sample_events
from workers.commands import CommandError
from workers.settings import Settings
from workers.sign_and_post import post


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    if args.sample is not None:
        if args.event_type:
            raise CommandError(
                "--type goes with FILE: a sample knows its type "
                "(--raw sends it without an envelope, the type in the URL)"
            )
        sent = sample_events.deliveries(args.sample, raw=args.raw, target_url=args.url)
        bodies = [(d.encoded(), d.event_type if args.raw else None) for d in sent]
    else:
        if args.raw:
            raise CommandError("--raw goes with --sample: for a raw FILE, name its --type")
        if not args.file.is_file():
            raise CommandError(f"{args.file}: no such file")
        bodies = [(args.file.read_bytes(), args.event_type)]
    ok = True
    for body, event_type in bodies:
        try:
            response = post(body, args.url, settings.secrets[0], event_type)
        except httpx.HTTPError as exc:
            raise CommandError(f"could not POST to {args.url}: {exc}") from None
        try:
            shown = json.dumps(response.json())
        except ValueError:
            shown = response.text[:500]
        print(f"{response.status_code} {shown}")
        ok = ok and response.is_success
    return 0 if ok else 1
