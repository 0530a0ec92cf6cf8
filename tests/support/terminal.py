"""A command run as a person runs it: its stdout and stderr on a pseudo-terminal of a given
width, as a terminal emulator gives them."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """What a person reads: no colour or cursor codes, no carriage returns."""
    return ESCAPES.sub("", text).replace("\r", "")


class OnTerminal:
    """A child whose stdout and stderr are one pseudo-terminal `columns` wide."""

    def __init__(self, args: list[str], env: dict[str, str], columns: int = 80) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        self.process = subprocess.Popen(
            args,
            env={**env, "TERM": "xterm-256color"},
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self._master = master
        self._seen = b""

    def read(self, until: Callable[[str], bool], timeout: float) -> str:
        """What it wrote (as `plain` text) once `until(text)` holds, it exits, or time is up."""
        end = time.monotonic() + timeout
        while not until(self.text) and time.monotonic() < end:
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if not ready:
                if self.process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            self._seen += chunk
        return self.text

    @property
    def text(self) -> str:
        return plain(self._seen.decode("utf-8", "replace"))

    def finish(self, timeout: float = 60, sig: int | None = None) -> int:
        """Send `sig` (if given), read to the end, and answer the exit status."""
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        self.read(lambda _text: False, timeout)
        try:
            return self.process.wait(5)
        finally:
            os.close(self._master)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


def on_terminal(args: list[str], env: dict[str, str], columns: int = 80) -> tuple[int, str]:
    """Run a short command on a terminal; its exit status and what it showed."""
    child = OnTerminal(args, env, columns)
    try:
        return child.finish(60), child.text
    finally:
        child.kill()
