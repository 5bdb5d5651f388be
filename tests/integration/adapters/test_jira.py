"""JiraTickets (bot.adapters.jira): the real `jira` client against JiraSim, over HTTP.

Aspects under test:
- constructing touches no network (Jira down at start is not fatal); `check()` reads
  serverInfo: "Jira Cloud 1001.0.0" / "Jira Server 9.12.0", and decides Cloud or Server
  when `cloud` is None;
- create, on Cloud (Basic email:token, assignee looked up by `query=` → accountId) and on
  Server (Bearer PAT, `username=` → name): the exact requests the client sent, one POST with
  project {"key"} and issuetype {"name"} and no project/issue type lookups; lookups cached;
  an email Jira Cloud hides still resolves when it is the only match; an unknown assignee →
  InvalidRequest naming it, nothing created;
- find_by_label: the JQL sent, on Cloud through /search/jql (the classic /search is gone
  there), on Server through /search; empty before `search_lag`, found after;
- get, set_due (PUT {"fields": {"duedate"}}; None clears), comment, reopen (simple, classic
  "Reopen Issue", a workflow without one → None, not done → unchanged);
- errors: 400 → InvalidRequest naming every field (also the fixture's errorMessages-only
  shape); 401 → Forbidden, token never in the message; 404 → TargetNotFound; 429 →
  Unreachable with Retry-After's delay after the bounded retries; 503, a refused
  connection and a read timeout → Unreachable fast, the retries counted on the sim.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from bot.adapters.jira import JiraTickets
from bot.core.errors import Forbidden, InvalidRequest, TargetNotFound, Unreachable
from bot.core.model import TicketRef, TicketSpec
from bot.sim.jira import JiraSim
from tests.helpers import eventually

EMAIL, TOKEN = "rollbot@example.com", "jira-sim-token"
LEAD = "payments-lead@example.com"
LABEL = "rollbot-payment-router-1.13.0-remove-release-flag"
API = "/rest/api/2"
PROJECTS: dict[str, dict[str, Any]] = {
    "PAY": {},
    "OPS": {"required": ["priority"]},
    "OLD": {"workflow": "classic"},
    "FIN": {"workflow": "no-reopen"},
}


@pytest.fixture
def cloud() -> Iterator[JiraSim]:
    with JiraSim(projects=PROJECTS) as sim:
        sim.add_user(LEAD, "Pat Lead")
        yield sim


@pytest.fixture
def server() -> Iterator[JiraSim]:
    with JiraSim(deployment="Server", projects=PROJECTS) as sim:
        sim.add_user(LEAD, "Pat Lead", name="plead")
        yield sim


def make(sim: JiraSim, **kw: Any) -> JiraTickets:
    options: dict[str, Any] = {
        "url": sim.url,
        "email": EMAIL if sim.cloud else None,
        "api_token": TOKEN,
        "timeout": 5.0,
        "max_retry_delay": 0.05,
    }
    options.update(kw)
    return JiraTickets(**options)


def spec(project: str = "PAY", **kw: Any) -> TicketSpec:
    fields: dict[str, Any] = {
        "project": project,
        "summary": "Remove payments.new-router.enabled (payment-router 1.13.0)",
        "description": "h3. Why\nThe release is at 100 %.",
        "labels": ("rollbot", LABEL),
        "due": date(2030, 1, 31),
    }
    fields.update(kw)
    return TicketSpec(**fields)


async def until_found(tickets: JiraTickets, project: str, label: str) -> list[TicketRef]:
    return await eventually(
        lambda: tickets.find_by_label(project, label),
        timeout=5,
        interval=0.05,
        what=f"a ticket labelled {label} found",
    )


# ---------------------------------------------------------------------- check


async def test_check_and_no_network_at_construction(cloud: JiraSim, server: JiraSim) -> None:
    undecided = make(cloud)
    assert cloud.requests == []  # nothing sent until asked
    assert await undecided.check() == "Jira Cloud 1001.0.0"
    assert undecided.cloud is True
    on_server = make(server)
    assert await on_server.check() == "Jira Server 9.12.0"
    assert on_server.cloud is False
    (info,) = server.requests
    assert (info.path, info.headers["authorization"]) == (f"{API}/serverInfo", "Bearer <redacted>")


async def test_jira_down_at_start_is_not_fatal(cloud: JiraSim) -> None:
    cloud.set_down(True, down_mode="refuse")
    tickets = make(cloud)  # no error: nothing connects yet
    with pytest.raises(Unreachable, match="cannot connect"):
        await tickets.check()
    cloud.set_down(False)
    assert await tickets.check() == "Jira Cloud 1001.0.0"


# ---------------------------------------------------------------------- create


async def test_create_on_cloud_sends_exactly_this(cloud: JiraSim) -> None:
    tickets = make(cloud, cloud=True)
    ref = await tickets.create(spec(assignee=LEAD, extra_fields=(("priority", {"name": "High"}),)))
    assert ref == TicketRef(
        key="PAY-1",
        url=f"{cloud.url}/browse/PAY-1",
        status="To Do",
        status_category="new",
        due=date(2030, 1, 31),
        labels=("rollbot", LABEL),
    )
    lookup, post = cloud.requests
    assert (lookup.method, lookup.path) == ("GET", f"{API}/user/search")
    assert lookup.params("query") == [LEAD]
    assert (post.method, post.path, post.status) == ("POST", f"{API}/issue", 201)
    account = cloud.issues["PAY-1"]["fields"]["assignee"]["accountId"]
    assert post.body == {
        "fields": {
            "project": {"key": "PAY"},
            "issuetype": {"name": "Task"},
            "summary": "Remove payments.new-router.enabled (payment-router 1.13.0)",
            "description": "h3. Why\nThe release is at 100 %.",
            "labels": ["rollbot", LABEL],
            "duedate": "2030-01-31",
            "assignee": {"accountId": account},
            "priority": {"name": "High"},
        }
    }
    assert post.headers["authorization"] == "Basic <redacted>"
    assert post.headers["content-type"] == "application/json"
    assert post.user == EMAIL

    await tickets.create(spec(assignee=LEAD, labels=("second",)))
    assert len(cloud.requests_to("GET", f"{API}/user/search")) == 1  # cached
    assert cloud.issues["PAY-2"]["fields"]["assignee"]["accountId"] == account


async def test_create_on_server_with_a_pat(server: JiraSim) -> None:
    tickets = make(server)  # cloud=None: serverInfo decides
    ref = await tickets.create(spec(assignee=LEAD, due=None))
    assert ref.key == "PAY-1" and ref.due is None
    info, lookup, post = server.requests
    assert info.path == f"{API}/serverInfo"
    assert lookup.params("username") == [LEAD] and lookup.params("query") == []
    assert post.body["fields"]["assignee"] == {"name": "plead"}
    assert "duedate" not in post.body["fields"]
    assert {r.headers["authorization"] for r in server.requests} == {"Bearer <redacted>"}
    assert server.issues["PAY-1"]["fields"]["assignee"]["name"] == "plead"


async def test_assignee_as_account_id_is_sent_as_is(cloud: JiraSim) -> None:
    account = cloud.add_user("someone@example.com", "Some One", "5b109f2e9729b51b54dc274d")
    await make(cloud, cloud=True).create(spec(assignee=account))
    (post,) = cloud.requests
    assert post.body["fields"]["assignee"] == {"accountId": account}


async def test_hidden_email_resolves_when_it_is_the_only_match(cloud: JiraSim) -> None:
    account = cloud.add_user("private@example.com", "Private Person", email_visible=False)
    await make(cloud, cloud=True).create(spec(assignee="private@example.com"))
    assert cloud.issues["PAY-1"]["fields"]["assignee"]["accountId"] == account


async def test_unknown_assignee(cloud: JiraSim, server: JiraSim) -> None:
    for sim in (cloud, server):
        with pytest.raises(InvalidRequest, match=re.escape("nobody@example.com")):
            await make(sim).create(spec(assignee="nobody@example.com"))
        assert sim.created_count == 0
    with pytest.raises(InvalidRequest) as refused:
        await make(cloud, cloud=True).create(spec(assignee="no-such-account"))
    assert refused.value.message == (
        "Jira refused the ticket: assignee: Specified user does not exist or you do not have "
        "required permissions (given 'no-such-account')"
    )


# ---------------------------------------------------------------------- find_by_label


async def test_find_by_label_on_cloud_follows_the_search_lag(cloud: JiraSim) -> None:
    cloud.search_lag = 1.5
    tickets = make(cloud, cloud=True)
    created = await tickets.create(spec(labels=(LABEL,)))
    await tickets.create(spec(labels=("something-else",)))
    assert await tickets.find_by_label("PAY", LABEL) == []  # not indexed yet
    (found,) = await until_found(tickets, "PAY", LABEL)
    assert found == created
    searches = cloud.requests_to("GET", f"{API}/search/jql")
    assert searches and not cloud.requests_to("GET", f"{API}/search")
    assert searches[0].params("jql") == [f'project = "PAY" AND labels = "{LABEL}"']
    assert searches[0].params("fields") == [
        "summary",
        "status",
        "labels",
        "duedate",
        "resolutiondate",
    ]
    assert cloud.requests_to("GET", f"{API}/field")  # the client's field-name translation


async def test_find_by_label_on_server(server: JiraSim) -> None:
    tickets = make(server)
    await tickets.create(spec(labels=(LABEL,)))
    (found,) = await tickets.find_by_label("PAY", LABEL)
    assert (found.key, found.status, found.status_category) == ("PAY-1", "To Do", "new")
    (search,) = server.requests_to("GET", f"{API}/search")
    assert search.params("jql") == [f'project = "PAY" AND labels = "{LABEL}"']
    assert await tickets.find_by_label("OPS", LABEL) == []


async def test_find_by_label_in_an_unknown_project(cloud: JiraSim) -> None:
    with pytest.raises(InvalidRequest, match="The value 'NOPE' does not exist"):
        await make(cloud, cloud=True).find_by_label("NOPE", LABEL)


# ---------------------------------------------------------------------- get, set_due, comment


async def test_get_set_due_and_comment(cloud: JiraSim) -> None:
    tickets = make(cloud, cloud=True)
    key = (await tickets.create(spec())).key
    cloud.clear_requests()
    await tickets.set_due(key, date(2030, 3, 1))
    puts = cloud.requests_to("PUT", f"{API}/issue/{cloud.issues[key]['id']}")
    assert [p.body for p in puts] == [{"fields": {"duedate": "2030-03-01"}, "update": {}}]
    assert (await tickets.get(key)).due == date(2030, 3, 1)
    await tickets.set_due(key, None)
    assert (await tickets.get(key)).due is None

    await tickets.comment(key, "The flag is still on, 30 days after full rollout.")
    assert cloud.comments(key) == ["The flag is still on, 30 days after full rollout."]
    (post,) = cloud.requests_to("POST", f"{API}/issue/{key}/comment")
    assert post.body == {"body": "The flag is still on, 30 days after full rollout."}

    cloud.transition(key, "Done")
    done = await tickets.get(key)
    assert done.done and done.status == "Done"
    assert done.resolved_at is not None and done.resolved_at.tzinfo is not None


# ---------------------------------------------------------------------- reopen


async def test_reopen(cloud: JiraSim) -> None:
    tickets = make(cloud, cloud=True)
    key = (await tickets.create(spec())).key
    assert await tickets.reopen(key) == "To Do"  # not done: left alone
    assert not cloud.requests_to("POST", f"{API}/issue/{key}/transitions")
    cloud.transition(key, "Done")
    assert await tickets.reopen(key) == "To Do"
    (post,) = cloud.requests_to("POST", f"{API}/issue/{key}/transitions")
    assert post.body == {"transition": {"id": 11}, "fields": {}}  # the client sends an int
    reopened = await tickets.get(key)
    assert (reopened.status_category, reopened.resolved_at) == ("new", None)


async def test_reopen_prefers_a_reopen_transition_and_may_find_none(cloud: JiraSim) -> None:
    tickets = make(cloud, cloud=True)
    old = (await tickets.create(spec("OLD"))).key
    cloud.transition(old, "Resolve Issue")
    assert await tickets.reopen(old) == "Reopened"
    final = (await tickets.create(spec("FIN"))).key
    cloud.transition(final, "Done")
    assert await tickets.reopen(final) is None
    assert cloud.issues[final]["fields"]["status"]["name"] == "Done"


# ---------------------------------------------------------------------- errors


async def test_400_names_every_field(cloud: JiraSim) -> None:
    tickets = make(cloud, cloud=True)
    with pytest.raises(InvalidRequest) as refused:
        await tickets.create(spec("OPS"))
    assert refused.value.message == (
        "Jira refused the ticket: priority: Field 'priority' is required"
    )
    with pytest.raises(InvalidRequest) as refused:
        await tickets.create(spec("OPS", labels=("has space",), issue_type="Incident"))
    message = refused.value.message
    for part in (
        "issuetype: The issue type selected is invalid.",
        "labels: The label 'has space' contains spaces which is invalid.",
        "priority: Field 'priority' is required",
    ):
        assert part in message
    cloud.validation_errors_as_messages = True  # the fixture's shape
    with pytest.raises(InvalidRequest, match="Jira refused the ticket: Field 'priority' is"):
        await tickets.create(spec("OPS"))
    assert cloud.created_count == 0


async def test_401_is_forbidden_and_never_shows_the_token(cloud: JiraSim, server: JiraSim) -> None:
    secret = "wrong-token-do-not-print"
    for sim in (cloud, server):
        with pytest.raises(Forbidden) as refused:
            await make(sim, api_token=secret, cloud=sim.cloud).get("PAY-1")
        assert "401" in refused.value.message
        assert secret not in str(refused.value) and secret not in repr(refused.value)
        assert refused.value.__cause__ is None and refused.value.__context__ is not None


async def test_404_is_target_not_found(cloud: JiraSim) -> None:
    tickets = make(cloud, cloud=True)
    for call in (
        tickets.get("PAY-404"),
        tickets.set_due("PAY-404", date(2030, 1, 1)),
        tickets.comment("PAY-404", "x"),
        tickets.reopen("PAY-404"),
    ):
        with pytest.raises(TargetNotFound) as missing:
            await call
        assert (missing.value.namespace, missing.value.name) == ("PAY", "PAY-404")


async def test_429_after_the_bounded_retries(cloud: JiraSim) -> None:
    cloud.fail_next(2, status=429, retry_after=1)
    tickets = make(cloud, cloud=True, max_retries=1)
    started = time.monotonic()
    with pytest.raises(Unreachable) as limited:
        await tickets.get("PAY-1")
    assert limited.value.delay == 1.0
    assert [r.status for r in cloud.requests] == [429, 429]  # one try + one retry
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("retry_after", [None, 1.0])
async def test_503_is_unreachable_fast(cloud: JiraSim, retry_after: float | None) -> None:
    cloud.set_down(True, retry_after=retry_after)
    tickets = make(cloud, cloud=True, max_retries=2)
    started = time.monotonic()
    with pytest.raises(Unreachable, match="HTTP 503"):
        await tickets.create(spec())
    assert time.monotonic() - started < 5
    # the client retries a 503 only when it carries Retry-After
    assert len(cloud.requests) == (1 if retry_after is None else 3)
    cloud.set_down(False)
    assert (await tickets.create(spec())).key == "PAY-1"


async def test_refused_connection_is_unreachable_fast(cloud: JiraSim) -> None:
    tickets = make(cloud, cloud=True, max_retries=1)
    await tickets.check()  # a pooled keep-alive connection exists
    cloud.set_down(True, down_mode="refuse")
    started = time.monotonic()
    with pytest.raises(Unreachable) as down:
        await tickets.find_by_label("PAY", LABEL)
    assert time.monotonic() - started < 5  # the client alone would sleep 10-20 s
    assert "cannot connect" in down.value.message
    assert TOKEN not in down.value.message


async def test_read_timeout_is_unreachable(cloud: JiraSim) -> None:
    cloud.latency = 1.0
    tickets = make(cloud, cloud=True, timeout=0.2)
    with pytest.raises(Unreachable, match=r"no answer within 0.2 s \(ReadTimeout\)"):
        await tickets.get("PAY-1")
    assert len(cloud.requests) <= 1  # a read timeout is not retried by the client
