"""What a worker process needs at hand: its settings and a database engine of its own."""

from __future__ import annotations

import os

from sqlalchemy import Engine

from models.db import make_engine
from models.settings import Settings


class Runtime:
    """Holds one engine per process: a forked child must never reuse its parent's sockets."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None
        self._pid = 0

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)
            self._engine = make_engine(self.settings.database_url)
            self._pid = os.getpid()
        return self._engine
