"""bot.core.release_commands: the /release text parser.

Aspects: every verb and its arguments (table); help forms; aliases; case (verbs and services
lower-cased, versions and variants kept); the owner as `<@U…>`, `<@U…|name>`, an email or
Slack's escaped `<mailto:…|…>`, normalised; owner_slack_id; bad services, versions,
variants, owners, unknown verbs and wrong argument counts raise InvalidRequest carrying
the usage (under the command's own name); fuzzing: any text parses to a known verb with
valid arguments or raises InvalidRequest, never anything else.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.errors import InvalidRequest
from bot.core.release_commands import VERBS, ReleaseCommand, owner_slack_id, parse, usage


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ReleaseCommand("help")),
        ("   ", ReleaseCommand("help")),
        ("help", ReleaseCommand("help")),
        ("HELP start", ReleaseCommand("help")),
        ("--help", ReleaseCommand("help")),
        (
            "start payment-router 1.13.0",
            ReleaseCommand("start", service="payment-router", version="1.13.0"),
        ),
        (
            "START Payment-Router 1.13.0-RC.1+build.7",
            ReleaseCommand("start", service="payment-router", version="1.13.0-RC.1+build.7"),
        ),
        (
            "start payment-router 1.13.0 <@U0LEAD>",
            ReleaseCommand("start", service="payment-router", version="1.13.0", owner="<@U0LEAD>"),
        ),
        (
            "start payment-router 1.13.0 <@U0LEAD|payments-lead>",
            ReleaseCommand("start", service="payment-router", version="1.13.0", owner="<@U0LEAD>"),
        ),
        (
            "start payment-router v2 W0ENTERPRISE",
            None,  # a bare id is neither a mention nor an email
        ),
        (
            "start payment-router 1.13.0 payments-lead@example.com",
            ReleaseCommand(
                "start",
                service="payment-router",
                version="1.13.0",
                owner="payments-lead@example.com",
            ),
        ),
        (
            "start payment-router 1.13.0 <mailto:lead@example.com|lead@example.com>",
            ReleaseCommand(
                "start", service="payment-router", version="1.13.0", owner="lead@example.com"
            ),
        ),
        ("status payment-router", ReleaseCommand("status", service="payment-router")),
        ("show Payment-Router", ReleaseCommand("status", service="payment-router")),
        ("list", ReleaseCommand("list")),
        ("LS", ReleaseCommand("list")),
        (
            "winner payment-router Treatment-B",
            ReleaseCommand("winner", service="payment-router", variant="Treatment-B"),
        ),
    ],
)
def test_parse(text: str, expected: ReleaseCommand | None) -> None:
    if expected is None:
        with pytest.raises(InvalidRequest):
            parse(text)
    else:
        assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("deploy payment-router 1.0", "Unknown `/release` action `deploy`"),
        ("start", "takes `/release start SERVICE VERSION [@owner|email]`; got 0 words"),
        ("start payment-router", "got 1 word after `start`"),
        ("start a 1 b c", "got 4 words"),
        ("status", "takes `/release status SERVICE`"),
        ("status a b", "got 2 words"),
        ("list everything", "takes `/release list`"),
        ("winner payment-router", "takes `/release winner SERVICE VARIANT`"),
        ("start ../etc 1.0", "`../etc` is not a service name"),
        ("start -svc 1.0", "is not a service name"),
        ("status " + "a" * 64, "is not a service name"),
        ("start payment-router 1.0/evil", "`1.0/evil` is not a version"),
        ("start payment-router " + "1" * 65, "is not a version"),
        ("start payment-router 1.0 bob", "`bob` is not an owner"),
        ("start payment-router 1.0 <@U0LEAD", "is not an owner"),
        ("start payment-router 1.0 <#C0CHAN|deploys>", "is not an owner"),
        ("start payment-router 1.0 a@b", "is not an owner"),
        ("winner payment-router a+b", "`a+b` is not a variant name"),
        ("winner payment-router " + "v" * 65, "is not a variant name"),
    ],
)
def test_rejects_with_usage(text: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(text)
    assert says in err.value.message
    assert usage() in err.value.message


def test_usage_names_the_configured_command() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse("nope", command="/rel")
    assert "Usage: `/rel start SERVICE VERSION [@owner|email]`" in err.value.message
    assert "`/rel winner SERVICE VARIANT`" in err.value.message


def test_echo_is_bounded_and_cannot_break_out_of_code() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse("`" + "x" * 500)
    message = err.value.message
    assert message.startswith("Unknown `/release` action `'" + "x" * 63 + "`.")
    assert "x" * 64 not in message
    assert message.count("`") % 2 == 0


def test_owner_slack_id() -> None:
    assert owner_slack_id("<@U0LEAD>") == "U0LEAD"
    assert owner_slack_id("lead@example.com") is None
    assert owner_slack_id(None) is None
    assert owner_slack_id(parse("start a 1 <@W0ABC|x>").owner) == "W0ABC"


_VERSION = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")
_VARIANT = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _check(cmd: ReleaseCommand) -> None:
    assert cmd.verb in VERBS
    if cmd.verb in ("start", "status", "winner"):
        assert cmd.service is not None and cmd.service == cmd.service.lower()
    if cmd.verb == "start":
        assert cmd.version is not None and _VERSION.match(cmd.version)
        assert cmd.owner is None or cmd.owner.startswith("<@") or "@" in cmd.owner
    if cmd.verb == "winner":
        assert cmd.variant is not None and _VARIANT.match(cmd.variant)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_any_text(text: str) -> None:
    try:
        cmd = parse(text)
    except InvalidRequest as err:
        assert "Usage:" in err.message
        assert len(err.message) < 600  # echoes are bounded
        return
    _check(cmd)


_word = st.text(alphabet=st.sampled_from("abcAZ019.-_+@<>|:`/ "), min_size=0, max_size=20)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["start", "status", "list", "winner", "help", "ls", "show", "x"]),
    st.lists(_word, max_size=4),
)
def test_fuzz_verbs_with_arguments(verb: str, args: list[str]) -> None:
    try:
        cmd = parse(" ".join([verb, *args]))
    except InvalidRequest as err:
        assert "Usage:" in err.message
        return
    _check(cmd)
