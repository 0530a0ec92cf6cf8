"""The peak resident set of a command, with the processes it starts, and only theirs.

`os.wait4`'s `ru_maxrss` for a child is not the child's alone: Linux carries the resident set
of the process that started it over the `exec` (fork or vfork, then exec, records the
starter's high-water mark in the child). A command started from a test run or a benchmark
that holds 500 MB reports at least 500 MB, whatever it uses itself, and a check that its
memory stays flat would compare two copies of the starter's size.

So the command is started from a small process of its own: this file run by the interpreter
(it imports nothing of the project's), which waits for the command and writes its figures to
a file. What the command reports then starts from that process's own few megabytes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Measured:
    returncode: int
    peak_mb: float
    """The largest resident set of the command or of a process it waited for."""
    cpu_s: float
    """User and system CPU of the command and the processes it waited for."""


def run(command: list[str], **popen: Any) -> Measured:
    """Run `command` (keyword arguments as `subprocess.Popen`'s: env, cwd, stdout, stderr)
    and wait for it. In a session of its own, killed whole if the wait is interrupted."""
    with tempfile.TemporaryDirectory(prefix="vh-peak-") as tmp:
        figures = Path(tmp) / "figures.json"
        child = subprocess.Popen(
            [sys.executable, __file__, str(figures), *command], start_new_session=True, **popen
        )
        try:
            child.wait()
        except BaseException:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise
        if not figures.exists():
            raise RuntimeError(f"{command[0]} was not measured (exit code {child.returncode})")
        shown = json.loads(figures.read_text())
    return Measured(child.returncode, shown["peak_mb"], shown["cpu_s"])


def _measure(figures: Path, command: list[str]) -> int:
    child = subprocess.Popen(command)
    _pid, status, usage = os.wait4(child.pid, 0)
    shown = {"peak_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}
    figures.write_text(json.dumps(shown))
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(_measure(Path(sys.argv[1]), sys.argv[2:]))
