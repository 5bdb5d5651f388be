"""The Slack sim's history, message metadata and fault switches, driven by the real slack_sdk.

Aspects under test:
- chat.postMessage keeps its `metadata` (event type and payload, JSON body or form text)
  with the message; a malformed one is refused (invalid_metadata_format /
  invalid_metadata_schema) and nothing is posted;
- conversations.history: by channel id only (a name is channel_not_found), newest first,
  without thread replies, `oldest`/`latest` exclusive unless `inclusive`, `limit` pages with
  `has_more` and `next_cursor`, a forged cursor is invalid_cursor; metadata only with
  `include_all_metadata` (slack_sdk sends it as 1);
- conversations.replies: the parent, then its replies oldest first, for the parent's ts or
  a reply's; an unknown ts is thread_not_found;
- conversations.list: the channels by id and name, paged;
- clear_faults drops what was forced (errors, 429s) and still pending;
- an archived channel (`archive_channel`): chat.postMessage answers is_archived and stores
  nothing, conversations.list says is_archived and leaves it out with exclude_archived;
  unarchived, it takes posts again;
- `ratelimit_window`: for its seconds, 429 with Retry-After to every second call of each
  method (fraction 0.5; 1/3 every third), refused calls not processed, only the methods
  named when some are; after the window, no 429;
- `lose_answers`: the call is processed (the message is stored) and its answer lost: cut
  after the headers (the client's read fails), HTTP 500, or 429 with Retry-After; only
  processed calls count, a channel narrows it; `lost_answers` lists them.
"""

from __future__ import annotations

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.slack import SlackSim

META = {"event_type": "rollbot_post", "event_payload": {"key": "payments/payment-router@42"}}


@pytest.fixture
def client(slack_sim: SlackSim, bot_token: str) -> AsyncWebClient:
    """A client without retry handlers: each call is one request, as the sim answers it."""
    return AsyncWebClient(token=bot_token, base_url=slack_sim.api_url, retry_handlers=[])


async def test_post_keeps_metadata_history_returns_it_when_asked(
    client: AsyncWebClient, slack_sim: SlackSim
) -> None:
    card = await client.chat_postMessage(channel="#payments-deploys", text="card", metadata=META)
    assert card["message"]["metadata"] == META
    await client.chat_postMessage(channel="C0PAYDEPLOY", text="line", thread_ts=card["ts"])
    form = await client.api_call(
        "chat.postMessage",
        data={
            "channel": "C0PAYDEPLOY",
            "text": "form",
            "metadata": '{"event_type": "x", "event_payload": {"n": 1}}',
        },
    )
    assert form["message"]["metadata"] == {"event_type": "x", "event_payload": {"n": 1}}

    plain = await client.conversations_history(channel="C0PAYDEPLOY")
    assert [m["text"] for m in plain["messages"]] == ["form", "card"]  # newest first, no reply
    assert all("metadata" not in m for m in plain["messages"])
    assert plain["has_more"] is False and plain["response_metadata"]["next_cursor"] == ""
    asked = await client.conversations_history(channel="C0PAYDEPLOY", include_all_metadata=True)
    assert asked["messages"][1]["metadata"] == META
    assert slack_sim.calls_to("conversations.history")[-1].body["include_all_metadata"] == "1"

    with pytest.raises(SlackApiError) as err:
        await client.conversations_history(channel="#payments-deploys")
    assert err.value.response["error"] == "channel_not_found"


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ("{not json", "invalid_metadata_format"),
        ('{"event_payload": {}}', "invalid_metadata_schema"),
        ('{"event_type": "x", "event_payload": [1]}', "invalid_metadata_schema"),
    ],
)
async def test_malformed_metadata_is_refused(
    client: AsyncWebClient, slack_sim: SlackSim, metadata: str, error: str
) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.api_call(
            "chat.postMessage", data={"channel": "C0PAYDEPLOY", "text": "x", "metadata": metadata}
        )
    assert err.value.response["error"] == error
    assert slack_sim.messages("C0PAYDEPLOY") == []


async def test_history_ranges_and_pages(client: AsyncWebClient) -> None:
    # Four posts: the sim's burst for one channel (post_burst=4).
    ts = [
        (await client.chat_postMessage(channel="C0PAYDEPLOY", text=str(i)))["ts"] for i in range(4)
    ]

    between = await client.conversations_history(channel="C0PAYDEPLOY", oldest=ts[0], latest=ts[2])
    assert [m["text"] for m in between["messages"]] == ["1"]
    inclusive = await client.conversations_history(
        channel="C0PAYDEPLOY", oldest=ts[0], latest=ts[2], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["2", "1", "0"]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await client.conversations_history(channel="C0PAYDEPLOY", limit=3, cursor=cursor)
        pages += 1
        seen += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break
    assert (seen, pages) == (["3", "2", "1", "0"], 2)

    with pytest.raises(SlackApiError) as err:
        await client.conversations_history(channel="C0PAYDEPLOY", cursor="bm90IG91cnM=")
    assert err.value.response["error"] == "invalid_cursor"


async def test_replies_of_a_thread(client: AsyncWebClient) -> None:
    parent = (await client.chat_postMessage(channel="C0PAYDEPLOY", text="card"))["ts"]
    first = await client.chat_postMessage(
        channel="C0PAYDEPLOY", text="one", thread_ts=parent, metadata=META
    )
    await client.chat_postMessage(channel="C0PAYDEPLOY", text="two", thread_ts=parent)
    await client.chat_postMessage(channel="C0PAYDEPLOY", text="elsewhere")

    thread = await client.conversations_replies(channel="C0PAYDEPLOY", ts=parent)
    assert [m["text"] for m in thread["messages"]] == ["card", "one", "two"]
    assert "metadata" not in thread["messages"][1]
    by_reply = await client.conversations_replies(
        channel="C0PAYDEPLOY", ts=first["ts"], include_all_metadata=True
    )
    assert [m["text"] for m in by_reply["messages"]] == ["card", "one", "two"]
    assert by_reply["messages"][1]["metadata"] == META
    later = await client.conversations_replies(channel="C0PAYDEPLOY", ts=parent, oldest=first["ts"])
    assert [m["text"] for m in later["messages"]] == ["card", "two"]

    with pytest.raises(SlackApiError) as err:
        await client.conversations_replies(channel="C0PAYDEPLOY", ts="1.000001")
    assert err.value.response["error"] == "thread_not_found"


async def test_conversations_list_pages_the_channels(
    client: AsyncWebClient, slack_sim: SlackSim
) -> None:
    slack_sim.add_channel("C0OTHER", "other")
    first = await client.conversations_list(limit=1)
    assert [c["name"] for c in first["channels"]] == ["other"]
    rest = await client.conversations_list(
        limit=1, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [(c["id"], c["name"]) for c in rest["channels"]] == [("C0PAYDEPLOY", "payments-deploys")]
    assert rest["response_metadata"]["next_cursor"] == ""


async def test_an_archived_channel_refuses_posts(
    client: AsyncWebClient, slack_sim: SlackSim
) -> None:
    slack_sim.add_channel("C0OTHER", "other")
    slack_sim.archive_channel("#other")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0OTHER", text="notice")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "is_archived"
    assert slack_sim.messages("C0OTHER") == []
    listed = await client.conversations_list()
    assert {c["id"]: c["is_archived"] for c in listed["channels"]} == {
        "C0OTHER": True,
        "C0PAYDEPLOY": False,
    }
    live = await client.conversations_list(exclude_archived=True)
    assert [c["id"] for c in live["channels"]] == ["C0PAYDEPLOY"]
    slack_sim.archive_channel("C0OTHER", archived=False)
    await client.chat_postMessage(channel="C0OTHER", text="notice")
    assert [m["text"] for m in slack_sim.messages("C0OTHER")] == ["notice"]


async def test_ratelimit_window_refuses_every_second_call_per_method(
    client: AsyncWebClient, slack_sim: SlackSim
) -> None:
    slack_sim.ratelimit_window(seconds=30, fraction=0.5, retry_after=3)
    outcomes = []
    for i in range(4):
        try:
            await client.chat_postMessage(channel="C0PAYDEPLOY", text=str(i))
            outcomes.append("ok")
        except SlackApiError as err:
            assert err.response.headers["Retry-After"] == "3"
            assert err.response["error"] == "ratelimited"
            outcomes.append(err.response.status_code)
    assert outcomes == ["ok", 429, "ok", 429]
    assert [m["text"] for m in slack_sim.messages("C0PAYDEPLOY")] == ["0", "2"]  # not processed
    # Counted per method: users.info's first call goes through.
    assert (await client.users_info(user="U0ONCALL"))["ok"]
    with pytest.raises(SlackApiError):
        await client.users_info(user="U0ONCALL")

    slack_sim.ratelimit_window(seconds=30, fraction=1 / 3, methods=["chat.update"])
    ts = slack_sim.messages("C0PAYDEPLOY")[0]["ts"]
    statuses = []
    for _ in range(6):
        try:
            await client.chat_update(channel="C0PAYDEPLOY", ts=ts, text="v")
            statuses.append(200)
        except SlackApiError as err:
            statuses.append(err.response.status_code)
    assert statuses == [200, 200, 429, 200, 200, 429]
    for _ in range(3):  # a method not named is left alone
        assert (await client.users_info(user="U0ONCALL"))["ok"]

    slack_sim.ratelimit_window(seconds=0)  # over
    for i in range(3):
        await client.chat_update(channel="C0PAYDEPLOY", ts=ts, text=str(i))


async def test_lost_answers_are_processed_then_lost(
    client: AsyncWebClient, slack_sim: SlackSim
) -> None:
    slack_sim.add_channel("C0OTHER", "other")
    slack_sim.lose_answers("chat.postMessage", how="cut")
    slack_sim.lose_answers("chat.postMessage", how="500")
    slack_sim.lose_answers(
        "chat.postMessage", how="429", retry_after=2, channel="#payments-deploys"
    )
    slack_sim.force_ratelimit("chat.postMessage")  # refused before it runs: loses nothing

    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C0PAYDEPLOY", text="refused")
    assert refused.value.response.status_code == 429
    with pytest.raises(aiohttp.ClientPayloadError):
        await client.chat_postMessage(channel="C0PAYDEPLOY", text="cut", metadata=META)
    with pytest.raises(SlackApiError) as err500:
        await client.chat_postMessage(channel="C0PAYDEPLOY", text="five hundred")
    assert err500.value.response.status_code == 500
    assert (await client.chat_postMessage(channel="C0OTHER", text="other channel"))["ok"]
    with pytest.raises(SlackApiError) as err429:
        await client.chat_postMessage(channel="C0PAYDEPLOY", text="four two nine")
    assert err429.value.response.status_code == 429
    assert err429.value.response.headers["Retry-After"] == "2"
    assert (await client.chat_postMessage(channel="C0PAYDEPLOY", text="answered"))["ok"]

    stored = slack_sim.messages("C0PAYDEPLOY")
    assert [m["text"] for m in stored] == ["cut", "five hundred", "four two nine", "answered"]
    assert stored[0]["metadata"] == META
    lost = slack_sim.lost_answers
    assert [(r.body["text"], how, r.status) for r, how in lost] == [
        ("cut", "cut", 200),
        ("five hundred", "500", 500),
        ("four two nine", "429", 429),
    ]
    with pytest.raises(ValueError, match="how must be"):
        slack_sim.lose_answers("chat.postMessage", how="timeout")


async def test_clear_faults_drops_what_was_forced(
    client: AsyncWebClient, slack_sim: SlackSim
) -> None:
    slack_sim.force_status("chat.postMessage", status=500, times=5)
    slack_sim.force_ratelimit("chat.update", times=5)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C0PAYDEPLOY", text="refused")
    slack_sim.clear_faults()
    posted = await client.chat_postMessage(channel="C0PAYDEPLOY", text="in")
    await client.chat_update(channel="C0PAYDEPLOY", ts=posted["ts"], text="updated")
    assert [m["text"] for m in slack_sim.messages("C0PAYDEPLOY")] == ["updated"]
