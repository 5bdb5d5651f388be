"""Parsing `/release` command text.

    /release help                              (or nothing)
    /release start SERVICE VERSION [OWNER]     OWNER: a Slack mention or an email
    /release status SERVICE
    /release list
    /release winner SERVICE VARIANT            the experiment's winner: its flag can go

Verbs are case-insensitive (`ls` is `list`, `show` is `status`); service names follow the
same rule as `/rollback` and are lower-cased; versions and variants keep their case.
OWNER arrives as Slack escapes it when the command escapes users and links: `<@U123>`,
`<@U123|name>`, an email, or `<mailto:a@example.com|a@example.com>`. A mention becomes
`<@U123>` (the `|name` dropped: names change, ids do not); an email stays an email.
Anything else is an `InvalidRequest` whose message carries the usage, so the user learns
the syntax from the error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.errors import InvalidRequest

VERBS: tuple[str, ...] = ("help", "start", "status", "list", "winner")
# The same rule as bot.core.commands: what `/rollback SERVICE` accepts.
_SERVICE_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")
_VARIANT_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MENTION_RE = re.compile(r"^<@([UW][A-Z0-9]{1,20})(?:\|[^<>]{0,80})?>$")
_EMAIL_RE = re.compile(r"^[^@\s<>|]{1,64}@[^@\s<>|.]+(?:\.[^@\s<>|.]+)+$")
_MAILTO_RE = re.compile(r"^<mailto:([^|<>]+)(?:\|[^<>]*)?>$")
_ALIASES = {
    "ls": "list",
    "show": "status",
    "get": "status",
    "-h": "help",
    "--help": "help",
}
# Words each verb takes after itself: (at least, at most).
_ARITY: dict[str, tuple[int, int]] = {
    "start": (2, 3),
    "status": (1, 1),
    "list": (0, 0),
    "winner": (2, 2),
}
_SHAPES = {
    "start": "start SERVICE VERSION [@owner|email]",
    "status": "status SERVICE",
    "list": "list",
    "winner": "winner SERVICE VARIANT",
}


def usage(command: str = "/release") -> str:
    return (
        f"Usage: `{command} start SERVICE VERSION [@owner|email]`, `{command} status SERVICE`, "
        f"`{command} list`, `{command} winner SERVICE VARIANT` or `{command} help`."
    )


@dataclass(frozen=True, slots=True)
class ReleaseCommand:
    verb: str  # one of VERBS
    service: str | None = None
    version: str | None = None
    owner: str | None = None  # `<@U123>` or an email
    variant: str | None = None


def owner_slack_id(owner: str | None) -> str | None:
    """The Slack user id of an owner given as `<@U123>`; None for an email (or nothing)."""
    if owner is None:
        return None
    match = _MENTION_RE.match(owner)
    return match.group(1) if match else None


def _shown(text: str) -> str:
    """An echo of what the user typed, bounded and without backticks to break the code span."""
    return text.replace("`", "'")[:64]


def _service(word: str, command: str) -> str:
    service = word.lower()
    if not _SERVICE_RE.match(service):
        raise InvalidRequest(f"`{_shown(word)}` is not a service name. {usage(command)}")
    return service


def _version(word: str, command: str) -> str:
    if not _VERSION_RE.match(word):
        raise InvalidRequest(
            f"`{_shown(word)}` is not a version (1–64 of letters, digits and `._+-`). "
            f"{usage(command)}"
        )
    return word


def _variant(word: str, command: str) -> str:
    if not _VARIANT_RE.match(word):
        raise InvalidRequest(
            f"`{_shown(word)}` is not a variant name (1–64 of letters, digits and `._-`). "
            f"{usage(command)}"
        )
    return word


def _owner(word: str, command: str) -> str:
    mention = _MENTION_RE.match(word)
    if mention:
        return f"<@{mention.group(1)}>"
    mailto = _MAILTO_RE.match(word)
    email = mailto.group(1) if mailto else word
    if len(email) <= 254 and _EMAIL_RE.match(email):
        return email
    raise InvalidRequest(
        f"`{_shown(word)}` is not an owner: mention them (`@name`) or give their email. "
        f"{usage(command)}"
    )


def parse(text: str, *, command: str = "/release") -> ReleaseCommand:
    words = text.split()
    if not words:
        return ReleaseCommand("help")
    verb = _ALIASES.get(words[0].lower(), words[0].lower())
    args = words[1:]
    if verb == "help":
        return ReleaseCommand("help")
    if verb not in _ARITY:
        raise InvalidRequest(f"Unknown `{command}` action `{_shown(words[0])}`. {usage(command)}")
    least, most = _ARITY[verb]
    if not least <= len(args) <= most:
        raise InvalidRequest(
            f"`{command} {verb}` takes `{command} {_SHAPES[verb]}`; got "
            f"{len(args)} word{'' if len(args) == 1 else 's'} after `{verb}`. {usage(command)}"
        )
    if verb == "list":
        return ReleaseCommand("list")
    service = _service(args[0], command)
    if verb == "status":
        return ReleaseCommand("status", service=service)
    if verb == "winner":
        return ReleaseCommand("winner", service=service, variant=_variant(args[1], command))
    owner = _owner(args[2], command) if len(args) == 3 else None
    return ReleaseCommand("start", service=service, version=_version(args[1], command), owner=owner)
