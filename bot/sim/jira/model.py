"""The Jira sim's site: projects, users, issues, comments and workflows, and the rules Jira
applies to them (field validation on create and edit, `update` operations, transitions that
set and clear the resolution).

Nothing here speaks HTTP or renders Jira's JSON: `JiraState` holds the data behind one lock,
the endpoints (`api`) call it, `render` turns its objects into Jira's shapes and `jql`
searches it. Validation failures raise `JiraError`, which the server answers in Jira's error
envelope.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from bot.sim.jira.adf import adf_text, is_adf, text_of

__all__ = [
    "CATEGORIES",
    "CLASSIC",
    "FIELDS",
    "ISSUE_TYPES",
    "NOT_NAVIGABLE",
    "NO_ISSUE",
    "PRIORITIES",
    "SETTABLE_ON_CREATE",
    "SETTABLE_ON_EDIT",
    "SIMPLE_TRANSITIONS",
    "STATUSES",
    "WORKFLOWS",
    "Comment",
    "Issue",
    "JiraError",
    "JiraState",
    "Project",
    "User",
    "bad_transition",
    "jira_time",
    "ref_value",
    "validate_update",
]

# statusCategory key → (id, name, colorName)
CATEGORIES: dict[str, tuple[int, str, str]] = {
    "new": (2, "To Do", "blue-gray"),
    "indeterminate": (4, "In Progress", "yellow"),
    "done": (3, "Done", "green"),
}
# status name → (id, category key)
STATUSES: dict[str, tuple[str, str]] = {
    "To Do": ("10000", "new"),
    "In Progress": ("3", "indeterminate"),
    "Done": ("10001", "done"),
    "Open": ("1", "new"),
    "Reopened": ("4", "new"),
    "Resolved": ("5", "done"),
    "Closed": ("6", "done"),
}
ISSUE_TYPES: dict[str, str] = {
    "Epic": "10000",
    "Task": "10001",
    "Bug": "10002",
    "Story": "10003",
    "Sub-task": "10004",
}
PRIORITIES: dict[str, str] = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}

# Fields the sim knows: id → (name, JQL clause names)
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "issuekey": ("Key", ("id", "issue", "issuekey", "key")),
    "summary": ("Summary", ("summary",)),
    "description": ("Description", ("description",)),
    "environment": ("Environment", ("environment",)),
    "project": ("Project", ("project",)),
    "issuetype": ("Issue Type", ("issuetype", "type")),
    "status": ("Status", ("status",)),
    "statusCategory": ("Status Category", ("statusCategory",)),
    "resolution": ("Resolution", ("resolution",)),
    "resolutiondate": ("Resolved", ("resolutiondate", "resolved")),
    "labels": ("Labels", ("labels",)),
    "duedate": ("Due date", ("due", "duedate")),
    "assignee": ("Assignee", ("assignee",)),
    "reporter": ("Reporter", ("reporter",)),
    "creator": ("Creator", ("creator",)),
    "priority": ("Priority", ("priority",)),
    "created": ("Created", ("created", "createdDate")),
    "updated": ("Updated", ("updated", "updatedDate")),
    "statuscategorychangedate": ("Status Category Changed", ("statusCategoryChangedDate",)),
    "comment": ("Comment", ("comment",)),
}
NOT_NAVIGABLE = {"comment"}  # what *navigable (search's default on Server) leaves out
SETTABLE_ON_CREATE = {
    "project",
    "issuetype",
    "summary",
    "description",
    "environment",
    "labels",
    "duedate",
    "assignee",
    "reporter",
    "priority",
}
SETTABLE_ON_EDIT = SETTABLE_ON_CREATE - {"project"}

SIMPLE_TRANSITIONS = (("11", "To Do"), ("21", "In Progress"), ("31", "Done"))
# classic (Jira Server's default workflow): status → [(transition id, name, target)]
CLASSIC: dict[str, list[tuple[str, str, str]]] = {
    "Open": [("4", "Start Progress", "In Progress"), ("5", "Resolve Issue", "Resolved"),
             ("2", "Close Issue", "Closed")],
    "In Progress": [("301", "Stop Progress", "Open"), ("5", "Resolve Issue", "Resolved"),
                    ("2", "Close Issue", "Closed")],
    "Resolved": [("701", "Close Issue", "Closed"), ("3", "Reopen Issue", "Reopened")],
    "Closed": [("3", "Reopen Issue", "Reopened")],
    "Reopened": [("4", "Start Progress", "In Progress"), ("5", "Resolve Issue", "Resolved"),
                 ("2", "Close Issue", "Closed")],
}  # fmt: skip
WORKFLOWS = ("simple", "classic", "no-reopen")

NO_ISSUE = "Issue does not exist or you do not have permission to see it."


class JiraError(Exception):
    """Answer with Jira's error envelope."""

    def __init__(
        self,
        status: int,
        *,
        messages: list[str] | None = None,
        errors: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, messages, errors)
        self.status = status
        self.messages = messages or []
        self.errors = errors or {}


@dataclass(slots=True)
class Project:
    id: str
    key: str
    name: str
    issue_types: list[str]
    required: list[str]
    extra_fields: list[str]
    workflow: str


@dataclass(slots=True)
class User:
    account_id: str
    name: str
    email: str
    display_name: str
    active: bool = True
    email_visible: bool = True


@dataclass(slots=True)
class Comment:
    id: str
    body: str
    author: str  # account id
    created: str


@dataclass(slots=True)
class Issue:
    id: str
    key: str
    project: str  # key
    issue_type: str  # name
    summary: str
    description: str | None
    environment: str | None
    labels: list[str]
    duedate: str | None
    assignee: str | None  # account id
    reporter: str | None
    creator: str | None
    priority: str  # name
    status: str
    resolutiondate: str | None
    created: str
    updated: str
    status_changed: str
    extra: dict[str, Any]
    searchable_at: float  # time.monotonic() from which search sees it
    comments: list[Comment] = field(default_factory=list)


class JiraState:
    """One Jira site's data. Callers hold `lock` around every read and write.

    `cloud` picks Jira Cloud's rules over Server's where they differ (how a user is named in
    a field value, the wording of a bad-user error). `search_lag`: seconds from an issue's
    creation until search sees it, as Jira Cloud's index lags.
    """

    def __init__(
        self,
        *,
        cloud: bool,
        projects: dict[str, dict[str, Any]] | None,
        search_lag: float = 0.0,
    ) -> None:
        self.cloud = cloud
        self.search_lag = search_lag
        self.lock = threading.RLock()
        self.projects: dict[str, Project] = {}
        for i, (key, config) in enumerate((projects or {"PAY": {}}).items()):
            self.add_project(key, config, default_id=str(10000 + i))
        self.users: dict[str, User] = {}  # account id → user
        self.issues: dict[str, Issue] = {}  # key → issue
        self._issue_ids = itertools.count(10000)
        self._comment_ids = itertools.count(10000)
        self._numbers: dict[str, itertools.count[int]] = {}

    # ------------------------------------------------------------------ projects, users

    def add_project(self, key: str, config: dict[str, Any], *, default_id: str) -> None:
        workflow = str(config.get("workflow", "simple"))
        if workflow not in WORKFLOWS:
            raise ValueError(f"workflow must be one of {WORKFLOWS}, not {workflow!r}")
        issue_types = list(config.get("issuetypes", ["Task", "Bug", "Story", "Epic"]))
        unknown = [t for t in issue_types if t not in ISSUE_TYPES]
        if unknown:
            raise ValueError(f"unknown issue types {unknown}; known: {sorted(ISSUE_TYPES)}")
        self.projects[key] = Project(
            id=str(config.get("id", default_id)),
            key=key,
            name=str(config.get("name", key)),
            issue_types=issue_types,
            required=list(config.get("required", [])),
            extra_fields=list(config.get("fields", [])),
            workflow=workflow,
        )

    def add_user(
        self,
        email: str,
        display_name: str,
        account_id: str | None,
        *,
        name: str | None = None,
        active: bool = True,
        email_visible: bool = True,
    ) -> User:
        digest = hashlib.sha1(email.lower().encode()).hexdigest()[:24]
        user = User(
            account_id=account_id or digest,
            name=name or account_id or email.split("@")[0],
            email=email,
            display_name=display_name,
            active=active,
            email_visible=email_visible,
        )
        with self.lock:
            self.users[user.account_id] = user
        return user

    def find_project(self, ref: Any) -> Project | None:
        if ref is None:
            return None
        wanted = str(ref)
        for project in self.projects.values():
            if wanted in (project.id, project.key) or wanted.upper() == project.key:
                return project
        return None

    def issue(self, ref: str) -> Issue:
        """An issue by key (any case) or id; 404 in Jira's words when there is none."""
        issue = self.issues.get(ref.upper())
        if issue is None:
            issue = next((i for i in self.issues.values() if i.id == ref), None)
        if issue is None:
            raise JiraError(404, messages=[NO_ISSUE])
        return issue

    def user_by_name(self, name: str) -> User | None:
        return next((u for u in self.users.values() if u.name == name), None)

    def find_user(self, ref: Any) -> User | None:
        """A user from a field value: Cloud {"accountId"} / {"id"}; Server {"name"}."""
        if not isinstance(ref, dict):
            return None
        if self.cloud:
            account = ref.get("accountId", ref.get("id"))
            return self.users.get(str(account)) if account is not None else None
        name = ref.get("name")
        return self.user_by_name(str(name)) if name is not None else None

    # ------------------------------------------------------------------ fields

    def validate(
        self, project: Project, fields: dict[str, Any], *, creating: bool
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Jira's field checks: (clean values, errors by field), every error at once."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        settable = SETTABLE_ON_CREATE if creating else SETTABLE_ON_EDIT
        for name, value in fields.items():
            if name in project.extra_fields:
                values.setdefault("extra", {})[name] = value
            elif name not in settable:
                errors[name] = (
                    f"Field '{name}' cannot be set. It is not on the appropriate screen, "
                    "or unknown."
                )
            elif name == "issuetype":
                type_ref = ref_value(value, "name", "id")
                match = next(
                    (
                        t
                        for t in project.issue_types
                        if type_ref is not None and str(type_ref) in (t, ISSUE_TYPES[t])
                    ),
                    None,
                )
                if match is None:
                    errors[name] = (
                        "Specify an issue type"
                        if type_ref is None
                        else "The issue type selected is invalid."
                    )
                else:
                    values[name] = match
            elif name == "summary":
                if not isinstance(value, str) or not value.strip():
                    errors[name] = "You must specify a summary of the issue."
                elif "\n" in value or "\r" in value:
                    errors[name] = "The summary is invalid because it contains newline characters."
                elif len(value) > 254:
                    errors[name] = "Summary must be less than 255 characters."
                else:
                    values[name] = value
            elif name in ("description", "environment"):
                if value is None:
                    values[name] = None
                elif isinstance(value, str):
                    values[name] = value
                elif is_adf(value):
                    values[name] = adf_text(value)
                else:
                    errors[name] = "Operation value must be a string"
            elif name == "labels":
                if value is None:
                    values[name] = []
                elif not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                    errors[name] = "The labels must be a list of strings."
                else:
                    bad = next((x for x in value if not x or " " in x), None)
                    long = next((x for x in value if len(x) > 255), None)
                    if bad is not None:
                        errors[name] = f"The label '{bad}' contains spaces which is invalid."
                    elif long is not None:
                        errors[name] = f"The label '{long}' exceeds the 255 character limit."
                    else:
                        values[name] = list(dict.fromkeys(value))
            elif name == "duedate":
                if value is None or value == "":
                    values[name] = None
                elif not isinstance(value, str) or not _is_date(value):
                    errors[name] = f"Error parsing date string: {value}"
                else:
                    values[name] = value
            elif name in ("assignee", "reporter"):
                if value is None:
                    values[name] = None
                else:
                    user = self.find_user(value)
                    if user is None or not user.active:
                        errors[name] = (
                            "Specified user does not exist or you do not have required permissions"
                            if self.cloud
                            else f"User '{ref_value(value, 'name', 'key')}' does not exist."
                        )
                    else:
                        values[name] = user.account_id
            elif name == "priority":
                priority_ref = ref_value(value, "name", "id")
                match = next(
                    (p for p, pid in PRIORITIES.items() if str(priority_ref) in (p, pid)), None
                )
                if match is None:
                    errors[name] = "Specify the Priority (id or name) in the string format"
                else:
                    values[name] = match
        if creating:
            if "issuetype" not in fields:
                errors["issuetype"] = "Specify an issue type"
            if "summary" not in fields:
                errors["summary"] = "You must specify a summary of the issue."
        for required in project.required:
            if required in errors:
                continue
            value = fields.get(required)
            present = value not in (None, "", [], {})
            if not present and (creating or required in fields):
                errors[required] = f"Field '{required}' is required"
        return values, errors

    # ------------------------------------------------------------------ issues

    def create_issue(self, project: Project, values: dict[str, Any], user: User) -> Issue:
        """A new issue from validated values, numbered next in its project."""
        number = self._numbers.setdefault(project.key, itertools.count(1))
        now = jira_time()
        issue = Issue(
            id=str(next(self._issue_ids)),
            key=f"{project.key}-{next(number)}",
            project=project.key,
            issue_type=values["issuetype"],
            summary=values["summary"],
            description=values.get("description"),
            environment=values.get("environment"),
            labels=values.get("labels", []),
            duedate=values.get("duedate"),
            assignee=values.get("assignee"),
            reporter=values.get("reporter", user.account_id),
            creator=user.account_id,
            priority=values.get("priority", "Medium"),
            status=_initial_status(project.workflow),
            resolutiondate=None,
            created=now,
            updated=now,
            status_changed=now,
            extra=values.get("extra", {}),
            searchable_at=time.monotonic() + self.search_lag,
        )
        self.issues[issue.key] = issue
        return issue

    def edit_issue(self, issue: Issue, fields: dict[str, Any], values: dict[str, Any]) -> None:
        """Set the fields a PUT named (`fields`) to their validated `values`."""
        for name in ("summary", "description", "environment", "labels", "duedate"):
            if name in fields:
                setattr(issue, name, values.get(name))
        for name in ("assignee", "reporter"):
            if name in fields:
                setattr(issue, name, values.get(name))
        if "priority" in fields:
            issue.priority = values.get("priority", "Medium")
        if "issuetype" in fields:
            issue.issue_type = values["issuetype"]
        issue.extra.update(values.get("extra", {}))

    def apply_update(self, issue: Issue, ops: list[tuple[str, str, Any]], user: User) -> None:
        for name, verb, value in ops:
            if name == "labels":
                if verb == "add" and value not in issue.labels:
                    issue.labels.append(value)
                elif verb == "remove" and value in issue.labels:
                    issue.labels.remove(value)
                elif verb == "set":
                    issue.labels = list(dict.fromkeys(value))
            elif name == "comment" and verb == "add":
                self.add_comment(issue, value, user)

    def add_comment(self, issue: Issue, text: str, user: User) -> Comment:
        comment = Comment(str(next(self._comment_ids)), text, user.account_id, jira_time())
        issue.comments.append(comment)
        issue.updated = comment.created
        return comment

    # ------------------------------------------------------------------ workflows

    def transitions_of(self, issue: Issue) -> list[tuple[str, str, str]]:
        """The transitions open to an issue now: (id, name, target status)."""
        workflow = self.projects[issue.project].workflow
        if workflow == "classic":
            return list(CLASSIC.get(issue.status, []))
        if workflow == "no-reopen" and issue.status == "Done":
            return []
        return [(tid, to, to) for tid, to in SIMPLE_TRANSITIONS if to != issue.status]

    def apply_transition(self, issue: Issue, tid: str) -> None:
        target = next(to for t, _, to in self.transitions_of(issue) if t == tid)
        now = jira_time()
        was_done = STATUSES[issue.status][1] == "done"
        done = STATUSES[target][1] == "done"
        if STATUSES[target][1] != STATUSES[issue.status][1]:
            issue.status_changed = now
        issue.status = target
        if done and not was_done:
            issue.resolutiondate = now
        elif not done:
            issue.resolutiondate = None
        issue.updated = now


# ---------------------------------------------------------------------- helpers


def jira_time(moment: datetime | None = None) -> str:
    """Jira's timestamp format: 2019-05-11T10:14:57.123+0000."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def bad_transition(tid: str) -> str:
    return f"Transition id '{tid}' is not valid for this issue."


def _initial_status(workflow: str) -> str:
    return "Open" if workflow == "classic" else "To Do"


def ref_value(value: Any, *keys: str) -> Any:
    """`{"key": "PAY"}` / `{"id": "10000"}` → the first present key's value; a bare string
    or number stands for itself."""
    if isinstance(value, dict):
        for key in keys:
            if value.get(key) is not None:
                return value[key]
        return None
    if isinstance(value, str | int) and not isinstance(value, bool):
        return value
    return None


def _is_date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def validate_update(update: Any) -> tuple[list[tuple[str, str, Any]], dict[str, str]]:
    """`"update": {"labels": [{"add": "x"}], "comment": [{"add": {"body": "…"}}]}`."""
    ops: list[tuple[str, str, Any]] = []
    errors: dict[str, str] = {}
    if not update:
        return ops, errors
    if not isinstance(update, dict):
        return ops, {"update": "Can not deserialize the 'update' of the request."}
    for name, operations in update.items():
        if name not in ("labels", "comment") or not isinstance(operations, list):
            errors[name] = (
                f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            )
            continue
        for operation in operations:
            if not isinstance(operation, dict) or len(operation) != 1:
                errors[name] = f"Invalid update operation for field '{name}'."
                continue
            verb, value = next(iter(operation.items()))
            if name == "labels" and verb in ("add", "remove") and isinstance(value, str):
                if " " in value:
                    errors[name] = f"The label '{value}' contains spaces which is invalid."
                ops.append((name, verb, value))
            elif name == "labels" and verb == "set" and isinstance(value, list):
                ops.append((name, verb, [str(v) for v in value]))
            elif name == "comment" and verb == "add" and isinstance(value, dict):
                text = text_of(value.get("body"))
                if not text:
                    errors["comment"] = "Comment body can not be empty!"
                else:
                    ops.append((name, verb, text))
            else:
                errors[name] = f"Operation '{verb}' is not supported for field '{name}'."
    return ops, errors
