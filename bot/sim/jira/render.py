"""Jira's JSON shapes for the sim's objects: issues (with field selection), users (Cloud's
accountId shape or Server's name/key shape), projects, issue types, statuses and their
categories, transitions, comments, serverInfo and the field list.

Shapes follow the Jira Cloud OpenAPI examples in tests/fixtures/jira/ (REST v2: rich text is
answered as strings). Every `self` link is absolute, under the sim's base `url`.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from bot.sim.jira.model import (
    CATEGORIES,
    FIELDS,
    ISSUE_TYPES,
    NOT_NAVIGABLE,
    PRIORITIES,
    SETTABLE_ON_CREATE,
    STATUSES,
    Comment,
    Issue,
    JiraState,
    Project,
    User,
    jira_time,
)

__all__ = ["API", "CLOUD_VERSION", "ISSUE_EXPAND", "SERVER_VERSION", "JiraRenderer", "select"]

API = "/rest/api/2"
CLOUD_VERSION = ("1001.0.0-SNAPSHOT", [1001, 0, 0], 100_280)
SERVER_VERSION = ("9.12.0", [9, 12, 0], 9_120_000)

ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


class JiraRenderer:
    """Renders `state`'s objects as Jira answers them (Cloud or Server, as `state.cloud`).

    `url` is the sim's base URL; the sim sets it once its socket is bound. Callers hold
    `state.lock`.
    """

    def __init__(self, state: JiraState, url: str = "") -> None:
        self.state = state
        self.url = url

    @property
    def cloud(self) -> bool:
        return self.state.cloud

    def server_info(self) -> dict[str, Any]:
        now = jira_time()
        if self.cloud:
            version, numbers, build = CLOUD_VERSION
            return {
                "baseUrl": self.url,
                "buildDate": "2025-01-15T03:04:05.000+0000",
                "buildNumber": build,
                "defaultLocale": {"locale": "en_US"},
                "deploymentType": "Cloud",
                "displayUrl": self.url,
                "displayUrlServicedeskHelpCenter": self.url,
                "scmInfo": "5d1f7e2ab7d6c0a3c2a1a0f5f14d3c2b1a0f9e8d",
                "serverTime": now,
                "serverTimeZone": "Etc/UTC",
                "serverTitle": "Jira",
                "version": version,
                "versionNumbers": numbers,
            }
        version, numbers, build = SERVER_VERSION
        return {
            "baseUrl": self.url,
            "version": version,
            "versionNumbers": numbers,
            "deploymentType": "Server",
            "buildNumber": build,
            "buildDate": "2023-11-21T00:00:00.000+0000",
            "databaseBuildNumber": build,
            "serverTime": now,
            "scmInfo": "0b4b6fd7c5a4f5c0bd8c71ad4d0e5f8e6f6d9d1a",
            "serverTitle": "Jira",
        }

    def fields(self) -> list[dict[str, Any]]:
        """GET /field: the fields the sim knows, then the projects' extra fields."""
        out = [
            {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": fid in SETTABLE_ON_CREATE,
                "navigable": fid not in NOT_NAVIGABLE,
                "searchable": True,
                "clauseNames": list(clauses),
            }
            for fid, (name, clauses) in FIELDS.items()
        ]
        with self.state.lock:
            custom = sorted({f for p in self.state.projects.values() for f in p.extra_fields})
        for fid in custom:
            number = fid.removeprefix("customfield_")
            clause_names = [f"cf[{number}]"] if fid.startswith("customfield_") else [fid]
            out.append(
                {
                    "id": fid,
                    "key": fid,
                    "name": fid,
                    "custom": fid.startswith("customfield_"),
                    "orderable": True,
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": clause_names,
                }
            )
        return out

    def issue_url(self, issue: Issue) -> str:
        return f"{self.url}{API}/issue/{issue.id}"

    def issue(
        self, issue: Issue, wanted: set[str] | None, *, search: bool = False
    ) -> dict[str, Any]:
        """An issue with the `wanted` fields (None: all); search with only "id" → {"id"}."""
        everything = self.issue_fields(issue)
        selected = select(everything, wanted)
        out: dict[str, Any] = {
            "expand": ISSUE_EXPAND,
            "id": issue.id,
            "self": self.issue_url(issue),
            "key": issue.key,
        }
        if search and wanted == {"id"}:
            return {"id": issue.id}
        out["fields"] = selected
        return out

    def issue_fields(self, issue: Issue) -> dict[str, Any]:
        project = self.state.projects[issue.project]
        category = STATUSES[issue.status][1]
        users = self.state.users
        return copy.deepcopy(
            {
                "summary": issue.summary,
                "description": issue.description,
                "environment": issue.environment,
                "project": self.project(project, short=True),
                "issuetype": self.issue_type(issue.issue_type),
                "status": self.status(issue.status),
                "statusCategory": self.category(category),
                "resolution": (
                    {
                        "self": f"{self.url}{API}/resolution/10000",
                        "id": "10000",
                        "description": "Work has been completed on this issue.",
                        "name": "Done",
                    }
                    if issue.resolutiondate
                    else None
                ),
                "resolutiondate": issue.resolutiondate,
                "labels": list(issue.labels),
                "duedate": issue.duedate,
                "assignee": self.user(users[issue.assignee]) if issue.assignee else None,
                "reporter": self.user(users[issue.reporter]) if issue.reporter else None,
                "creator": self.user(users[issue.creator]) if issue.creator else None,
                "priority": {
                    "self": f"{self.url}{API}/priority/{PRIORITIES[issue.priority]}",
                    "iconUrl": f"{self.url}/images/icons/priorities/{issue.priority.lower()}.svg",
                    "name": issue.priority,
                    "id": PRIORITIES[issue.priority],
                },
                "created": issue.created,
                "updated": issue.updated,
                "statuscategorychangedate": issue.status_changed,
                "comment": {
                    "comments": [self.comment(issue, c) for c in issue.comments],
                    "self": f"{self.url}{API}/issue/{issue.id}/comment",
                    "maxResults": len(issue.comments),
                    "total": len(issue.comments),
                    "startAt": 0,
                },
                **issue.extra,
            }
        )

    def user(self, user: User) -> dict[str, Any]:
        avatars = {
            size: f"https://avatar.example.invalid/{user.account_id}/{size}.png"
            for size in ("48x48", "24x24", "16x16", "32x32")
        }
        if self.cloud:
            out: dict[str, Any] = {
                "self": f"{self.url}{API}/user?accountId={user.account_id}",
                "accountId": user.account_id,
                "accountType": "atlassian",
                "avatarUrls": avatars,
                "displayName": user.display_name,
                "active": user.active,
                "timeZone": "Etc/UTC",
                "locale": "en_US",
            }
            if user.email_visible:
                out["emailAddress"] = user.email
            return out
        return {
            "self": f"{self.url}{API}/user?username={user.name}",
            "key": f"JIRAUSER{10000 + int(hashlib.sha1(user.name.encode()).hexdigest()[:4], 16)}",
            "name": user.name,
            "emailAddress": user.email,
            "avatarUrls": avatars,
            "displayName": user.display_name,
            "active": user.active,
            "deleted": False,
            "timeZone": "Etc/UTC",
            "locale": "en_US",
        }

    def project(self, project: Project, *, short: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "self": f"{self.url}{API}/project/{project.id}",
            "id": project.id,
            "key": project.key,
            "name": project.name,
            "projectTypeKey": "software",
        }
        if not short:
            out["issueTypes"] = [self.issue_type(t) for t in project.issue_types]
        return out

    def issue_type(self, name: str) -> dict[str, Any]:
        tid = ISSUE_TYPES[name]
        return {
            "self": f"{self.url}{API}/issuetype/{tid}",
            "id": tid,
            "description": f"A {name.lower()}.",
            "iconUrl": f"{self.url}/images/icons/issuetypes/{name.lower()}.svg",
            "name": name,
            "subtask": name == "Sub-task",
        }

    def category(self, key: str) -> dict[str, Any]:
        cid, name, color = CATEGORIES[key]
        return {
            "self": f"{self.url}{API}/statuscategory/{cid}",
            "id": cid,
            "key": key,
            "colorName": color,
            "name": name,
        }

    def status(self, name: str) -> dict[str, Any]:
        sid, category = STATUSES[name]
        return {
            "self": f"{self.url}{API}/status/{sid}",
            "description": "",
            "iconUrl": f"{self.url}/images/icons/statuses/generic.png",
            "name": name,
            "id": sid,
            "statusCategory": self.category(category),
        }

    def transition(self, tid: str, name: str, to: str) -> dict[str, Any]:
        return {
            "id": tid,
            "name": name,
            "to": self.status(to),
            "hasScreen": False,
            "isGlobal": name == to,
            "isInitial": False,
            "isAvailable": True,
            "isConditional": False,
            "isLooped": False,
        }

    def comment(self, issue: Issue, comment: Comment) -> dict[str, Any]:
        author = self.user(self.state.users[comment.author])
        return {
            "self": f"{self.url}{API}/issue/{issue.id}/comment/{comment.id}",
            "id": comment.id,
            "author": author,
            "body": comment.body,
            "updateAuthor": author,
            "created": comment.created,
            "updated": comment.created,
            "jsdPublic": True,
        }


def select(fields: dict[str, Any], wanted: set[str] | None) -> dict[str, Any]:
    """The `fields=` selection: None or *all → all, *navigable → all but the comments,
    else the names given; "-name" leaves a field out."""
    if wanted is None or "*all" in wanted:
        chosen = set(fields)
    elif "*navigable" in wanted:
        chosen = {f for f in fields if f not in NOT_NAVIGABLE}
    else:
        chosen = {f for f in wanted if not f.startswith("-")}
    chosen -= {f[1:] for f in (wanted or set()) if f.startswith("-")}
    return {k: v for k, v in fields.items() if k in chosen}
