"""bot.core.commands: the /rollback text parser.

Aspects: every verb (`runbook` too: a signed link to the runbook page); default status;
help forms; aliases for promote-full; case insensitivity; bad service names and unknown
verbs raise InvalidRequest carrying the usage; fuzzing: any text either parses to a known
verb or raises InvalidRequest, never anything else.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.commands import VERBS, Command, parse
from bot.core.errors import InvalidRequest
from bot.core.model import FlagAction, RolloutAction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command("help", None)),
        ("help", Command("help", None)),
        ("  --help ", Command("help", None)),
        ("payment-router", Command("status", "payment-router")),
        ("payment-router status", Command("status", "payment-router")),
        ("Payment-Router ABORT", Command("abort", "payment-router")),
        ("payment-router retry", Command("retry", "payment-router")),
        ("payment-router promote", Command("promote", "payment-router")),
        ("payment-router promote-full", Command("promote-full", "payment-router")),
        ("payment-router promote --full", Command("promote-full", "payment-router")),
        ("payment-router promote_full", Command("promote-full", "payment-router")),
        ("payment-router pause", Command("pause", "payment-router")),
        ("payment-router help", Command("help", "payment-router")),
        ("payment-router circuit open", Command("circuit-open", "payment-router")),
        ("payment-router circuit CLOSE", Command("circuit-close", "payment-router")),
        ("payment-router open circuit", Command("circuit-open", "payment-router")),
        ("payment-router flags", Command("flags", "payment-router")),
        ("payment-router runbook", Command("runbook", "payment-router")),
        ("payment-router RUNBOOK link", Command("runbook", "payment-router")),
        ("payment-router link", Command("runbook", "payment-router")),
        (
            "payment-router circuit open break-glass PD down, 5xx at 40 %",
            Command("circuit-open", "payment-router", "PD down, 5xx at 40 %"),
        ),
    ],
)
def test_parse(text, expected):
    assert parse(text) == expected


def test_runbook_is_not_an_action():
    cmd = parse("payment-router runbook")
    assert cmd.action is None and cmd.flag_action is None
    with pytest.raises(InvalidRequest, match="break-glass applies to the circuit breaker"):
        parse("payment-router runbook break-glass because")


def test_usage_names_runbook():
    with pytest.raises(InvalidRequest) as err:
        parse("payment-router nuke")
    assert "runbook" in err.value.message


def test_action_property():
    assert parse("svc abort").action is RolloutAction.ABORT
    assert parse("svc status").action is None
    assert parse("svc abort").flag_action is None
    assert parse("svc circuit open").flag_action is FlagAction.CIRCUIT_OPEN
    assert parse("svc circuit open").action is None


@pytest.mark.parametrize(
    "text", ["payment-router nuke", "payment-router abort now", "../etc", "a b c d"]
)
def test_rejects_with_usage(text):
    with pytest.raises(InvalidRequest) as err:
        parse(text)
    assert "Usage: `/rollback SERVICE" in err.value.message


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_any_text(text):
    try:
        cmd = parse(text)
    except InvalidRequest as err:
        assert "Usage:" in err.message
        assert len(err.message) < 400  # echoes are bounded
        return
    assert cmd.verb in VERBS
    assert cmd.service is None or cmd.service == cmd.service.lower()


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True),
    st.sampled_from([v for v in VERBS if v != "help"]),
    st.sampled_from(["", " ", "  \t"]),
)
def test_fuzz_valid_commands_roundtrip(service, verb, pad):
    assert parse(f"{pad}{service}{pad} {verb.upper()}{pad}") == Command(verb, service)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("svc circuit half", "Usage: `/rollback SERVICE"),
        ("svc circuit open break-glass", "break-glass needs a reason"),
        ("svc circuit open break-glass   ", "break-glass needs a reason"),
        ("svc abort break-glass because", "applies to the circuit breaker only"),
    ],
)
def test_circuit_and_break_glass_errors(text, says):
    with pytest.raises(InvalidRequest) as err:
        parse(text)
    assert says in err.value.message


def test_break_glass_reason_keeps_its_case_and_is_bounded():
    cmd = parse("svc CIRCUIT OPEN Break-Glass PagerDuty DOWN " + "x" * 600)
    assert cmd == Command("circuit-open", "svc", cmd.break_glass)
    assert cmd.break_glass is not None and cmd.break_glass.startswith("PagerDuty DOWN")
    assert len(cmd.break_glass) == 500
