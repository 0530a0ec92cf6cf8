"""`voucherhook rebuild`: fold the log again, then show the state's digest before and after."""

from __future__ import annotations

import argparse
import time

from workers import output
from workers.commands import connect
from workers.rebuild import rebuild
from workers.settings import Settings
from workers.wiring import Runtime


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    engine = connect(settings)
    started = time.perf_counter()
    with output.progress() as progress:
        task = progress.add_task("rebuilding", total=None)
        result = rebuild(
            engine,
            Runtime(settings).config,
            lambda n: progress.advance(task, n),
            processes=args.processes,
        )
    seconds = time.perf_counter() - started
    same = result.before == result.after
    if args.json:
        output.print_json(
            {
                "events": result.events,
                "seconds": round(seconds, 3),
                "digest_before": result.before,
                "digest": result.after,
                "unchanged": same,
                "rows_written": result.written,
            }
        )
    else:
        print(f"rebuilt ledger and cards from {result.events} events in {seconds:.1f}s")
        print(f"digest before: {result.before}")
        print(f"digest after:  {result.after}")
        print(f"rows written:  {result.written}")
        print(
            "the rebuilt state equals the live state"
            if same
            else "the rebuilt state DIFFERS from the live state: the live state had drifted "
            "from the log (see `voucherhook ledger balances`); the rebuilt one is now in place"
        )
    return 0
