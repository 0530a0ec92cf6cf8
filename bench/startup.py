"""Benchmark: how long `voucherhook` takes to start (docs/performance.md: `--help` under 0.3 s,
no framework imported before the arguments are parsed).

For each command: the median wall time of `--runs` runs, with compiled bytecode (a warm
`__pycache__`) and without (`PYTHONDONTWRITEBYTECODE=1` and an empty `PYTHONPYCACHEPREFIX`,
as in containers that set it: every module is compiled from source), beside the baseline of
a bare `python -c pass` in the same run; then, from `python -X importtime`, the imports that
took longest and whether any framework was imported.

`events list` runs on a fresh SQLite file, migrated first.

Run:  uv run python -m bench.startup [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("sqlalchemy", "alembic", "celery", "kombu", "starlette", "uvicorn", "pydantic")
COMMANDS = {
    "--help": ["--help"],
    "--version": ["--version"],
    "events list": ["events", "list"],
    "ledger balances": ["ledger", "balances"],
}


def timed(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def imports(args: list[str], env: dict[str, str]) -> tuple[list[tuple[int, str]], set[str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "workers.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    top: list[tuple[int, str]] = []
    packages = set()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, raw = line.split("|")
        name = raw.strip()
        # A module imported at the top level has one space before its name; nested, more.
        if cumulative.strip().isdigit() and not raw.startswith("  "):
            top.append((int(cumulative), name))
        packages.add(name.split(".")[0])
    return sorted(top, reverse=True)[:4], packages & set(FRAMEWORKS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/voucherhook.db",
            "VOUCHERHOOK_LOG_LEVEL": "WARNING",
        }
        env.pop("VOUCHERIFY_WEBHOOK_SECRET", None)
        cli = [sys.executable, "-m", "workers.cli"]
        subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, capture_output=True, check=True)
        cold = {**env, "PYTHONDONTWRITEBYTECODE": "1"}
        print(f"# bench.startup  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
              f"{os.cpu_count()} cores  Python {platform.python_version()}")  # fmt: skip
        base_warm = timed([sys.executable, "-c", "pass"], env, args.runs)
        print(f"baseline `python -c pass`: {base_warm * 1000:.0f} ms")
        print(f"{'command':<16} {'bytecode ms':>12} {'no bytecode ms':>15}  frameworks imported")
        for name, command in COMMANDS.items():
            warm = timed([*cli, *command], env, args.runs)
            with tempfile.TemporaryDirectory() as empty:
                source = timed([*cli, *command], {**cold, "PYTHONPYCACHEPREFIX": empty}, args.runs)
            top, frameworks = imports(command, env)
            print(
                f"{name:<16} {warm * 1000:>12.0f} {source * 1000:>15.0f}  "
                f"{', '.join(sorted(frameworks)) or 'none'}"
            )
            for micros, module in top:
                print(f"{'':<18}{module} {micros / 1000:.0f} ms")


if __name__ == "__main__":
    main()
