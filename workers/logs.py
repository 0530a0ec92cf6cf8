"""Logging, via structlog, always to stderr: readable lines on a terminal, one JSON object per
line otherwise (`VOUCHERHOOK_LOG_FORMAT`: `auto`, `console` or `json`).

A command that prints a result (everything but `serve` and `worker`) is quiet: it logs errors
only, so its own output is not interleaved with log lines."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

import structlog

FORMATS = ("auto", "console", "json")

# Lines that say what every message did, which our own event lines say better (with the
# event ids), or that only a Celery developer reads; their warnings and errors still show.
_CHATTY = (
    "alembic",
    "httpx",
    "celery.worker.strategy",  # "Task … received", once per message
    "celery.app.trace",  # "Task … succeeded in 0.07s: None"
    "celery.worker.consumer.mingle",
)


def renders_json(fmt: str, stream: TextIO) -> bool:
    """`auto`: JSON unless the stream is a terminal a person reads."""
    if fmt == "auto":
        return not _is_terminal(stream)
    return fmt == "json"


def configure(level: str = "INFO", fmt: str = "auto", *, quiet: bool = False) -> None:
    """`quiet`: log errors only (unless `level` is DEBUG: a person asked for everything)."""
    stream = sys.stderr
    as_json = renders_json(fmt, stream)
    renderer: structlog.types.Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=_is_terminal(stream) and "NO_COLOR" not in os.environ,
            # The stack of a failure as Python prints it: no rich panels in a log.
            exception_formatter=structlog.dev.plain_traceback,
        )
        stamp = structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%SZ", utc=True)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        stamp,
    ]
    structlog.configure(
        # A line below the level is dropped before any work is done on it.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # The console renderer formats a traceback itself; JSON carries it as a string field.
    last: list[structlog.types.Processor] = (
        [structlog.processors.format_exc_info, renderer] if as_json else [renderer]
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Python's warnings (a library's deprecation, Celery's as root) as log lines too, in the
    # same format, instead of raw text between them.
    logging.captureWarnings(True)
    root.setLevel(level if level == "DEBUG" or not quiet else max(_number(level), logging.ERROR))
    # Access logs are the metrics' job; uvicorn's would double every request as a log line.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _number(level: str) -> int:
    return logging.getLevelNamesMapping()[level]


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False
