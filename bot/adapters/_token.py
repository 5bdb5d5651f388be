"""Where an adapter's token comes from: a file read at each use (a token rotated in its
file is picked up at the next call, without a restart), or a callable (the settings'
secret, read once at start like rollbot's other secrets)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.core.errors import PermanentError

__all__ = ["TokenSource", "read_token"]

TokenSource = Path | Callable[[], str]


def read_token(source: TokenSource, what: str) -> str:
    """The token now; PermanentError (naming `what`, never the token) when there is none."""
    if isinstance(source, Path):
        try:
            token = source.read_text().strip()
        except OSError as err:
            raise PermanentError(f"cannot read the {what} file {source}: {err.strerror}") from None
        where = f" file {source}"
    else:
        token = source().strip()
        where = ""
    if not token:
        raise PermanentError(f"the {what}{where} is empty")
    return token
