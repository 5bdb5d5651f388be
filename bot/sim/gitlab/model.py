"""The GitLab sim's projects and merge requests, and the rules GitLab applies to them:
which merge requests may be opened, what blocks a merge (`detailed_merge_status`), the
merge itself (a real one, in the project's bare repository), and auto-merge.

Nothing here speaks HTTP: `GitLabState` holds the data behind one lock, the server
(`bot.sim.gitlab.server`) calls it and renders its objects (`bot.sim.gitlab.render`).
A refusal raises `GitLabError` with the status and the body GitLab answers.

What is live and what is stored: a branch head is read from the repository at each use
(rollbot pushes over smart HTTP, the sim never caches a sha); an open merge request's
`sha` is its source branch's head now. Once merged or closed, the head it had then is kept.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.sim.git import BareRepo, MergeConflict

__all__ = [
    "ACTIVE_PIPELINE",
    "PIPELINE_STATUSES",
    "AutoMerge",
    "GitLabError",
    "GitLabState",
    "MergeRequest",
    "Note",
    "Project",
    "User",
    "gitlab_time",
]

#: Pipeline statuses the sim accepts (GitLab's `status` of a pipeline, the common ones).
PIPELINE_STATUSES = frozenset(
    {"created", "pending", "running", "success", "failed", "canceled", "skipped", "manual"}
)
#: A pipeline in one of these has not finished: auto-merge waits for it.
ACTIVE_PIPELINE = frozenset({"created", "pending", "running"})


class GitLabError(Exception):
    """A refusal, answered as `status` with `body` (GitLab's `{"message": …}` or
    `{"error": …}`)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def message(status: int, text: Any) -> GitLabError:
    return GitLabError(status, {"message": text})


def not_found(what: str = "Not found") -> GitLabError:
    return message(404, f"404 {what}")


def gitlab_time(at: float) -> str:
    """GitLab's timestamps: ISO 8601, UTC, milliseconds, `Z`."""
    stamp = datetime.fromtimestamp(at, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    name: str


@dataclass(slots=True)
class Note:
    id: int
    body: str
    author: User
    created_at: float
    system: bool = False


@dataclass(slots=True)
class AutoMerge:
    """What `PUT …/merge` with `auto_merge` stored, to merge with once the checks pass."""

    sha: str
    user: User
    commit_message: str | None
    squash_commit_message: str | None
    squash: bool
    should_remove_source_branch: bool | None
    strategy: str  # GitLab's names: merge_when_pipeline_succeeds | merge_when_checks_pass


@dataclass(slots=True)
class MergeRequest:
    id: int
    iid: int
    project: Project
    title: str
    description: str
    source_branch: str
    target_branch: str
    author: User
    created_at: float
    labels: list[str] = field(default_factory=list)
    state: str = "opened"  # opened | closed | merged
    updated_at: float = 0.0
    force_remove_source_branch: bool = False  # `remove_source_branch` on create
    squash: bool = False
    approvals: dict[str, User] = field(default_factory=dict)  # username → user
    notes: list[Note] = field(default_factory=list)
    auto_merge: AutoMerge | None = None
    merge_error: str | None = None
    merged_at: float | None = None
    merge_user: User | None = None
    closed_at: float | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    base_sha: str | None = None  # the target's head when it was opened (diff_refs)
    final_sha: str | None = None  # the source head when it was merged or closed

    @property
    def sha(self) -> str | None:
        """The diff head: the source branch's head now while open, as it was once not."""
        if self.state != "opened":
            return self.final_sha
        return self.project.repo.head(self.source_branch)


@dataclass(slots=True)
class Project:
    id: int
    path: str  # "group/name"
    repo: BareRepo
    created_at: float
    default_branch: str = "main"
    approvals_required: int = 0
    pipelines_must_succeed: bool = False  # only_allow_merge_if_pipeline_succeeds
    pipelines: dict[str, tuple[int, str]] = field(default_factory=dict)  # sha → (id, status)
    merge_requests: list[MergeRequest] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    def mr(self, iid: int) -> MergeRequest:
        for mr in self.merge_requests:
            if mr.iid == iid:
                return mr
        raise not_found()


class GitLabState:
    """Every project, merge request and note, behind `lock` (re-entrant)."""

    def __init__(self, projects: dict[str, BareRepo], *, bot: User) -> None:
        self.lock = threading.RLock()
        self.bot = bot
        self._ids = itertools.count(1)  # merge requests' global ids
        self._note_ids = itertools.count(1)
        self._pipeline_ids = itertools.count(1)
        self._users: dict[str, User] = {bot.username: bot}
        self._user_ids = itertools.count(bot.id + 1)
        now = time.time()
        self.projects: dict[str, Project] = {}
        for number, (path, repo) in enumerate(projects.items(), start=1):
            default = "main" if repo.head("main") else next(iter(repo.branches()), "main")
            self.projects[path] = Project(number, path, repo, now, default_branch=default)

    # ── lookups ──

    def project(self, ident: str) -> Project:
        """By numeric id or by path ("group/name", already URL-decoded), as GitLab accepts."""
        if ident.isdigit():
            for project in self.projects.values():
                if project.id == int(ident):
                    return project
        elif ident in self.projects:
            return self.projects[ident]
        raise not_found("Project Not Found")

    def user(self, username: str) -> User:
        with self.lock:
            if username not in self._users:
                self._users[username] = User(next(self._user_ids), username, username.title())
            return self._users[username]

    # ── merge requests ──

    def create_mr(self, project: Project, params: dict[str, Any]) -> MergeRequest:
        for name in ("source_branch", "target_branch", "title"):
            value = params.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise GitLabError(400, {"error": f"{name} is missing"})
        source, target = str(params["source_branch"]), str(params["target_branch"])
        if source == target:
            raise message(422, ["You can't use same project/branch for source and target"])
        for kind, branch in (("Source", source), ("Target", target)):
            if project.repo.head(branch) is None:
                raise message(422, [f'{kind} branch "{branch}" does not exist'])
        for other in project.merge_requests:
            same = other.source_branch == source and other.target_branch == target
            if same and other.state == "opened":
                raise message(
                    409,
                    [
                        "Another open merge request already exists for this source branch: "
                        f"!{other.iid}"
                    ],
                )
        now = time.time()
        mr = MergeRequest(
            id=next(self._ids),
            iid=len(project.merge_requests) + 1,
            project=project,
            title=str(params["title"]),
            description=str(params.get("description") or ""),
            source_branch=source,
            target_branch=target,
            author=self.bot,
            created_at=now,
            updated_at=now,
            labels=_labels(params.get("labels")),
            force_remove_source_branch=_true(params.get("remove_source_branch")),
            squash=_true(params.get("squash")),
            base_sha=project.repo.head(target),
        )
        project.merge_requests.append(mr)
        return mr

    def list_mrs(self, project: Project, params: dict[str, Any]) -> list[MergeRequest]:
        state = str(params.get("state") or "all")
        if state not in ("all", "opened", "closed", "merged", "locked"):
            raise GitLabError(400, {"error": "state does not have a valid value"})
        found = [
            mr
            for mr in project.merge_requests
            if (state == "all" or mr.state == state)
            and _match(params.get("source_branch"), mr.source_branch)
            and _match(params.get("target_branch"), mr.target_branch)
            and all(label in mr.labels for label in _labels(params.get("labels")))
        ]
        iids = params.get("iids[]") or params.get("iids")
        if iids:
            wanted = {int(i) for i in (iids if isinstance(iids, list) else str(iids).split(","))}
            found = [mr for mr in found if mr.iid in wanted]
        key = "updated_at" if params.get("order_by") == "updated_at" else "created_at"
        found.sort(key=lambda mr: (getattr(mr, key), mr.id), reverse=params.get("sort") != "asc")
        return found

    def add_note(self, mr: MergeRequest, body: Any, *, author: User, system: bool = False) -> Note:
        if body is None or not str(body).strip():
            raise GitLabError(400, {"error": "body is missing"})
        note = Note(next(self._note_ids), str(body), author, time.time(), system=system)
        mr.notes.append(note)
        mr.updated_at = note.created_at
        return note

    # ── mergeability ──

    def head_pipeline(self, mr: MergeRequest) -> tuple[int, str, str] | None:
        """(id, sha, status) of the pipeline of the merge request's head, None without one."""
        sha = mr.sha
        if sha is None or sha not in mr.project.pipelines:
            return None
        number, status = mr.project.pipelines[sha]
        return number, sha, status

    def detailed_merge_status(self, mr: MergeRequest) -> str:
        """What blocks the merge now, with GitLab's values (first blocker wins), or
        "mergeable". Conflicts are found when merging (422), not here."""
        if mr.state != "opened":
            return "not_open"
        head = mr.sha
        if head is None or mr.project.repo.head(mr.target_branch) is None:
            return "commits_status"
        if mr.project.pipelines_must_succeed:
            pipeline = self.head_pipeline(mr)
            if pipeline is not None and pipeline[2] in ACTIVE_PIPELINE:
                return "ci_still_running"
            if pipeline is None or pipeline[2] not in ("success", "skipped"):
                return "ci_must_pass"
        if len(mr.approvals) < mr.project.approvals_required:
            return "not_approved"
        return "mergeable"

    def merge_status(self, mr: MergeRequest) -> str:
        """The deprecated `merge_status` (git's view only)."""
        return "cannot_be_merged" if mr.merge_error == "conflict" else "can_be_merged"

    # ── merging ──

    def merge(self, mr: MergeRequest, params: dict[str, Any], *, user: User) -> None:
        """`PUT …/merge`, as GitLab's API runs it: the sha check, then auto-merge when
        asked and something is still pending, else an immediate merge when nothing blocks
        it (405 otherwise), 422 when git cannot merge."""
        head = mr.sha
        sha = params.get("sha")
        if sha and sha != head:
            raise message(409, f"SHA does not match HEAD of source branch: {head}")
        if _true(params.get("squash")):
            mr.squash = True
        wanted_auto = _true(params.get("merge_when_pipeline_succeeds")) or _true(
            params.get("auto_merge")
        )
        status = self.detailed_merge_status(mr)
        if wanted_auto and mr.state == "opened" and head is not None:
            strategy = self._auto_merge_strategy(mr, status)
            if strategy is not None:
                mr.auto_merge = AutoMerge(
                    sha=str(sha or head),
                    user=user,
                    commit_message=_text(params.get("merge_commit_message")),
                    squash_commit_message=_text(params.get("squash_commit_message")),
                    squash=mr.squash,
                    should_remove_source_branch=_bool_or_none(
                        params.get("should_remove_source_branch")
                    ),
                    strategy=strategy,
                )
                mr.merge_user = user
                mr.merge_error = None
                mr.updated_at = time.time()
                return
        if status != "mergeable":
            raise message(405, "405 Method Not Allowed")
        self._merge_now(
            mr,
            user=user,
            commit_message=_text(params.get("merge_commit_message")),
            squash_commit_message=_text(params.get("squash_commit_message")),
            remove_source=_bool_or_none(params.get("should_remove_source_branch")),
        )

    def _auto_merge_strategy(self, mr: MergeRequest, status: str) -> str | None:
        """The auto-merge strategy GitLab would pick, None when it would merge at once (or
        refuse): a running head pipeline → merge_when_pipeline_succeeds; otherwise, checks
        still pending (approvals, a pipeline still to run) → merge_when_checks_pass."""
        pipeline = self.head_pipeline(mr)
        if pipeline is not None and pipeline[2] in ACTIVE_PIPELINE:
            return "merge_when_pipeline_succeeds"
        if status in ("not_approved", "ci_still_running"):
            return "merge_when_checks_pass"
        return None

    def _merge_now(
        self,
        mr: MergeRequest,
        *,
        user: User,
        commit_message: str | None,
        squash_commit_message: str | None,
        remove_source: bool | None,
    ) -> None:
        project = mr.project
        head = mr.sha
        default = (
            f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\n"
            f"See merge request {project.path}!{mr.iid}"
        )
        try:
            if mr.squash:
                new = project.repo.merge(
                    mr.target_branch,
                    mr.source_branch,
                    squash_commit_message or commit_message or mr.title,
                    squash=True,
                )
                mr.squash_commit_sha = new
            else:
                new = project.repo.merge(
                    mr.target_branch, mr.source_branch, commit_message or default
                )
                mr.merge_commit_sha = new
        except MergeConflict:
            mr.merge_error = "conflict"
            raise message(422, "Branch cannot be merged") from None
        now = time.time()
        mr.final_sha = head
        mr.state = "merged"
        mr.merged_at = mr.updated_at = now
        mr.merge_user = user
        mr.merge_error = None
        mr.auto_merge = None
        remove = mr.force_remove_source_branch if remove_source is None else remove_source
        if remove:
            project.repo.delete_branch(mr.source_branch)

    def advance_auto_merges(self, project: Project) -> None:
        """Merge what auto-merge was waiting for once nothing blocks it; abort one whose
        source branch moved since it was asked (GitLab: "Branch has been updated since the
        merge was requested")."""
        for mr in project.merge_requests:
            auto = mr.auto_merge
            if auto is None or mr.state != "opened":
                continue
            if mr.sha != auto.sha:
                mr.auto_merge = None
                mr.merge_user = None
                mr.merge_error = (
                    "Branch has been updated since the merge was requested. "
                    "Please review the changes."
                )
                self.add_note(mr, "aborted the automatic merge", author=self.bot, system=True)
                continue
            pipeline = self.head_pipeline(mr)
            if pipeline is not None and pipeline[2] in ACTIVE_PIPELINE:
                continue
            if pipeline is not None and pipeline[2] not in ("success", "skipped"):
                continue  # the pipeline failed: the auto-merge stays set, nothing merges
            if self.detailed_merge_status(mr) != "mergeable":
                continue
            try:
                self._merge_now(
                    mr,
                    user=auto.user,
                    commit_message=auto.commit_message,
                    squash_commit_message=auto.squash_commit_message,
                    remove_source=auto.should_remove_source_branch,
                )
            except GitLabError:
                mr.auto_merge = None
                mr.merge_user = None

    def set_pipeline(self, project: Project, sha: str, status: str) -> int:
        if status not in PIPELINE_STATUSES:
            raise ValueError(f"pipeline status must be one of {sorted(PIPELINE_STATUSES)}")
        number = project.pipelines[sha][0] if sha in project.pipelines else None
        if number is None:
            number = next(self._pipeline_ids)
        project.pipelines[sha] = (number, status)
        return number


def _labels(value: Any) -> list[str]:
    """`labels` as GitLab reads it: a comma-separated string (or an array), trimmed, once each."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    out: list[str] = []
    for item in items:
        name = str(item).strip()
        if name and name not in out:
            out.append(name)
    return out


def _match(wanted: Any, value: str) -> bool:
    return wanted is None or str(wanted) == value


def _true(value: Any) -> bool:
    """Grape's Boolean: true, "true", "1" (and "yes"); anything else false."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes", "t")


def _bool_or_none(value: Any) -> bool | None:
    return None if value is None else _true(value)


def _text(value: Any) -> str | None:
    return None if value is None or str(value) == "" else str(value)
