"""The directory where the processes of one `serve` or `worker` command keep their metrics.

`serve --workers N` runs N web processes on one port and a worker runs a pool of processes:
each counts in a file of its own in this directory (prometheus-client's multiprocess mode),
and a scrape adds the files up, so that whichever process answers, it answers for all of them,
and the counts of a pool process that died and was replaced are not lost.

prometheus-client reads `PROMETHEUS_MULTIPROC_DIR` when it is first imported, so this runs
before anything imports it; the processes a command starts inherit the variable. This module
imports nothing but the standard library for that reason.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> str:
    """The directory this command's processes count in: `PROMETHEUS_MULTIPROC_DIR` when
    whoever started the command set it (`serve` does, for the worker it runs beside the
    receiver, so that its /metrics counts the worker's work too), else a new, empty one of
    its own, removed when the command exits."""
    given = os.environ.get(VARIABLE)
    if given:
        os.makedirs(given, exist_ok=True)
        return given
    if "prometheus_client" in sys.modules:
        raise RuntimeError(f"{VARIABLE} must be set before prometheus_client is imported")
    path = tempfile.mkdtemp(prefix="voucherhook-metrics-")
    os.environ[VARIABLE] = path
    owner = os.getpid()

    def remove() -> None:
        # A forked child (a prefork pool process) inherits this hook: only the owner removes.
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path
