"""Modals in the Slack sim (bot.sim.slack): views.open and view_submission, as Slack does them.

Aspects under test:
- views.update replaces an open modal (same id, a new hash), refuses a stale `hash`
  (`hash_conflict`), what views.open refuses, and a closed view (`not_found`);
- views.open refuses what Slack refuses, with `invalid_arguments` and response_metadata
  messages naming the JSON pointer: no title, a title over 24 characters, input blocks
  without submit, over 100 blocks, private_metadata over 3000 characters; a trigger id is
  exchanged once; one not shaped as Slack's ("132456.7890123.abcdef") is
  `invalid_trigger_id`, and opens nothing;
- a view opened with a trigger minted for a user is open for that user only
  (`open_views`), oldest first; `close_view` closes it;
- the sender's clicks and slash commands mint their trigger ids for the clicking user;
- `view_submission` payloads have the keys of the real fixture
  (tests/fixtures/slack/bolt-python.view_submission.json), the typed values under
  state.values, the view's id, hash and private_metadata;
- a real Bolt AsyncApp over HTTP: a click opens a modal with views.open; its answers are
  applied as Slack does: `errors` keeps the view open with `view_errors`, `update` replaces
  it (same id), an empty ack closes it, `clear` closes it; a forged submission gets 401 and
  reaches no listener.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.slack import SlackSender, SlackSim
from tests.plugins.fixtures import load_fixture
from tests.plugins.slack import ServeBolt

TITLE = {"type": "plain_text", "text": "Tier 3: revert in Git"}
INPUT = {
    "type": "input",
    "block_id": "revert_url",
    "label": {"type": "plain_text", "text": "URL"},
    "element": {"type": "plain_text_input", "action_id": "url"},
}
MODAL = {
    "type": "modal",
    "callback_id": "revert_record",
    "title": TITLE,
    "submit": {"type": "plain_text", "text": "Record"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "private_metadata": '{"s":"payment-router"}',
    "blocks": [INPUT],
}


@pytest.fixture
async def client(slack_sim: SlackSim, bot_token: str) -> AsyncIterator[AsyncWebClient]:
    yield AsyncWebClient(token=bot_token, base_url=slack_sim.api_url)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": None}, "missing required field: title [json-pointer:/view/title]"),
        (
            {"title": {"type": "plain_text", "text": "x" * 25}},
            "must be less than 25 characters [json-pointer:/view/title/text]",
        ),
        (
            {"title": {"type": "mrkdwn", "text": "x"}},
            "must be a plain_text object [json-pointer:/view/title]",
        ),
        (
            {"submit": None},
            "must provide submit when using input blocks [json-pointer:/view/submit]",
        ),
        (
            {"blocks": [{"type": "divider"}] * 101},
            "must provide no more than 100 items [json-pointer:/view/blocks]",
        ),
        (
            {"private_metadata": "m" * 3001},
            "must be less than 3001 characters [json-pointer:/view/private_metadata]",
        ),
        (
            {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]},
            "must be less than 3001 characters [json-pointer:/view/blocks/0]/text",
        ),
    ],
)
async def test_views_open_validates_like_slack(
    client: AsyncWebClient, slack_sim: SlackSim, change: dict[str, Any], message: str
) -> None:
    view = {k: v for k, v in {**MODAL, **change}.items() if v is not None}
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=slack_sim.mint_trigger_id("U0ONCALL"), view=view)
    assert err.value.response["error"] == "invalid_arguments"
    assert f"[ERROR] {message}" in err.value.response["response_metadata"]["messages"]
    assert slack_sim.open_views("U0ONCALL") == []


async def test_open_views_per_user_close_and_exchanged_trigger(
    client: AsyncWebClient, slack_sim: SlackSim
) -> None:
    trigger = slack_sim.mint_trigger_id("U0ONCALL")
    first = (await client.views_open(trigger_id=trigger, view=MODAL))["view"]
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=trigger, view=MODAL)
    assert err.value.response["error"] == "exchanged_trigger_id"
    second = (
        await client.views_open(trigger_id=slack_sim.mint_trigger_id("U0ONCALL"), view=MODAL)
    )["view"]
    assert first["id"] != second["id"] and first["id"].startswith("V")
    assert first["root_view_id"] == first["id"] and first["hash"]
    assert first["private_metadata"] == MODAL["private_metadata"]
    assert first["blocks"][0]["block_id"] == "revert_url"
    assert [v["id"] for v in slack_sim.open_views("U0ONCALL")] == [first["id"], second["id"]]
    assert slack_sim.open_views("U0OUTSIDER") == []
    slack_sim.close_view(first["id"])
    assert [v["id"] for v in slack_sim.open_views("U0ONCALL")] == [second["id"]]
    assert slack_sim.view_errors(first["id"]) == {}
    # A trigger minted for nobody opens a view nobody sees in open_views.
    await client.views_open(trigger_id=slack_sim.mint_trigger_id(), view=MODAL)
    assert len(slack_sim.open_views("U0ONCALL")) == 1


async def test_views_update_replaces_an_open_modal_like_slack(
    client: AsyncWebClient, slack_sim: SlackSim
) -> None:
    opened = (
        await client.views_open(trigger_id=slack_sim.mint_trigger_id("U0ONCALL"), view=MODAL)
    )["view"]
    changed = {**MODAL, "title": {"type": "plain_text", "text": "Tier 3: ready"}}
    updated = (await client.views_update(view_id=opened["id"], view=changed))["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert [v["title"]["text"] for v in slack_sim.open_views("U0ONCALL")] == ["Tier 3: ready"]
    # A hash that is not the view's current one: someone updated it since.
    with pytest.raises(SlackApiError) as err:
        await client.views_update(view_id=opened["id"], view=MODAL, hash=opened["hash"])
    assert err.value.response["error"] == "hash_conflict"
    # What views.open refuses, views.update refuses too.
    with pytest.raises(SlackApiError) as err:
        await client.views_update(view_id=opened["id"], view={**MODAL, "title": None})
    assert err.value.response["error"] == "invalid_arguments"
    # Closed: not_found; the view is not opened again.
    slack_sim.close_view(opened["id"])
    with pytest.raises(SlackApiError) as err:
        await client.views_update(view_id=opened["id"], view=changed)
    assert err.value.response["error"] == "not_found"
    assert slack_sim.open_views("U0ONCALL") == []


@pytest.mark.parametrize("trigger", ["not-a-trigger", "1715.42", "1715.42.XYZ", "x" * 300])
async def test_views_open_refuses_a_trigger_id_not_shaped_as_slacks(
    client: AsyncWebClient, slack_sim: SlackSim, trigger: str
) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=trigger, view=MODAL)
    assert err.value.response["error"] == "invalid_trigger_id"
    assert slack_sim.views == []


def test_view_submission_payload_matches_the_fixture(
    slack_sim: SlackSim, signing_secret: str
) -> None:
    real = load_fixture("slack/bolt-python.view_submission.json")
    sender = SlackSender("http://unused", signing_secret, sim=slack_sim)
    view = {**MODAL, "id": "V0TEST", "hash": "1596530361.3wRYuk3R", "root_view_id": "V0TEST"}
    request = sender.view_submission(
        "U0ONCALL", view, {"revert_url": {"url": "https://x.example/1"}}, user_name="oncall"
    )
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["X-Slack-Signature"] == sender.sign(
        request.body, int(request.headers["X-Slack-Request-Timestamp"])
    )
    payload = json.loads(parse_qs(request.body)["payload"][0])
    assert set(real) <= set(payload)
    assert set(real["view"]) <= set(payload["view"])
    assert set(real["user"]) == set(payload["user"])
    assert payload["type"] == "view_submission" and payload["response_urls"] == []
    assert payload["is_enterprise_install"] is False and payload["enterprise"] is None
    assert payload["user"] == {
        "id": "U0ONCALL",
        "username": "oncall",
        "name": "oncall",
        "team_id": "T0PAYMENTS",
    }
    submitted = payload["view"]
    assert submitted["id"] == "V0TEST" and submitted["hash"] == "1596530361.3wRYuk3R"
    assert submitted["callback_id"] == "revert_record"
    assert submitted["private_metadata"] == MODAL["private_metadata"]
    assert submitted["state"] == {
        "values": {
            "revert_url": {"url": {"type": "plain_text_input", "value": "https://x.example/1"}}
        }
    }
    assert payload["trigger_id"] == sender.last_trigger_id


@pytest.fixture
async def modal_app(
    slack_sim: SlackSim, bot_token: str, signing_secret: str, serve_bolt: ServeBolt
) -> AsyncIterator[tuple[SlackSender, list[dict[str, Any]]]]:
    """A real Bolt AsyncApp: `open` opens MODAL; its submission answers what was typed
    (`errors`, `update`, `clear`, anything else: an empty ack)."""
    app = AsyncApp(
        client=AsyncWebClient(token=bot_token, base_url=slack_sim.api_url),
        signing_secret=signing_secret,
    )
    seen: list[dict[str, Any]] = []

    @app.action("open")
    async def on_open(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    @app.view("revert_record")
    async def on_submit(ack: Any, view: dict[str, Any]) -> None:
        seen.append(view)
        typed = view["state"]["values"]["revert_url"]["url"]["value"]
        if typed == "errors":
            await ack(response_action="errors", errors={"revert_url": "Give a URL."})
        elif typed == "update":
            await ack(response_action="update", view={**MODAL, "title": {**TITLE, "text": "New"}})
        elif typed == "clear":
            await ack(response_action="clear")
        else:
            await ack()

    url = await serve_bolt(app)
    yield SlackSender(url, signing_secret, sim=slack_sim), seen


async def _open(sender: SlackSender, slack_sim: SlackSim, client: AsyncWebClient) -> dict:
    blocks = [
        {
            "type": "actions",
            "elements": [
                {"type": "button", "action_id": "open", "text": {"type": "plain_text", "text": "o"}}
            ],
        }
    ]
    posted = await client.chat_postMessage(channel="C0PAYDEPLOY", text="card", blocks=blocks)
    message = slack_sim.message("C0PAYDEPLOY", posted["ts"])
    assert message is not None
    before = len(slack_sim.open_views("U0ONCALL"))
    response = await sender.click("U0ONCALL", "open", "", message=message).send()
    assert response.status_code == 200
    views = await slack_sim.wait_for(
        lambda: len(slack_sim.open_views("U0ONCALL")) > before and slack_sim.open_views("U0ONCALL")
    )
    return views[-1]


async def test_submission_answers_are_applied_like_slack(
    modal_app: tuple[SlackSender, list[dict[str, Any]]],
    slack_sim: SlackSim,
    client: AsyncWebClient,
) -> None:
    sender, seen = modal_app
    view = await _open(sender, slack_sim, client)
    assert slack_sim.open_views("U0OUTSIDER") == []

    def typed(text: str) -> dict[str, dict[str, str]]:
        return {"revert_url": {"url": text}}

    response = await sender.view_submission("U0ONCALL", view, typed("errors")).send()
    assert response.status_code == 200
    assert slack_sim.view_errors(view["id"]) == {"revert_url": "Give a URL."}
    assert [v["id"] for v in slack_sim.open_views("U0ONCALL")] == [view["id"]]

    await sender.view_submission("U0ONCALL", view, typed("update")).send()
    (updated,) = slack_sim.open_views("U0ONCALL")
    assert updated["id"] == view["id"] and updated["title"]["text"] == "New"
    assert updated["hash"] != view["hash"]
    assert slack_sim.view_errors(view["id"]) == {}

    forged = await sender.view_submission(
        "U0ONCALL", updated, typed("x"), bad_signature=True
    ).send()
    assert forged.status_code == 401
    assert len(seen) == 2 and slack_sim.open_views("U0ONCALL") == [updated]

    await sender.view_submission("U0ONCALL", updated, typed("https://x.example/1")).send()
    assert slack_sim.open_views("U0ONCALL") == []
    assert seen[-1]["id"] == view["id"]

    other = await _open(sender, slack_sim, client)
    await sender.view_submission("U0ONCALL", other, typed("clear")).send()
    assert slack_sim.open_views("U0ONCALL") == []


async def test_clicks_and_commands_mint_triggers_for_the_clicking_user(
    slack_sim: SlackSim, signing_secret: str, client: AsyncWebClient
) -> None:
    sender = SlackSender("http://unused", signing_secret, sim=slack_sim)
    sender.slash_command("U0OUTSIDER", "outsider", "payment-router")
    assert sender.last_trigger_id is not None
    await client.views_open(trigger_id=sender.last_trigger_id, view=MODAL)
    sender.click("U0ONCALL", "open", "", message={"ts": "1.2", "blocks": []})
    assert sender.last_trigger_id is not None
    await client.views_open(trigger_id=sender.last_trigger_id, view=MODAL)
    assert len(slack_sim.open_views("U0OUTSIDER")) == 1
    assert len(slack_sim.open_views("U0ONCALL")) == 1
