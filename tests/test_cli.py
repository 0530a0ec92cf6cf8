"""The command line as an operator meets it: one clear line and a non-zero exit on failure."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from sqlalchemy import inspect

from models.db import schema
from models.db.engine import make_engine
from tests.support.processes import base_env, voucherhook
from tests.support.services import free_port, postgres_database


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(voucherhook(*args), env=env, capture_output=True, text=True, timeout=60)


def test_missing_secret_stops_with_one_line_naming_it() -> None:
    env = base_env("sqlite:///unused.db", None)
    del env["VOUCHERIFY_WEBHOOK_SECRET"]

    result = run(["serve"], env)

    assert result.returncode == 2
    assert result.stderr.startswith("voucherhook: VOUCHERIFY_WEBHOOK_SECRET is not set")
    assert result.stderr.count("\n") == 1


def test_malformed_redis_url_stops_with_one_line_naming_it() -> None:
    env = base_env("sqlite:///unused.db", "localhost:6379")

    result = run(["worker"], env)

    assert result.returncode == 2
    assert result.stderr == "voucherhook: REDIS_URL must look like redis://host or rediss://host\n"


def test_migrate_creates_the_schema_and_is_idempotent() -> None:
    with postgres_database() as url:
        first = run(["migrate"], base_env(url, None))
        again = run(["migrate"], base_env(url, None))
        engine = make_engine(url)
        tables = inspect(engine).get_table_names()
        current = schema.current(engine)
        engine.dispose()

    assert first.returncode == 0, first.stderr
    assert first.stdout == f"schema upgraded from nothing to revision {schema.head()}\n"
    assert again.stdout == f"schema is up to date (revision {schema.head()})\n"
    assert "events" in tables
    assert current == schema.head()


def test_serve_on_an_unmigrated_postgres_database_says_to_migrate() -> None:
    with postgres_database() as url:
        result = run(["serve", "--no-worker"], base_env(url, "redis://127.0.0.1:6379/0"))

    assert result.returncode == 1
    assert "has no schema" in result.stderr
    assert "run `voucherhook migrate`" in result.stderr


def test_unreachable_database_is_one_line_with_the_password_hidden() -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/voucherhook"

    result = run(["migrate"], base_env(url, None))

    assert result.returncode == 1
    assert result.stderr.startswith("voucherhook: database postgresql://app:***@127.0.0.1:1/")
    assert "hunter2" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_send_to_nowhere_is_one_clear_line() -> None:
    from tests.support.payloads import REDEMPTION, example_path

    url = f"http://127.0.0.1:{free_port()}/webhooks/voucherify"
    result = run(
        ["send", str(example_path(REDEMPTION)), "--url", url], base_env("sqlite:///x", None)
    )

    assert result.returncode == 1
    assert result.stderr.startswith(f"voucherhook: could not POST to {url}: ")
    assert result.stderr.count("\n") == 1


HEAVY = ("sqlalchemy", "alembic", "celery", "kombu", "starlette", "uvicorn", "pydantic", "rich")


def imported_by(args: list[str], env: dict[str, str]) -> tuple[set[str], str]:
    """The top-level packages a real `voucherhook ARGS` run imports (python -X importtime)."""
    result = subprocess.run(
        [*voucherhook()[:-2], "-X", "importtime", *voucherhook()[-2:], *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return names, result.stdout


def test_help_and_version_import_no_framework() -> None:
    env = base_env("sqlite:///unused.db", None)
    for args in (["--help"], ["--version"], ["events", "--help"]):
        names, out = imported_by(args, env)
        assert out.startswith(("usage: voucherhook", "voucherhook ")), out
        assert not names & set(HEAVY), (args, names & set(HEAVY))


def test_read_only_commands_need_no_secret_and_events_list_imports_no_celery(
    tmp_path: Path,
) -> None:
    env = base_env(f"sqlite:///{tmp_path / 'voucherhook.db'}", None)
    assert run(["migrate"], env).returncode == 0
    del env["VOUCHERIFY_WEBHOOK_SECRET"]
    for args in (
        ["events", "list"],
        ["ledger", "balances"],
        ["loyalty", "v_none"],
        ["notifications", "list"],
        ["events", "show", "nothing"],
    ):
        result = run(args, env)
        assert "VOUCHERIFY_WEBHOOK_SECRET" not in result.stderr, (args, result.stderr)
        assert result.returncode in (0, 1), (args, result.stderr)
    names, out = imported_by(["events", "list"], env)
    assert out == "no events match\n"
    assert not names & {"celery", "kombu", "alembic", "starlette", "uvicorn"}, names


def test_version_is_the_installed_distribution_s() -> None:
    import importlib.metadata

    result = run(["--version"], base_env("sqlite:///unused.db", None))

    assert result.returncode == 0
    assert result.stdout == f"voucherhook {importlib.metadata.version('voucherhook')}\n"


def commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every command and subcommand the parser knows, as argument tuples."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found.extend(commands(sub, (*prefix, name)))
    return found


def test_help_gives_every_command_one_line_on_an_80_column_terminal() -> None:
    from workers.cli import _parser

    env = {**base_env("sqlite:///unused.db", None), "COLUMNS": "80"}
    every = commands(_parser())
    assert len(every) > 15
    for command in [(), *{c[:-1] for c in every if len(c) > 1}]:
        shown = run([*command, "--help"], env).stdout.splitlines()
        assert all(len(line) <= 80 for line in shown), shown
        for name in [c[-1] for c in every if c[:-1] == command]:
            [line] = [line for line in shown if line.split()[:1] == [name]]
            described = line.split(maxsplit=1)[1:]
            assert described and len(described[0]) > 10, (command, name, line)


def test_every_command_s_help_opens_with_what_it_does() -> None:
    from workers.cli import _parser

    env = {**base_env("sqlite:///unused.db", None), "COLUMNS": "80"}
    for command in commands(_parser()):
        shown = run([*command, "--help"], env)
        assert shown.returncode == 0, (command, shown.stderr)
        usage, description = shown.stdout.split("\n\n")[:2]
        assert usage.startswith(f"usage: voucherhook {' '.join(command)}"), usage
        assert description[0].isupper() and description.rstrip().endswith("."), description
