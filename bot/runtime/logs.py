"""The process's log lines: their two formats, and the context fields each line carries.

rollbot logs through the standard library everywhere (`logging.getLogger(__name__)`), and
so do the SDKs and uvicorn (`rollbot serve` gives uvicorn no logging config of its own, so
its server and access lines reach the root logger too). One handler on the root logger
(`configure`) writes every line in one of two formats:

- ``text`` (the default): ``2026-04-28 09:12:01,345 INFO bot.actions.pipeline: abort on
  payment-router: succeeded [request_id=… service=payment-router action=abort
  action_key=… actor=slack:U0ONCALL]``, for a person at a terminal or reading
  ``kubectl logs``;
- ``json``: one JSON object per line (python-json-logger), for a log pipeline: ``time``
  (ISO 8601, UTC), ``level``, ``logger``, ``message``, the context fields that are set,
  ``exc_info`` (the traceback, when there is one), any ``extra`` a caller passed, and on
  uvicorn's access lines ``client``, ``http_method``, ``http_path``, ``http_status``.

Context fields (`FIELDS`) live in a contextvar, so they follow a request or an action
through every await and every task started under it, and never reach another's lines:

- ``request_id``: the HTTP request being served (`bot.web.observe`: the caller's
  ``X-Request-Id`` when it is a short safe token, else a new one), or the Socket Mode
  envelope (`bot.slack.socket_mode`: its envelope id); the work a Slack request queues
  keeps it (`bot.runtime.work` runs each job in its submitter's context);
- ``service``, ``action``, ``actor`` (``source:id``, never a person's name) and, once the
  idempotency key is claimed, ``action_key``: while the responder runs an action
  (`bot.actions.pipeline`).

`bound(**fields)` sets fields for a block; `bind(**fields)` adds to the block around it.
`ContextFields`, a filter on the handler, copies them onto each record as it is written.

Link tokens: `bot.runtime.log_redaction` rewrites each record before it is formatted; the
JSON formatter also redacts every string it writes (a field passed as ``extra`` included)
and prints the traceback as redaction left it (python-json-logger would format the
exception afresh).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from bot.core.links import redact

__all__ = [
    "FIELDS",
    "FORMATS",
    "SAFE_ID",
    "ContextFields",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "bind",
    "bound",
    "configure",
    "current",
    "request_id",
]

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")

#: The context fields, in the order the text format prints them.
FIELDS = ("request_id", "service", "action", "action_key", "actor")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The name of the handler `configure` makes (and alone changes) on the root logger.
HANDLER_NAME = "rollbot"

_EMPTY: Mapping[str, str] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar("rollbot_log_context", default=_EMPTY)


# ── the context fields ─────────────────────────────────────────────────────────────────

#: What an id given from outside (a caller's ``X-Request-Id``, an envelope id) may be to be
#: written into every log line of its request: letters, digits, ``.``, ``_``, ``-``.
SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(given: str | None = None) -> str:
    """`given` when it is a short safe token (`SAFE_ID`), else a new random id (32 hex
    digits): nothing from outside puts text of its own into the log."""
    if given is not None and SAFE_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def current() -> Mapping[str, str]:
    """The context fields set here now."""
    return _CONTEXT.get()


def _with(fields: Mapping[str, object]) -> Mapping[str, str]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {sorted(unknown)} (known: {FIELDS})")
    merged = dict(_CONTEXT.get())
    merged.update({name: str(value) for name, value in fields.items() if value is not None})
    return MappingProxyType(merged)


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Set context fields (those given as None are left as they are) for the block; on its
    way out every field is as before, `bind`'s inside the block included."""
    token = _CONTEXT.set(_with(fields))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind(**fields: object) -> None:
    """Add context fields to the enclosing `bound` block (or the task's context)."""
    _CONTEXT.set(_with(fields))


class ContextFields(logging.Filter):
    """Copies the context fields onto each record (a field the caller passed in ``extra``
    is kept). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _CONTEXT.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


# ── the formats ────────────────────────────────────────────────────────────────────────


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, then the context fields that are set, in brackets."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = " ".join(
            f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None)
        )
        return f"{line} [{context}]" if context else line


#: Record attributes never written as fields: logging's own, and uvicorn's ANSI-coloured
#: copy of its message.
_SKIPPED = [*RESERVED_ATTRS, "color_message"]


class JsonFormatter(_JsonFormatter):
    """One JSON object per line; see the module docstring for the fields."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=_SKIPPED,
        )

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter.formatException(self, record.exc_info)
        # The parent formats `exc_info` afresh when it is set: hide it, so that the text
        # `RedactTokens` left in `exc_text` is what is written.
        exc_info, record.exc_info = record.exc_info, None
        try:
            return super().format(record)
        finally:
            record.exc_info = exc_info

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        super().add_fields(log_data, record, message_dict)
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _, status = args
            log_data.update(client=client, http_method=method, http_path=path)
            log_data["http_status"] = status

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: _redacted(value) for key, value in log_data.items()}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter of `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: one of {', '.join(FORMATS)}")
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(fmt: LogFormat = "text", *, level: int = logging.INFO) -> None:
    """Write the process's log lines to stderr in `fmt`, with the context fields. Makes
    the root logger's handler once (at `level`), unless the root logger already has
    handlers (a test runner's); called again, changes the format only."""
    root = logging.getLogger()
    if not root.handlers:
        made = logging.StreamHandler(sys.stderr)
        made.set_name(HANDLER_NAME)
        root.addHandler(made)
        root.setLevel(level)
    for handler in root.handlers:
        if handler.get_name() != HANDLER_NAME:
            continue
        handler.setFormatter(formatter(fmt))
        if not any(isinstance(f, ContextFields) for f in handler.filters):
            handler.addFilter(ContextFields())
