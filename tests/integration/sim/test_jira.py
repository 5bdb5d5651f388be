"""JiraSim (bot.sim.jira) on the wire, checked against the Jira fixtures in
tests/fixtures/jira/ (Jira Cloud platform OpenAPI examples).

Aspects under test:
- serverInfo: the fixture's keys (plus `deploymentType`), with the fixture's value types;
  Cloud and Server flavours; served anonymously, refused with wrong credentials;
- auth: Cloud takes Basic email:token only; Server takes a Bearer PAT and Basic; 401 in
  Jira's envelope (and X-Seraph-LoginReason on Server); the request log hides credentials;
- create: 201 with the fixture's keys (`transition` only when the body asks for one), keys
  numbered per project; the fixture's own request body accepted by a sim set up like the
  fixture's site (ADF description stored as text);
- 400s: every field error at once in `errors`; per-project required fields; the fixture's
  errorMessages-only shape through `validation_errors_as_messages`;
- GET issue (field selection, 404 body), PUT (204, validation), comments, transitions
  (simple and classic workflows, resolution set and cleared);
- search: Cloud's /search/jql with `nextPageToken` paging, /search gone (410) on Cloud and
  served on Server; the JQL subset, its 400s; search lag (visible by key at once, by search
  only after `search_lag`);
- user search: Cloud `query` (and `username` refused), Server `username`;
- faults: fail_next, set_down 503 (with Retry-After) and refuse (same port afterwards).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.sim.jira import JiraSim
from tests.helpers import eventually_sync
from tests.plugins.fixtures import load_fixture

EMAIL, TOKEN = "rollbot@example.com", "jira-sim-token"
API = "/rest/api/2"
LABEL = "rollbot-payment-router-1.13.0-remove-release-flag"


@pytest.fixture
def sim() -> Iterator[JiraSim]:
    with JiraSim(projects={"PAY": {}, "OPS": {"required": ["priority"]}}) as s:
        yield s


@pytest.fixture
def server_sim() -> Iterator[JiraSim]:
    with JiraSim(deployment="Server", projects={"PAY": {"workflow": "classic"}}) as s:
        yield s


def client(sim: JiraSim, **kw: Any) -> httpx.Client:
    auth = kw.pop("auth", None)
    headers = kw.pop("headers", {})
    if auth is None and "authorization" not in {k.lower() for k in headers}:
        auth = (EMAIL, TOKEN) if sim.cloud else None
        if auth is None:
            headers = {**headers, "Authorization": f"Bearer {TOKEN}"}
    return httpx.Client(base_url=sim.url, auth=auth, headers=headers, timeout=5.0, **kw)


def task(summary: str = "Remove flag", **fields: Any) -> dict[str, Any]:
    return {
        "fields": {
            "project": {"key": "PAY"},
            "issuetype": {"name": "Task"},
            "summary": summary,
            **fields,
        }
    }


def create(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post(f"{API}/issue", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def search_keys(http: httpx.Client, jql: str) -> list[str]:
    r = http.get(f"{API}/search/jql", params={"jql": jql, "fields": "summary"})
    assert r.status_code == 200, r.text
    return [i["key"] for i in r.json()["issues"]]


# ---------------------------------------------------------------------- serverInfo, auth


def test_server_info_has_the_fixtures_shape(sim: JiraSim) -> None:
    fixture = load_fixture("jira/serverInfo.response-200.json")
    with client(sim) as http:
        info = http.get(f"{API}/serverInfo").json()
    assert set(info) - {"deploymentType"} == set(fixture)
    for key, value in fixture.items():
        assert type(info[key]) is type(value), key
    assert info["deploymentType"] == "Cloud"
    assert info["baseUrl"] == sim.url
    assert info["versionNumbers"] == [1001, 0, 0]
    assert info["version"].startswith("1001.0.0")


def test_server_info_on_server(server_sim: JiraSim) -> None:
    with client(server_sim) as http:
        info = http.get(f"{API}/serverInfo").json()
    assert info["deploymentType"] == "Server"
    assert info["versionNumbers"] == [9, 12, 0]
    assert info["baseUrl"] == server_sim.url


def test_auth(sim: JiraSim, server_sim: JiraSim) -> None:
    anonymous = httpx.Client(base_url=sim.url, timeout=5.0)
    with anonymous:
        assert anonymous.get(f"{API}/serverInfo").status_code == 200  # as in Jira
        r = anonymous.get(f"{API}/myself")
        assert r.status_code == 401
        assert r.json() == {
            "errorMessages": ["Client must be authenticated to access this resource."],
            "errors": {},
        }
    with client(sim, auth=(EMAIL, "wrong")) as http:
        assert http.get(f"{API}/serverInfo").status_code == 401
    with client(sim, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        assert http.get(f"{API}/myself").status_code == 401  # Cloud API tokens are Basic
    with client(sim) as http:
        me = http.get(f"{API}/myself").json()
        assert me["emailAddress"] == EMAIL and me["accountId"]

    with client(server_sim) as http:  # Bearer PAT
        assert http.get(f"{API}/myself").json()["name"] == "rollbot"
    with client(server_sim, auth=("rollbot", TOKEN)) as http:
        assert http.get(f"{API}/myself").status_code == 200
    with client(server_sim, headers={"Authorization": "Bearer nope"}) as http:
        r = http.get(f"{API}/myself")
        assert r.status_code == 401
        assert r.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"

    logged = [r.headers.get("authorization", "") for r in sim.requests + server_sim.requests]
    assert all(TOKEN not in h and "nope" not in h for h in logged)
    assert "Basic <redacted>" in logged and "Bearer <redacted>" in logged


# ---------------------------------------------------------------------- create


def test_create_answers_like_the_fixture(sim: JiraSim) -> None:
    fixture = load_fixture("jira/create-issue.response-201.json")
    with client(sim) as http:
        first = create(http, task())
        second = create(http, {**task("with a transition"), "transition": {"id": "21"}})
        ops = create(http, {"fields": {**task()["fields"], "project": {"key": "OPS"},
                                       "priority": {"name": "High"}}})  # fmt: skip
    assert set(first) == set(fixture) - {"transition"}  # only sent back when asked for
    assert set(second) == set(fixture)
    assert second["transition"] == fixture["transition"]
    assert (first["key"], second["key"], ops["key"]) == ("PAY-1", "PAY-2", "OPS-1")
    assert first["self"] == f"{sim.url}{API}/issue/{first['id']}"
    assert sim.issues["PAY-2"]["fields"]["status"]["name"] == "In Progress"
    assert sim.created_count == 3


def test_the_fixtures_request_body_is_accepted_by_a_site_like_the_fixtures() -> None:
    body = load_fixture("jira/create-issue.request.json")
    verbatim = [
        "components", "customfield_10000", "customfield_20000", "customfield_30000",
        "customfield_40000", "customfield_50000", "customfield_60000", "customfield_70000",
        "customfield_80000", "fixVersions", "parent", "priority", "security",
        "timetracking", "versions",
    ]  # fmt: skip
    site = JiraSim(projects={"ED": {"id": "10000", "issuetypes": ["Epic"], "fields": verbatim}})
    with site:
        site.add_user("assignee@example.com", "Assignee", "5b109f2e9729b51b54dc274d")
        site.add_user("reporter@example.com", "Reporter", "5b10a2844c20165700ede21g")
        with client(site) as http:
            created = create(http, body)
            issue = http.get(f"{API}/issue/{created['key']}").json()
    assert created["key"] == "ED-1"
    fields = issue["fields"]
    assert fields["description"] == "Order entry fails when selecting supplier."
    assert fields["environment"] == "UAT"
    assert fields["assignee"]["accountId"] == "5b109f2e9729b51b54dc274d"
    assert fields["reporter"]["accountId"] == "5b10a2844c20165700ede21g"
    assert fields["customfield_80000"] == {"value": "red"}
    assert fields["labels"] == ["bugfix", "blitz_test"]
    assert fields["duedate"] == "2019-05-11"


def test_the_fixtures_body_names_every_field_a_plain_site_does_not_know(sim: JiraSim) -> None:
    body = load_fixture("jira/create-issue.request.json")
    with client(sim) as http:
        r = http.post(f"{API}/issue", json={"fields": {**body["fields"], "project": "PAY"}})
    assert r.status_code == 400
    errors = r.json()["errors"]
    assert r.json()["errorMessages"] == []
    assert errors["customfield_10000"] == (
        "Field 'customfield_10000' cannot be set. It is not on the appropriate screen, or unknown."
    )
    assert {"components", "fixVersions", "parent", "priority", "assignee"} <= set(errors)
    assert sim.created_count == 0


def test_400_names_every_field_at_once(sim: JiraSim) -> None:
    with client(sim) as http:
        r = http.post(
            f"{API}/issue",
            json={
                "fields": {
                    "project": {"key": "PAY"},
                    "issuetype": {"name": "Incident"},
                    "duedate": "11/05/2019",
                    "labels": ["has space"],
                    "assignee": {"accountId": "nobody"},
                }
            },
        )
        assert r.status_code == 400
        assert r.json() == {
            "errorMessages": [],
            "errors": {
                "issuetype": "The issue type selected is invalid.",
                "duedate": "Error parsing date string: 11/05/2019",
                "labels": "The label 'has space' contains spaces which is invalid.",
                "assignee": "Specified user does not exist or you do not have required permissions",
                "summary": "You must specify a summary of the issue.",
            },
        }
        r = http.post(f"{API}/issue", json=task(project={"key": "NOPE"}))
        assert r.json() == {
            "errorMessages": [],
            "errors": {"project": "Specify a valid project ID or key"},
        }
        r = http.post(f"{API}/issue", json=task("two\nlines"))
        assert r.json()["errors"] == {
            "summary": "The summary is invalid because it contains newline characters."
        }
    assert sim.created_count == 0


def test_required_fields_and_the_fixtures_400_shape(sim: JiraSim) -> None:
    fixture = load_fixture("jira/create-issue.response-400.json")
    body = {"fields": {**task()["fields"], "project": {"key": "OPS"}}}
    with client(sim) as http:
        r = http.post(f"{API}/issue", json=body)
        assert r.status_code == 400
        assert r.json() == {
            "errorMessages": [],
            "errors": {"priority": "Field 'priority' is required"},
        }
        sim.validation_errors_as_messages = True
        r = http.post(f"{API}/issue", json=body)
        assert r.status_code == 400
        assert r.json() == fixture


def test_a_project_by_id_and_an_adf_description(sim: JiraSim) -> None:
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "First."}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "Second."}]},
        ],
    }
    with client(sim) as http:
        created = create(http, task(project={"id": "10000"}, description=adf))
        assert http.get(f"{API}/issue/{created['key']}").json()["fields"]["description"] == (
            "First.\n\nSecond."
        )
        r = http.post(f"{API}/issue", json=task(description={"not": "adf"}))
        assert r.json()["errors"] == {"description": "Operation value must be a string"}


# ---------------------------------------------------------------------- read, edit, comment


def test_get_issue_fields_and_404(sim: JiraSim) -> None:
    with client(sim) as http:
        key = create(http, task(labels=[LABEL], duedate="2030-01-31"))["key"]
        issue = http.get(f"{API}/issue/{key}").json()
        assert issue["key"] == key and issue["self"].startswith(sim.url)
        fields = issue["fields"]
        assert fields["status"]["name"] == "To Do"
        assert fields["status"]["statusCategory"]["key"] == "new"
        assert fields["resolutiondate"] is None and fields["resolution"] is None
        assert fields["project"]["key"] == "PAY" and fields["issuetype"]["name"] == "Task"
        assert fields["reporter"]["emailAddress"] == EMAIL
        for stamp in ("created", "updated"):
            assert time.strptime(fields[stamp][:19], "%Y-%m-%dT%H:%M:%S")
            assert fields[stamp].endswith("+0000")

        some = http.get(f"{API}/issue/{key.lower()}", params={"fields": "duedate,labels"}).json()
        assert some["fields"] == {"duedate": "2030-01-31", "labels": [LABEL]}

        r = http.get(f"{API}/issue/PAY-99")
        assert r.status_code == 404
        assert r.json() == {
            "errorMessages": ["Issue does not exist or you do not have permission to see it."],
            "errors": {},
        }
        r = http.get("/rest/api/2/nothing-here")
        assert r.status_code == 404 and r.json()["message"].startswith("null for uri")


def test_edit_issue(sim: JiraSim) -> None:
    with client(sim) as http:
        key = create(http, task(labels=["a"]))["key"]
        r = http.put(
            f"{API}/issue/{key}",
            json={"fields": {"duedate": "2031-02-03"}, "update": {"labels": [{"add": "b"}]}},
        )
        assert r.status_code == 204 and r.content == b""
        assert http.put(f"{API}/issue/{key}", json={"fields": {"duedate": "soon"}}).json() == {
            "errorMessages": [],
            "errors": {"duedate": "Error parsing date string: soon"},
        }
        assert http.put(f"{API}/issue/PAY-99", json={"fields": {}}).status_code == 404
    fields = sim.issues[key]["fields"]
    assert (fields["duedate"], fields["labels"]) == ("2031-02-03", ["a", "b"])


def test_comments(sim: JiraSim) -> None:
    with client(sim) as http:
        key = create(http, task())["key"]
        r = http.post(f"{API}/issue/{key}/comment", json={"body": "Flag still on: h+30."})
        assert r.status_code == 201
        comment = r.json()
        assert comment["body"] == "Flag still on: h+30."
        assert comment["author"]["emailAddress"] == EMAIL
        assert (
            comment["self"]
            == f"{sim.url}{API}/issue/{sim.issues[key]['id']}/comment/{comment['id']}"
        )
        listed = http.get(f"{API}/issue/{key}/comment").json()
        assert listed["total"] == 1 and listed["comments"][0]["id"] == comment["id"]
        r = http.post(f"{API}/issue/{key}/comment", json={"body": "  "})
        assert r.status_code == 400
        assert r.json()["errors"] == {"comment": "Comment body can not be empty!"}
    assert sim.comments(key) == ["Flag still on: h+30."]


# ---------------------------------------------------------------------- transitions


def test_simple_workflow_transitions(sim: JiraSim) -> None:
    with client(sim) as http:
        key = create(http, task())["key"]
        listed = http.get(f"{API}/issue/{key}/transitions").json()["transitions"]
        assert [(t["id"], t["name"], t["to"]["statusCategory"]["key"]) for t in listed] == [
            ("21", "In Progress", "indeterminate"),
            ("31", "Done", "done"),
        ]
        r = http.post(f"{API}/issue/{key}/transitions", json={"transition": {"id": 31}})
        assert r.status_code == 204
        done = sim.issues[key]["fields"]
        assert done["status"]["name"] == "Done"
        assert done["resolution"]["name"] == "Done" and done["resolutiondate"]
        r = http.post(f"{API}/issue/{key}/transitions", json={"transition": {"id": "31"}})
        assert r.status_code == 400
        assert r.json()["errorMessages"] == ["Transition id '31' is not valid for this issue."]
    sim.transition(key, "To Do")  # a person reopens it
    reopened = sim.issues[key]["fields"]
    assert reopened["status"]["name"] == "To Do"
    assert reopened["resolutiondate"] is None and reopened["resolution"] is None


def test_classic_and_no_reopen_workflows(server_sim: JiraSim) -> None:
    with client(server_sim) as http:
        key = create(http, task())["key"]
        assert server_sim.issues[key]["fields"]["status"]["name"] == "Open"
        server_sim.transition(key, "Resolve Issue")
        names = [
            t["name"] for t in http.get(f"{API}/issue/{key}/transitions").json()["transitions"]
        ]
        assert names == ["Close Issue", "Reopen Issue"]
    with JiraSim(projects={"PAY": {"workflow": "no-reopen"}}) as final, client(final) as http:
        key = create(http, task())["key"]
        final.transition(key, "Done")
        assert http.get(f"{API}/issue/{key}/transitions").json()["transitions"] == []
        with pytest.raises(ValueError, match="no transition"):
            final.transition(key, "To Do")


# ---------------------------------------------------------------------- search


def test_cloud_search_jql_and_paging(sim: JiraSim) -> None:
    with client(sim) as http:
        for i in range(3):
            create(http, task(f"t{i}", labels=[LABEL, f"n{i}"]))
        create(http, task("other", labels=["other"]))
        jql = f'project = "PAY" AND labels = "{LABEL}" ORDER BY created DESC'
        r = http.get(f"{API}/search/jql", params={"jql": jql, "fields": ["summary", "labels"],
                                                  "maxResults": 2})  # fmt: skip
        page = r.json()
        assert [i["key"] for i in page["issues"]] == ["PAY-1", "PAY-2"]
        assert page["isLast"] is False
        assert set(page["issues"][0]["fields"]) == {"summary", "labels"}
        r = http.get(
            f"{API}/search/jql",
            params={"jql": jql, "maxResults": 2, "nextPageToken": page["nextPageToken"]},
        )
        rest = r.json()
        assert rest["issues"] == [{"id": sim.issues["PAY-3"]["id"]}]  # default fields: id
        assert rest["isLast"] is True and "nextPageToken" not in rest
        posted = http.post(f"{API}/search/jql", json={"jql": "labels in (n0, 'n2')",
                                                      "fields": ["summary"]})  # fmt: skip
        assert [i["key"] for i in posted.json()["issues"]] == ["PAY-1", "PAY-3"]
        assert search_keys(http, "labels != other AND project = PAY") == ["PAY-1", "PAY-2", "PAY-3"]
        assert search_keys(http, "statusCategory != Done and labels not in (n1)") == [
            "PAY-1",
            "PAY-3",
            "PAY-4",
        ]
        assert search_keys(http, "labels is EMPTY") == []
        r = http.get(f"{API}/search", params={"jql": jql})
        assert r.status_code == 410
        assert "/rest/api/3/search/jql" in r.json()["errorMessages"][0]


def test_server_search(server_sim: JiraSim) -> None:
    with client(server_sim) as http:
        create(http, task(labels=[LABEL]))
        r = http.get(
            f"{API}/search",
            params={"jql": f'project = PAY AND labels = "{LABEL}"', "fields": ["status"],
                    "startAt": 0, "maxResults": 50, "validateQuery": "True"},
        )  # fmt: skip
        body = r.json()
        assert (body["startAt"], body["maxResults"], body["total"]) == (0, 50, 1)
        assert body["issues"][0]["fields"]["status"]["name"] == "Open"
        assert http.get(f"{API}/search/jql", params={"jql": "project = PAY"}).status_code == 404


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("project = PAY OR labels = x", "JiraSim understands only AND"),
        ("(project = PAY)", "JiraSim understands only AND"),
        ("assignee = currentUser()", "JiraSim understands only AND"),
        ("summary ~ flag", "Field 'summary' does not exist"),
        ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
        ("status = Nonsense", "The value 'Nonsense' does not exist for the field 'status'."),
        ("labels = a@b", "The character '@' is a reserved JQL character"),
        ('labels = "open', "has not been completed"),
        ("project PAY", "Expecting operator but got 'PAY'"),
        ("project = PAY labels = x", "Expecting either 'OR' or 'AND' but got 'labels'"),
        ("labels = and", "You must surround 'and' in quotation marks"),
    ],
)
def test_jql_the_sim_refuses(sim: JiraSim, jql: str, message: str) -> None:
    with client(sim) as http:
        r = http.get(f"{API}/search/jql", params={"jql": jql})
    assert r.status_code == 400
    body = r.json()
    assert body["errors"] == {}
    assert message in body["errorMessages"][0]


def test_search_lags_creation(sim: JiraSim) -> None:
    sim.search_lag = 1.0
    jql = f'project = "PAY" AND labels = "{LABEL}"'
    with client(sim) as http:
        created_at = time.monotonic()
        key = create(http, task(labels=[LABEL]))["key"]
        assert http.get(f"{API}/issue/{key}").status_code == 200  # by key: at once
        assert search_keys(http, jql) == []  # the index has not caught up
        eventually_sync(lambda: search_keys(http, jql), timeout=5, interval=0.05, what="searchable")
    assert time.monotonic() - created_at >= 1.0


# ---------------------------------------------------------------------- users


def test_user_search(sim: JiraSim, server_sim: JiraSim) -> None:
    lead = sim.add_user("payments-lead@example.com", "Pat Lead")
    sim.add_user("gone@example.com", "Gone Lead", active=False)
    with client(sim) as http:
        found = http.get(f"{API}/user/search", params={"query": "payments-lead@example.com"})
        assert [u["accountId"] for u in found.json()] == [lead]
        assert set(found.json()[0]) >= {"accountId", "emailAddress", "displayName", "active"}
        by_name = http.get(f"{API}/user/search", params={"query": "lead"}).json()
        assert [u["displayName"] for u in by_name] == ["Pat Lead"]  # inactive left out
        both = http.get(
            f"{API}/user/search", params={"query": "lead", "includeInactive": "True"}
        ).json()
        assert len(both) == 2
        r = http.get(f"{API}/user/search", params={"username": "pat"})
        assert r.status_code == 400 and "GDPR strict mode" in r.json()["errorMessages"][0]
    name = server_sim.add_user("payments-lead@example.com", "Pat Lead", name="plead")
    with client(server_sim) as http:
        found = http.get(f"{API}/user/search", params={"username": "payments-lead@example.com"})
        assert [u["name"] for u in found.json()] == [name] == ["plead"]
        assert http.get(f"{API}/user/search").status_code == 400


# ---------------------------------------------------------------------- faults


def test_fail_next_and_503(sim: JiraSim) -> None:
    sim.fail_next(1, status=429, retry_after=7, path=f"{API}/issue")
    with client(sim) as http:
        assert http.get(f"{API}/serverInfo").status_code == 200  # other paths untouched
        r = http.post(f"{API}/issue", json=task())
        assert (r.status_code, r.headers["Retry-After"]) == (429, "7")
        assert r.json() == {"errorMessages": ["Too Many Requests"], "errors": {}}
        sim.fail_next(1, status=502, body="<html>Bad gateway</html>")
        assert http.get(f"{API}/myself").text == "<html>Bad gateway</html>"
        sim.set_down(True, retry_after=3)
        r = http.get(f"{API}/myself")
        assert (r.status_code, r.headers["Retry-After"]) == (503, "3")
        assert r.json()["errorMessages"][0].startswith("Jira is unavailable")
        sim.set_down(False)
        assert http.get(f"{API}/myself").status_code == 200
    statuses = [r.status for r in sim.requests]
    assert statuses == [200, 429, 502, 503, 200]


def test_refuse_then_back_on_the_same_port(sim: JiraSim) -> None:
    url = sim.url
    with client(sim) as http:
        create(http, task())
    sim.set_down(True, down_mode="refuse")
    with client(sim) as http, pytest.raises(httpx.ConnectError):
        http.get(f"{API}/serverInfo")
    sim.set_down(False)
    assert sim.url == url
    with client(sim) as http:
        assert http.get(f"{API}/issue/PAY-1").status_code == 200  # state kept


def test_requests_log_keeps_bodies(sim: JiraSim) -> None:
    with client(sim) as http:
        create(http, task(labels=[LABEL]))
    (post,) = sim.requests_to("POST", f"{API}/issue")
    assert post.body == json.loads(json.dumps(task(labels=[LABEL])))
    assert json.loads(post.raw) == post.body and post.content_type == "application/json"
    assert post.user == EMAIL and post.status == 201
    assert post.response["key"] == "PAY-1"  # the answer is recorded too
    assert post.response_headers["content-type"] == "application/json"
    assert post.headers["authorization"] == "Basic <redacted>"
