"""No link token in any log line (issue 12, finding 4).

A signed runbook link acts as its person until it expires or is used, so a log that holds
one hands that power to whoever reads the log. The tokens travel in URLs (`?token=`, the
post/redirect/get result `?done=…&token=…`), so uvicorn's access log would print each one.

`RedactTokens` rewrites the record itself, before any handler formats it: its message
template, each string argument (uvicorn's access records keep their five-tuple, which its
formatter unpacks), a message built from other arguments, the exception's traceback and
the stack. Every handler of that record then prints the redacted text (`links.redact`).

`install()` puts it where every record passes:
- on each handler of the root logger (rollbot's loggers and the SDKs' propagate there);
- on the root logger and uvicorn's own loggers ("uvicorn", "uvicorn.error",
  "uvicorn.access", "uvicorn.asgi"), which do not propagate: their handlers are made later
  by uvicorn's `dictConfig`, which replaces handlers but keeps a logger's filters.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping

from bot.core.links import redact

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _clean(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    """Redacts link tokens on the record (never drops it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_clean(a) for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: _clean(v) for k, v in args.items()}
        if record.args and record.name != "uvicorn.access":
            # An argument that is not a string (a URL object, an exception) prints its
            # token only when formatted: format it now and keep the redacted text.
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a malformed record stays as logging made it
                message = None
            if message is not None and redact(message) != message:
                record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(extra_loggers: tuple[str, ...] = UVICORN_LOGGERS) -> RedactTokens:
    """Redact every record that reaches the root logger's handlers and uvicorn's own
    loggers. Idempotent; call it after the root logger's handlers are set up."""
    root = logging.getLogger()
    found = next((f for f in root.filters if isinstance(f, RedactTokens)), None)
    redactor = found or RedactTokens()
    targets: list[logging.Filterer] = [root, *root.handlers]
    targets += [logging.getLogger(name) for name in extra_loggers]
    for target in targets:
        if not any(isinstance(f, RedactTokens) for f in target.filters):
            target.addFilter(redactor)
    return redactor
