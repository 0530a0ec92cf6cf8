"""The directory where the processes of one `serve` or `worker` command keep their metrics.

`serve --workers N` runs N web processes on one port and a worker runs a pool of processes:
each counts in a file of its own in this directory (prometheus-client's multiprocess mode),
and a scrape adds the files up, so that whichever process answers, it answers for all of them,
and the counts of a pool process that died and was replaced are not lost.

prometheus-client reads `PROMETHEUS_MULTIPROC_DIR` when it is first imported, so this runs
before anything imports it; the processes a command starts inherit the variable. This module
imports nothing but the standard library for that reason.

Each command's directory is named after its process id, under one directory per user and
machine in the temporary directory. It is removed when the command exits normally; a command
that was killed (or that a signal ended, as uvicorn re-raises the one that stopped it) leaves
its directory behind, and the next command to start removes the directories of processes
that no longer run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> str:
    """The directory this command's processes count in: `PROMETHEUS_MULTIPROC_DIR` when
    whoever started the command set it (`serve` does, for the worker it runs beside the
    receiver, so that its /metrics counts the worker's work too), else a new, empty one of
    its own."""
    given = os.environ.get(VARIABLE)
    if given:
        os.makedirs(given, exist_ok=True)
        return given
    if "prometheus_client" in sys.modules:
        raise RuntimeError(f"{VARIABLE} must be set before prometheus_client is imported")
    parent = parent_dir()
    parent.mkdir(mode=0o700, exist_ok=True)
    remove_dead(parent)
    path = parent / str(os.getpid())
    shutil.rmtree(path, ignore_errors=True)  # left by an earlier process of the same id
    path.mkdir(mode=0o700)
    os.environ[VARIABLE] = str(path)
    owner = os.getpid()

    def remove() -> None:
        # A forked child (a prefork pool process) inherits this hook: only the owner removes.
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return str(path)


def parent_dir() -> Path:
    """Where the commands of this user on this machine keep their directories."""
    return Path(tempfile.gettempdir()) / f"voucherhook-metrics-{os.getuid()}-{_host()}"


def remove_dead(parent: Path) -> list[Path]:
    """Remove the directories under `parent` of commands that no longer run; those removed."""
    removed = []
    for child in parent.iterdir():
        if child.name.isdigit() and int(child.name) != os.getpid() and not _runs(int(child.name)):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _host() -> str:
    """This machine's name, fit for a file name: containers that share a temporary directory
    do not share process ids."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())[:64]
