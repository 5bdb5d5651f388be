"""The Block Kit → HTML renderer of the demo workbench (bot.sim.blockkit).

Aspects under test:
- the walk: every public builder of the bot.blocks modules (card, rollout, tiers, modals,
  replies, text, release; found by introspection: a new builder without cases fails with
  its name) over representative inputs renders without an unknown-element placeholder, as
  balanced HTML, with every button's action_id on the page and no script or javascript: URL;
- mrkdwn: emphasis (nested), code, pre, quotes, links (code in their label too), mentions
  resolved to names, emoji;
- safety: script tags, javascript: URLs and attribute-breaking quotes come out escaped;
- buttons carry action_id, value, block_id, message ts, style and their confirm dialog;
  URL buttons are links opening in a new tab;
- an unknown block or element gives the placeholder, malformed input never raises;
- messages (author, time, text fallback, replies link) and the Slack fixtures' modal views
  (input blocks, selects, submit and close) render without placeholders.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from html.parser import HTMLParser
from types import ModuleType
from typing import Any

import pytest
from slack_sdk.models.blocks import ButtonElement

from bot.blocks import card as card_blocks
from bot.blocks import modals, replies
from bot.blocks import release as rb
from bot.blocks import rollout as rollout_blocks
from bot.blocks import text as text_blocks
from bot.blocks import tiers as tier_blocks
from bot.core.gitops import RevertCase, RevertState
from bot.core.model import (
    FlagState,
    IncidentState,
    Outcome,
    ReleasePhase,
    RevertStarted,
    RolloutAction,
    Tier,
)
from bot.core.ports import ActionRecord
from bot.sim.blockkit import (
    CSS,
    UNKNOWN_CLASS,
    render_blocks,
    render_message,
    render_mrkdwn,
    render_view,
)
from tests.plugins.fixtures import FIXTURES
from tests.unit.blocks import test_card as tb
from tests.unit.blocks import test_release as trb

SLACK_FIXTURES = FIXTURES / "slack"
USERS = {"U0ONCALL": "Olivia Oncall", "U0LEAD": "Lee Lead", "U0OUTSIDER": "Otto"}
GROUPS = {"S0PAYMENTS": "payments-owners"}
CHANNELS = {"C0PAYDEPLOY": "pay-deploys"}
VOID = {"br", "hr", "img", "input"}


# ── well-formedness ──────────────────────────────────────────────────────────


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        for name, value in attrs:
            if name in ("href", "src"):
                self.hrefs.append(value or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def parse(html_text: str) -> _Balance:
    parser = _Balance()
    parser.feed(html_text)
    parser.close()
    assert parser.errors == [], parser.errors
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def assert_clean(html_text: str, *, where: str = "") -> _Balance:
    assert UNKNOWN_CLASS not in html_text, f"{where}: {html_text}"
    page = parse(html_text)
    assert "<script" not in html_text.lower()
    schemes = ("http://", "https://", "mailto:", "#thread-")
    assert all(h.lower().startswith(schemes) for h in page.hrefs), page.hrefs
    return page


def action_ids(blocks: list[dict[str, Any]]) -> set[str]:
    found = set()
    for block in blocks:
        for el in [*block.get("elements", []), block.get("accessory") or {}]:
            if isinstance(el, dict) and el.get("action_id"):
                found.add(el["action_id"])
    return found


# ── the walk ─────────────────────────────────────────────────────────────────

_BLOCKISH = {
    "list[dict[str, Any]]",
    "tuple[str, list[dict[str, Any]]]",
    "dict[str, Any]",
    "ButtonElement",
}
# Functions with a block-like return annotation that do not build Slack output.
NOT_BUILDERS = {"parse_button_value", "parse_revert_metadata", "parse_break_glass_metadata"}


def public_builders(module: ModuleType) -> set[str]:
    """Public functions of `module` returning blocks, (text, blocks), a view or an element."""
    return {
        name
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_")
        and fn.__module__ == module.__name__
        and str(inspect.signature(fn).return_annotation) in _BLOCKISH
        and name not in NOT_BUILDERS
    }


def _states() -> list[Any]:
    return [
        tb.PAUSED,
        tb.PROGRESSING,
        tb.ABORTED,
        tb.INCONCLUSIVE,
        tb.HEALTHY,
        tb.DEGRADED,
        tb.BLUE_GREEN,
        tb.SPEC_PAUSED,
        tb.NO_STABLE_REVISION,
    ]


CIRCUIT = FlagState(
    key=tb.CIRCUIT_FLAG,
    project="default",
    environment="production",
    enabled=True,
    provider="launchdarkly",
)


def _rollout_cards() -> Iterator[Any]:
    outcome = Outcome(RolloutAction.ABORT, "U0ONCALL", tb.NOW, True, 0.8)
    failed = Outcome(RolloutAction.PROMOTE, "U0ONCALL", tb.NOW, False, 5.0, "weight 25")
    for state in _states():
        yield tb.card(state)
        yield tb.card(state, outcome=outcome, notice="watching <@U0ONCALL>")
        yield tb.card(state, outcome=failed)
        for recommend in [*Tier, None]:
            yield tb.incident_card(state, tiers=tb.tier_set(recommend, tier2=True))
        yield tb.incident_card(state, evidence=tb.UNAVAILABLE, circuit=CIRCUIT)
        yield tb.incident_card(
            state, circuit=dataclasses.replace(CIRCUIT, enabled=False), tiers=tb.tier_set(None)
        )
    stages = ("confirmed", "opened", "approved", "merge-queued", "merged", "verified", "failed")
    for stage in stages:
        revert = RevertStarted(
            "U0ONCALL",
            "https://github.com/p/c/pull/12?<&>",
            tb.NOW,
            stage=stage,
            change="pull request #12",
            approver_id="U0LEAD",
            error="the <host> said *no*",
        )
        yield tb.incident_card(tb.PAUSED, revert=revert, tier3_executable=True)
    for incident_state in IncidentState:
        incident = dataclasses.replace(tb.INCIDENT, state=incident_state)
        yield tb.incident_card(tb.PAUSED, incident=incident, alerts=[f"a{i}" for i in range(9)])


def _buttons() -> Iterator[ButtonElement]:
    kw = {"service": "payment-router", "state": tb.PAUSED, "epoch": 3}
    for action in RolloutAction:
        yield rollout_blocks.action_button(action, **kw)  # type: ignore[arg-type]
    yield tier_blocks.circuit_button(**kw, flag=tb.CIRCUIT_FLAG, environment="production")  # type: ignore[arg-type]
    yield tier_blocks.circuit_button(**kw, flag=None)  # type: ignore[arg-type]
    yield tier_blocks.circuit_close_button(**kw, circuit=CIRCUIT)  # type: ignore[arg-type]
    yield tier_blocks.runbook_button(**kw, url=tb.RUNBOOK)  # type: ignore[arg-type]
    yield tier_blocks.revert_button(**kw)  # type: ignore[arg-type]
    yield tier_blocks.start_revert_button(**kw)  # type: ignore[arg-type]
    opened = RevertStarted(
        "U0ONCALL",
        "https://github.com/p/c/pull/12",
        tb.NOW,
        stage="opened",
        change="pull request #12",
    )
    yield tier_blocks.approve_revert_button(**kw, started=opened)  # type: ignore[arg-type]


def _views() -> list[Any]:
    views = [
        trb.make_view(phase, state=state, tz=tz)
        for phase in ReleasePhase
        for state in (None, "failed", "filed")
        for tz in ("UTC", "Asia/Kolkata")
    ]
    views.append(trb.make_view(winner="b", winner_at=trb.NOW))
    return views


def _release_outputs(builder: str) -> Iterator[Any]:
    views = _views()
    if builder in ("release_started", "release_checklist"):
        for view in [*views, trb.hostile_view(20, 20)]:
            yield getattr(rb, builder)(view)
    elif builder in ("release_status", "release_list"):
        yield getattr(rb, builder)([], trb.NOW)
        yield getattr(rb, builder)(views, trb.NOW)
        yield getattr(rb, builder)([trb.hostile_view(30, 5)], trb.NOW)
    elif builder == "home_view":
        yield rb.home_view([], trb.NOW)
        yield rb.home_view([], trb.NOW, note="Jira is unreachable <!here>")
        yield rb.home_view(views, trb.NOW)
    elif builder == "release_help":
        yield rb.release_help()
        yield rb.release_help("/rel")


def _revert_case(**changes: Any) -> RevertCase:
    """A Tier 3 revert as prepared (a clean `git revert`), with `changes`."""
    case = RevertCase(
        key="gitops:payments/payment-router@42",
        service="payment-router",
        card_key="payments/payment-router@42",
        revision=42,
        state=RevertState.PREPARED,
        requester="U0ONCALL",
        requested_at="2024-05-14T14:03:12+00:00",
        provider="github",
        project="platform/configs",
        url="https://git.example/platform/configs.git",
        base="main",
        path="services/payment-router",
        branch="rollbot/revert/payment-router-r42-58614e23",
        release_sha="0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
        kind="revert",
        diff='-    newTag: "1.13.0"\n+    newTag: "1.12.4"\n',
        files=("services/payment-router/kustomization.yaml",),
    )
    return dataclasses.replace(case, **changes)


CASES: dict[str, Callable[[], Iterator[Any]]] = {
    "rollout_card": _rollout_cards,
    "help_blocks": lambda: iter([replies.help_blocks(), replies.help_blocks("/rb")]),
    "error_blocks": lambda: iter(
        [
            replies.error_blocks("Kubernetes <unreachable>"),
            replies.error_blocks("x", error_id="e-7f3a"),
        ]
    ),
    "action_button": lambda: (
        x for x in _buttons() if x.action_id in rollout_blocks.ACTION_IDS.values()
    ),
    "circuit_button": lambda: (
        x for x in _buttons() if x.action_id == tier_blocks.CIRCUIT_ACTION_ID
    ),
    "circuit_close_button": lambda: (
        x for x in _buttons() if x.action_id == tier_blocks.CIRCUIT_CLOSE_ACTION_ID
    ),
    "runbook_button": lambda: (
        x for x in _buttons() if x.action_id == tier_blocks.RUNBOOK_ACTION_ID
    ),
    "revert_button": lambda: (
        x for x in _buttons() if x.action_id == tier_blocks.REVERT_OPEN_ACTION_ID
    ),
    "start_revert_button": lambda: (
        x for x in _buttons() if x.action_id == tier_blocks.TIER3_START_ACTION_ID
    ),
    "approve_revert_button": lambda: (
        x for x in _buttons() if x.action_id == tier_blocks.TIER3_APPROVE_ACTION_ID
    ),
    "revert_modal": lambda: iter(
        [
            tb.modal_view(sha="0a1b2c3d"),
            tb.modal_view(state=None, steps=()),
            tb.modal_view(service="<script>&", steps=[f"git revert <{i}>" for i in range(50)]),
        ]
    ),
    "circuit_refusal_blocks": lambda: iter(
        [
            replies.circuit_refusal_blocks(":no_entry: <@U0ONCALL> may not circuit-open <x>"),
            replies.circuit_refusal_blocks(
                ":no_entry: may not without break-glass",
                break_glass=replies.break_glass_value(
                    value=rollout_blocks.button_value(
                        service="payment-router", state=tb.PAUSED, epoch=3
                    ),
                    channel="C0PAYDEPLOY",
                    message_ts="1715695392.000100",
                ),
            ),
        ]
    ),
    "break_glass_used_message": lambda: iter(
        replies.break_glass_used_message(at=tb.NOW, status=status, error="<!channel> & <x>")
        for status in ("succeeded", "failed", "duplicate", "refused", "error")
    ),
    "tier3_message_modal": lambda: iter(
        [
            modals.tier3_message_modal(title="Preparing the revert", text="Working… <x>"),
            modals.tier3_message_modal(title="x" * 40, text="*started* by <@U0ONCALL>"),
        ]
    ),
    "tier3_prepared_modal": lambda: iter(
        [
            modals.tier3_prepared_modal(
                _revert_case(), commit_url="https://git.example/platform/configs/commit/0a1b"
            ),
            modals.tier3_prepared_modal(
                _revert_case(
                    provider="gitlab",
                    kind="image",
                    note="conflict in <kustomization.yaml>",
                    image="registry.example.com/payment-router:1.12.4",
                    diff="```<script>```" * 400,
                )
            ),
        ]
    ),
    "tier3_break_glass_modal": lambda: iter(
        [
            modals.tier3_break_glass_modal(
                _revert_case(state=RevertState.OPENED),
                channel="C0PAYDEPLOY",
                owners_group="S0PAYMENTS",
            ),
            modals.tier3_break_glass_modal(
                _revert_case(service="<script>&"), channel="C0PAYDEPLOY", owners_group=None
            ),
        ]
    ),
    "tier3_self_approval_blocks": lambda: iter(
        [
            replies.tier3_self_approval_blocks(
                ":no_entry: You started this revert <x>", key="gitops:payments/payment-router@42"
            )
        ]
    ),
    "break_glass_modal": lambda: iter(
        [
            tb.break_glass_view(),
            tb.break_glass_view(service="<script>&", owners_group=None, environment=None),
        ]
    ),
    **{
        name: (lambda n=name: _release_outputs(n))  # type: ignore[misc]
        for name in (
            "release_started",
            "release_checklist",
            "release_status",
            "release_list",
            "home_view",
            "release_help",
        )
    },
}


def test_every_public_builder_has_cases() -> None:
    modules = (card_blocks, rollout_blocks, tier_blocks, modals, replies, text_blocks, rb)
    builders = set().union(*(public_builders(m) for m in modules))
    missing = sorted(builders - CASES.keys())
    assert missing == [], f"builders without cases in the Block Kit walk: {missing}"
    assert sorted(CASES.keys() - builders) == []


def _render(output: Any, *, ts: str = "1715695392.000100") -> tuple[str, list[dict[str, Any]]]:
    """HTML of one builder's output and the blocks it rendered."""
    if isinstance(output, ButtonElement):
        blocks = [{"type": "actions", "block_id": "bk1", "elements": [output.to_dict()]}]
        return render_blocks(blocks, users=USERS, message_ts=ts), blocks
    if isinstance(output, tuple):
        text, blocks = output
        message = {"ts": ts, "text": text, "blocks": blocks}
        return render_message(message, users=USERS, groups=GROUPS, thread_count=2), blocks
    if isinstance(output, dict):
        return render_view(output, users=USERS), output["blocks"]
    return render_blocks(output, users=USERS, groups=GROUPS, message_ts=ts), output


@pytest.mark.parametrize("builder", sorted(CASES))
def test_walk_every_builder_renders_cleanly(builder: str) -> None:
    outputs = list(CASES[builder]())
    assert outputs, builder
    for i, output in enumerate(outputs):
        html_text, blocks = _render(output)
        page = assert_clean(html_text, where=f"{builder}[{i}]")
        shown = {a.get("data-action-id") for _, a in page.tags}
        assert action_ids(blocks) <= shown, builder


def test_text_builders_render_as_message_text() -> None:
    record = ActionRecord(
        "k",
        "payment-router",
        "payments/payment-router",
        "abort",
        "U0ONCALL",
        "oncall-engineer",
        "slack",
        "succeeded",
        tb.NOW - timedelta(seconds=1),
        tb.NOW,
        {},
    )
    view = trb.make_view()
    texts = [
        replies.refusal_text(
            actor_id="U0OUTSIDER",
            action=RolloutAction.ABORT,
            service="payment-router",
            reason="not on call",
            allowed="<!subteam^S0PAYMENTS>",
        ),
        replies.already_done_text(record),
        replies.unknown_service_text("pay", {"payment-router"}),
        replies.timeline_line(at=tb.NOW, text="Abort requested"),
        tier_blocks.circuit_line(CIRCUIT),
        rb.start_reply(True, view),
        rb.start_reply(False, view),
        rb.winner_reply(view, trb.NOW, "b"),
        rb.unavailable_text(),
    ]
    for text in texts:
        out = render_message({"ts": "1715695392.000100", "text": text}, users=USERS, groups=GROUPS)
        assert_clean(out)
        assert ":" + "warning:" not in out and ":no_entry:" not in out
    refusal = render_mrkdwn(texts[0], users=USERS, groups=GROUPS)
    assert "@Otto" in refusal and "@payments-owners" in refusal and "⛔" in refusal


def test_emoji_rollbot_uses_become_unicode() -> None:
    used = ":warning: :white_check_mark: :x: :rotating_light: :octagonal_sign: :grey_question:"
    used += " :hourglass: :red_circle: :electric_plug: :no_entry: :rocket: :trophy: :sunny:"
    used += " :information_source:"
    out = render_mrkdwn(used)
    assert ":" not in out
    assert render_mrkdwn(":not_an_emoji: 14:03:12") == ":not_an_emoji: 14:03:12"
    plain = render_blocks(
        [{"type": "header", "text": {"type": "plain_text", "text": ":rocket: go", "emoji": True}}]
    )
    assert "🚀 go" in plain


# ── mrkdwn ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*bold*", "<b>bold</b>"),
        ("_italic_", "<i>italic</i>"),
        ("~gone~", "<s>gone</s>"),
        ("*_both_*", "<b><i>both</i></b>"),
        ("_*both*_ and ~*x*~", "<i><b>both</b></i> and <s><b>x</b></s>"),
        ("a*b*c snake_case_name", "a*b*c snake_case_name"),
        ("`a *not bold* <b>`", '<code class="bk-code">a *not bold* &lt;b&gt;</code>'),
        ("```line 1\n*x* <y>```", '<pre class="bk-pre">line 1\n*x* &lt;y&gt;</pre>'),
        ("> quoted\nplain", '<blockquote class="bk-quote">quoted</blockquote>plain'),
        ("one\ntwo", "one<br>two"),
        ("&lt;release SHA&gt; &amp; more", "&lt;release SHA&gt; &amp; more"),
        (
            "<https://x.example/a?b=1&amp;c=2|the *graph*>",
            '<a class="bk-link" href="https://x.example/a?b=1&amp;c=2" target="_blank" '
            'rel="noopener noreferrer">the *graph*</a>',
        ),
        (  # code in a link's label (a commit's sha): the code inside the link
            "the commit <https://g.example/c/0a1b|`0a1b`> applied",
            'the commit <a class="bk-link" href="https://g.example/c/0a1b" target="_blank" '
            'rel="noopener noreferrer"><code class="bk-code">0a1b</code></a> applied',
        ),
        (
            "<mailto:a@example.com>",
            '<a class="bk-link" href="mailto:a@example.com" target="_blank" '
            'rel="noopener noreferrer">mailto:a@example.com</a>',
        ),
        (
            "*<https://j.example/PAY-1|PAY-1>*",
            '<b><a class="bk-link" href="https://j.example/PAY-1" target="_blank" '
            'rel="noopener noreferrer">PAY-1</a></b>',
        ),
        ("<@U0ONCALL>", '<span class="bk-mention" data-user-id="U0ONCALL">@Olivia Oncall</span>'),
        ("<@U0NOBODY>", '<span class="bk-mention" data-user-id="U0NOBODY">@U0NOBODY</span>'),
        (
            "<#C0PAYDEPLOY|old-name>",
            '<span class="bk-channel" data-channel-id="C0PAYDEPLOY">#pay-deploys</span>',
        ),
        (
            "<#C0OTHER|general>",
            '<span class="bk-channel" data-channel-id="C0OTHER">#general</span>',
        ),
        (
            "<!subteam^S0PAYMENTS|@pay>",
            '<span class="bk-mention bk-group" data-group-id="S0PAYMENTS">@payments-owners</span>',
        ),
        (
            "<!subteam^S0X|@other>",
            '<span class="bk-mention bk-group" data-group-id="S0X">@other</span>',
        ),
        ("<!here>", '<span class="bk-mention bk-broadcast">@here</span>'),
        ("<!date^1392734382^{date}|Feb 18th>", '<span class="bk-special">Feb 18th</span>'),
    ],
)
def test_mrkdwn(text: str, expected: str) -> None:
    assert render_mrkdwn(text, users=USERS, channels=CHANNELS, groups=GROUPS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "<javascript:alert(1)|click me>",
        "<JavaScript:alert(1)>",
        "<data:text/html,<script>x</script>|x>",
        '<https://ok.example/" onmouseover="alert(1)|x>',
        "<https://ok.example/x\" onclick='y'>",
        '`"><img src=x onerror=alert(1)>`',
        "```</pre><script>x</script>```",
        '*"><svg onload=alert(1)>*',
        '<@U1"><script>|x>',
        '<#C1|"><b onclick=x>>',
        "\ue000\ue001 private-use characters",
    ],
)
def test_xss_is_escaped(text: str) -> None:
    out = render_mrkdwn(text, users={'U1"><script>': "<b>x</b>"})
    page = parse(out)
    allowed = {"a", "b", "i", "s", "code", "pre", "span", "blockquote", "br"}
    assert {tag for tag, _ in page.tags} <= allowed, out
    for _, attrs in page.tags:
        assert set(attrs) <= {"class", "href", "target", "rel", "data-user-id", "data-channel-id"}
    assert all(h.startswith("https://") for h in page.hrefs), page.hrefs
    assert "javascript:" not in " ".join(page.hrefs).lower()


def test_text_objects_in_blocks_are_escaped() -> None:
    evil = '"><script>alert(1)</script>'
    blocks: list[dict[str, Any]] = [
        {"type": "header", "block_id": evil, "text": {"type": "plain_text", "text": evil}},
        {"type": "section", "text": {"type": "plain_text", "text": evil}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": evil,
                    "value": evil,
                    "text": {"type": "plain_text", "text": evil},
                    "url": "javascript:alert(1)",
                    "confirm": {
                        "title": {"type": "plain_text", "text": evil},
                        "text": {"type": "mrkdwn", "text": evil},
                        "confirm": {"type": "plain_text", "text": evil},
                        "deny": {"type": "plain_text", "text": evil},
                    },
                }
            ],
        },
        {"type": "image", "image_url": "javascript:alert(1)", "alt_text": evil},
    ]
    out = render_blocks(blocks, message_ts=evil)
    page = assert_clean(out)
    assert {tag for tag, _ in page.tags} & {"script", "a", "img"} == set()
    assert "<script" not in out


# ── buttons ──────────────────────────────────────────────────────────────────


def _tag(page: _Balance, tag: str, **attrs: str) -> dict[str, str | None]:
    found = [a for t, a in page.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]
    assert len(found) == 1, (tag, attrs, page.tags)
    return found[0]


def test_card_buttons_carry_action_value_block_style_and_confirm() -> None:
    blocks = tb.incident_card(tb.PAUSED, tiers=tb.tier_set(Tier.ABORT, tier2=True))
    page = parse(render_blocks(blocks, message_ts="1715695392.000100"))
    abort = _tag(page, "button", **{"data-action-id": "rollout_abort"})
    assert "bk-danger" in str(abort["class"])
    assert abort["data-block-id"] == rollout_blocks.ACTIONS_BLOCK_ID
    assert abort["data-message-ts"] == "1715695392.000100"
    assert rollout_blocks.parse_button_value(str(abort["data-value"]))["r"] == 42
    assert abort["data-confirm-title"] == "Abort payment-router?"
    assert abort["data-confirm-confirm"] == "Abort"
    assert abort["data-confirm-deny"] == "Cancel"
    assert abort["data-confirm-style"] == "danger"
    assert "status.abort=true" in str(abort["data-confirm-text"])
    promote = _tag(page, "button", **{"data-action-id": "rollout_promote"})
    assert promote["class"] == "bk-button"
    assert promote.get("data-confirm-style") is None
    circuit = _tag(page, "button", **{"data-action-id": tier_blocks.CIRCUIT_ACTION_ID})
    assert circuit["data-block-id"] == tier_blocks.TIER_ACTIONS_BLOCK_ID
    assert tb.CIRCUIT_FLAG in str(circuit["data-confirm-text"])
    runbook = _tag(page, "a", **{"data-action-id": tier_blocks.RUNBOOK_ACTION_ID})
    assert runbook["href"] == tb.RUNBOOK
    assert runbook["target"] == "_blank" and "noopener" in str(runbook["rel"])
    confirms = [a for _, a in page.tags if "data-confirm" in a]
    templates = [a for t, a in page.tags if t == "template"]
    assert len(templates) == len(confirms) >= 3  # one dialog per button with a confirm
    assert any(a.get("data-style") == "danger" for a in templates)


def test_confirm_template_holds_the_rendered_dialog() -> None:
    out = render_blocks(tb.card(tb.PAUSED))
    start = out.index('<template class="bk-confirm"')
    template = out[start : out.index("</template>", start)]
    assert "Abort payment-router?" in template
    assert "bk-confirm-yes bk-danger" in template and "Cancel" in template


def test_primary_style_and_other_elements() -> None:
    blocks: list[dict[str, Any]] = [
        {
            "type": "actions",
            "block_id": "a1",
            "elements": [
                {
                    "type": "button",
                    "action_id": "go",
                    "style": "primary",
                    "value": "v",
                    "text": {"type": "plain_text", "text": "Go"},
                },
                {
                    "type": "static_select",
                    "action_id": "pick",
                    "placeholder": {"type": "plain_text", "text": "Pick"},
                    "options": [
                        {"text": {"type": "plain_text", "text": "One"}, "value": "1"},
                        {"text": {"type": "plain_text", "text": "Two"}, "value": "2"},
                    ],
                    "initial_option": {"text": {"type": "plain_text", "text": "Two"}, "value": "2"},
                },
                {
                    "type": "overflow",
                    "action_id": "more",
                    "options": [
                        {"text": {"type": "plain_text", "text": "Edit"}, "value": "edit"},
                        {
                            "text": {"type": "plain_text", "text": "Docs"},
                            "value": "docs",
                            "url": "https://docs.example.com",
                        },
                    ],
                },
                {"type": "datepicker", "action_id": "day", "initial_date": "2024-05-14"},
            ],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "with an image"},
            "accessory": {"type": "image", "image_url": "https://x.example/a.png", "alt_text": "a"},
        },
        {
            "type": "context",
            "elements": [
                {"type": "image", "image_url": "https://x.example/i.png", "alt_text": "i"},
                {"type": "plain_text", "text": "plain"},
            ],
        },
        {
            "type": "image",
            "image_url": "https://x.example/big.png",
            "alt_text": "big",
            "title": {"type": "plain_text", "text": "Graph"},
        },
        {"type": "divider"},
        {
            "type": "rich_text",
            "elements": [
                {
                    "type": "rich_text_section",
                    "elements": [
                        {"type": "text", "text": "hi ", "style": {"bold": True}},
                        {"type": "user", "user_id": "U0ONCALL"},
                        {"type": "emoji", "name": "rocket"},
                        {"type": "link", "url": "https://x.example", "text": "x"},
                    ],
                },
                {
                    "type": "rich_text_list",
                    "style": "ordered",
                    "elements": [
                        {"type": "rich_text_section", "elements": [{"type": "text", "text": "a"}]}
                    ],
                },
                {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": "x"}]},
                {"type": "rich_text_quote", "elements": [{"type": "text", "text": "q"}]},
            ],
        },
    ]
    out = render_blocks(blocks, users=USERS)
    page = assert_clean(out)
    go = _tag(page, "button", **{"data-action-id": "go"})
    assert go["class"] == "bk-button bk-primary" and go["data-value"] == "v"
    assert _tag(page, "option", value="2")["selected"] is None  # present, valueless
    assert "selected" in _tag(page, "option", value="2")
    assert _tag(page, "a", href="https://docs.example.com")["target"] == "_blank"
    assert _tag(page, "input", type="date")["value"] == "2024-05-14"
    assert "@Olivia Oncall" in out and "🚀" in out and "<b>hi </b>" in out and "<ol" in out


# ── unknown and malformed ────────────────────────────────────────────────────


def test_unknown_block_and_element_give_the_placeholder() -> None:
    out = render_blocks(
        [
            {"type": "carousel"},
            {"type": "actions", "elements": [{"type": "workflow_button"}]},
            {"type": "section", "accessory": {"type": "<b>"}},
        ]
    )
    assert '<div class="bk-unknown">unsupported block: carousel</div>' in out
    assert '<span class="bk-unknown">unsupported element: workflow_button</span>' in out
    assert "unsupported element: &lt;b&gt;" in out
    parse(out)


@pytest.mark.parametrize(
    "blocks",
    [
        [None, 3, "x", [], {}],
        [{"type": "section", "text": "bare", "fields": "nope", "accessory": 7}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": None}}],
        [{"type": "actions", "elements": None}, {"type": "context", "elements": [None, 1]}],
        [{"type": "input", "element": None, "label": 5}],
        [{"type": "rich_text", "elements": [{"type": "rich_text_list", "elements": 3}]}],
        [{"type": "actions", "elements": [{"type": "datepicker", "initial_date": "not a date"}]}],
        [{"type": "actions", "elements": [{"type": "static_select", "options": [None]}]}],
        [{"type": "image"}],
    ],
)
def test_malformed_input_never_raises(blocks: list[Any]) -> None:
    parse(render_blocks(blocks))
    parse(render_message({"ts": "nonsense", "blocks": blocks}))
    parse(render_view({"type": "modal", "blocks": blocks, "title": None}))


# ── messages and views ───────────────────────────────────────────────────────


def test_message_author_time_text_and_replies() -> None:
    ts = "1715695392.000100"  # 14:03:12 UTC
    out = render_message({"ts": ts, "text": "*hi* <@U0LEAD>"}, users=USERS, thread_count=3)
    page = assert_clean(out)
    assert "rollbot" in out and ">14:03</time>" in out
    assert "<b>hi</b>" in out and "@Lee Lead" in out
    assert _tag(page, "a", **{"data-thread-ts": ts})["class"] == "bk-replies"
    assert "3 replies" in out
    assert "1 reply<" in render_message({"ts": ts, "text": "x"}, thread_count=1)
    assert "bk-replies" not in render_message({"ts": ts, "text": "x"})
    blocks = replies.error_blocks("boom")
    with_blocks = render_message({"ts": ts, "text": "fallback only", "blocks": blocks})
    assert "fallback only" not in with_blocks and "boom" in with_blocks
    edited = render_message({"ts": ts, "text": "x", "edited": {"ts": ts}})
    assert "(edited)" in edited


@pytest.mark.parametrize(
    "name",
    [
        "python-slack-sdk.view_modal_003.json",
        "python-slack-sdk.view_modal_009.json",
        "bolt-python.view_submission.json",
    ],
)
def test_fixture_modal_views_render(name: str) -> None:
    data = json.loads((SLACK_FIXTURES / name).read_text())
    view = data.get("view", data)
    out = render_view(view, users=USERS)
    page = assert_clean(out, where=name)
    assert "bk-modal" in out
    assert _plain_title(view) in out
    assert page.tags and any("bk-view-submit" in str(a.get("class")) for _, a in page.tags)
    assert any("bk-view-close" in str(a.get("class")) for _, a in page.tags)
    for block in view["blocks"]:
        if block["type"] == "input":
            assert block["label"]["text"] in out
    assert 'href="fakelink' not in out  # not a web URL: shown as text


def _plain_title(view: dict[str, Any]) -> str:
    return str(view["title"]["text"])


def test_fixture_message_with_accessory_button() -> None:
    data = json.loads((SLACK_FIXTURES / "bolt-python.block_actions_with_message.json").read_text())
    message = data["message"]
    page = assert_clean(render_message(message, thread_count=0))
    accessory = message["blocks"][0]["accessory"]
    button = _tag(page, "button", **{"data-action-id": accessory["action_id"]})
    assert button["data-message-ts"] == message["ts"]


def test_modal_with_every_input_element() -> None:
    def field(element: dict[str, Any], label: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "input",
            "block_id": label,
            "label": {"type": "plain_text", "text": label},
            "element": element,
            **extra,
        }

    option = {"text": {"type": "plain_text", "text": "Abort"}, "value": "abort"}
    described = {
        "text": {"type": "mrkdwn", "text": "*Promote*"},
        "value": "promote",
        "description": {"type": "plain_text", "text": "next step"},
    }
    view = {
        "type": "modal",
        "callback_id": "rollback",
        "title": {"type": "plain_text", "text": "Roll back"},
        "submit": {"type": "plain_text", "text": "Do it"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            field(
                {"type": "plain_text_input", "action_id": "why", "multiline": True},
                "Why",
                hint={"type": "plain_text", "text": "for the timeline"},
            ),
            field({"type": "plain_text_input", "action_id": "ticket"}, "Ticket", optional=True),
            field({"type": "static_select", "action_id": "svc", "options": [option]}, "Service"),
            field(
                {
                    "type": "radio_buttons",
                    "action_id": "act",
                    "options": [option, described],
                    "initial_option": option,
                },
                "Action",
            ),
            field({"type": "checkboxes", "action_id": "ack", "options": [described]}, "Ack"),
            field({"type": "users_select", "action_id": "who", "initial_user": "U0LEAD"}, "Who"),
            field({"type": "timepicker", "action_id": "at", "initial_time": "14:03"}, "At"),
        ],
    }
    out = render_view(view)
    page = assert_clean(out)
    assert _tag(page, "textarea", **{"data-action-id": "why"}) is not None
    assert "(optional)" in out and "for the timeline" in out
    radio = _tag(page, "input", type="radio", value="abort")
    assert "checked" in radio
    assert "<b>Promote</b>" in out and "next step" in out
    assert _tag(page, "input", type="checkbox", value="promote") is not None
    assert _tag(page, "div", **{"data-callback-id": "rollback"})["class"] == "bk-view bk-modal"
    assert "Do it" in out and "Roll back" in out


def test_home_view_and_unknown_view_type() -> None:
    out = render_view(rb.home_view(_views()[:2], trb.NOW))
    assert "bk-home" in out
    assert_clean(out)
    assert UNKNOWN_CLASS in render_view({"type": "workflow_step", "blocks": []})


def test_css_is_self_contained() -> None:
    assert ".bk-button" in CSS and ".bk-danger" in CSS and f".{UNKNOWN_CLASS}" in CSS
    assert "url(" not in CSS and "@import" not in CSS and "</style" not in CSS


def test_hostile_release_text_stays_text() -> None:
    view = trb.hostile_view(5, 5)
    text, blocks = rb.release_status([view], trb.NOW)
    out = render_message({"ts": "1715695392.000100", "text": text, "blocks": blocks})
    page = assert_clean(out)
    assert "javascript:" not in " ".join(page.hrefs)
    assert "&lt;!here&gt;" in out and "bk-broadcast" not in out  # escaped: no mention
    assert "&lt;" in out and "|x&gt;" in out  # `<https://evil|x>` shows as written
    assert date(2024, 6, 1).isoformat() in out
