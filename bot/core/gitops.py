"""Tier 3 executed: the pure part of a GitOps revert (names, messages, the change request
and the ports its adapters implement).

A Tier 3 revert, as rollbot runs it (`bot.actions.tier3` drives it):

    prepared ─► pushed ─► opened ─► approved ─► merged ─► synced ─► verified
    (git revert of the release commit on a branch named for the incident, or, when it
     conflicts, the stable image set back; the diff shown before anything is pushed)

What is derived here, never taken from user text: the branch name (`revert_branch`), the
commit message (`revert_message`, naming the incident and the requester) and the merge
commit's (`merge_message`, naming the approver too). The adapters:

- `GitRepos` (`bot.adapters.git`, the git CLI over HTTPS with a token): prepare the revert
  in a clone, show its diff, push its branch.
- `CodeHost` (`bot.adapters.github`, `bot.adapters.gitlab`): the pull request (GitHub) or
  merge request (GitLab) for the branch, its merge or its auto-merge.

Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

__all__ = [
    "AppSync",
    "Applications",
    "ChangeRequest",
    "CodeHost",
    "GitRepos",
    "PreparedRevert",
    "RevertCase",
    "RevertKind",
    "RevertState",
    "RevertWork",
    "gitops_key",
    "merge_message",
    "revert_branch",
    "revert_message",
    "trim_diff",
]


class RevertKind(StrEnum):
    REVERT = "revert"  # `git revert <release sha>` applied cleanly
    IMAGE = "image"  # the revert conflicted: the stable revision's image set back instead


@dataclass(frozen=True, slots=True)
class RevertWork:
    """What to prepare, all of it derived by rollbot (see `revert_branch`, `revert_message`).

    `url`: the repository's HTTPS clone URL; `base`: the branch Argo CD syncs from; `path`:
    the service's directory in it; `release_sha`: the commit to revert; `image`: the stable
    revision's image (`registry/name:tag` or `…@sha256:…`), for the fallback; `when`: the
    commit's date (ISO 8601), fixed so a revert prepared again after a restart is the same
    commit."""

    url: str
    base: str
    path: str
    release_sha: str
    branch: str
    message: str
    author: tuple[str, str]  # (name, email) of the commit: rollbot, on behalf of the requester
    when: str
    image: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedRevert:
    """A revert made in a local clone, not pushed yet: what the modal shows."""

    work: RevertWork
    kind: RevertKind
    base_sha: str  # the base branch's head it was made on
    head_sha: str  # the revert commit
    diff: str  # `git diff base_sha head_sha`, whole
    files: tuple[str, ...]  # paths changed
    note: str = ""  # why the fallback was taken (the conflicting paths), empty otherwise


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """A GitHub pull request or a GitLab merge request, as rollbot needs it."""

    number: int  # the pull request's number, the merge request's iid
    url: str  # its web page
    head: str  # source branch
    base: str  # target branch
    state: Literal["open", "merged", "closed"]
    head_sha: str
    merge_sha: str | None = None  # the commit the merge made, once merged
    auto_merge: bool = False  # queued to merge once branch protection allows


class GitRepos(Protocol):
    async def prepare_revert(self, work: RevertWork) -> PreparedRevert:
        """Clone `work.url` at `work.base`, revert `work.release_sha` on `work.branch`
        (falling back to setting `work.image` when the revert conflicts). PermanentError
        when neither applies (the release commit unknown, no image to set);
        TemporaryError when the host cannot be reached."""
        ...

    async def push(self, prepared: PreparedRevert) -> str:
        """Push the prepared branch; the sha the remote branch points at. A branch already
        pushed with the same commit is not pushed again."""
        ...

    async def remote_head(self, url: str, branch: str) -> str | None:
        """The sha `branch` points at on the remote, None when it does not exist."""
        ...


class CodeHost(Protocol):
    provider: str  # "github" | "gitlab"

    async def find_change(self, repo: str, head: str) -> ChangeRequest | None:
        """The change request (any state) whose source branch is `head`, newest first."""
        ...

    async def open_change(
        self, repo: str, *, head: str, base: str, title: str, body: str, labels: Sequence[str]
    ) -> ChangeRequest: ...

    async def get_change(self, repo: str, number: int) -> ChangeRequest: ...

    async def comment(self, repo: str, number: int, body: str) -> None: ...

    async def merge(
        self, repo: str, number: int, *, sha: str, title: str, message: str
    ) -> ChangeRequest:
        """Merge now (only if the head is still `sha`). PermanentError naming what branch
        protection still requires when the host refuses."""
        ...

    async def merge_when_ready(
        self, repo: str, number: int, *, sha: str, title: str, message: str
    ) -> ChangeRequest:
        """Leave the merge to branch protection: auto-merge (GitHub) or merge when the
        pipeline succeeds (GitLab), with this merge commit message."""
        ...


_SLUG = re.compile(r"[^a-z0-9]+")


def _slug(text: str, limit: int) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:limit].strip("-") or "x"


def _line(text: str, limit: int = 120) -> str:
    """One line of an outside name for a commit message: control characters and newlines
    (which would forge trailers) become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:limit]


def revert_branch(service: str, revision: int | None, incident: str) -> str:
    """`rollbot/revert/<service>-r<revision>-<incident>`: one branch per incident, from
    names rollbot holds (the catalog's service, the Rollout's revision, the card's key
    digest), lower-case letters, digits and dashes only."""
    rev = f"-r{revision}" if revision is not None else ""
    return f"rollbot/revert/{_slug(service, 40)}{rev}-{_slug(incident, 24)}"


def revert_message(
    *,
    service: str,
    release_sha: str,
    incident: str,
    requester: str,
    kind: RevertKind,
    note: str = "",
) -> str:
    """The revert commit's message: what, why, for which incident, asked by whom."""
    short = release_sha[:12]
    subject = (
        f"Revert release {short} of {service}"
        if kind is RevertKind.REVERT
        else f"Set {service} back to its stable image (revert of {short} conflicted)"
    )
    body = [
        f"Incident: {_line(incident)}",
        f"Requested-by: {_line(requester)}",
        f"Reverts: {release_sha}",
    ]
    if note:
        body.insert(0, _line(note, 500))
    return subject + "\n\n" + "\n".join(body) + "\n"


def merge_message(
    *, service: str, number: int, incident: str, requester: str, approver: str
) -> tuple[str, str]:
    """The merge commit's (title, message): the incident, the requester and the approver."""
    title = f"Tier 3 revert of {service} (#{number})"
    message = (
        f"Incident: {_line(incident)}\nRequested-by: {_line(requester)}\n"
        f"Approved-by: {_line(approver)}\n"
    )
    return title, message


@dataclass(frozen=True, slots=True)
class AppSync:
    """An Argo CD Application as Tier 3's verification reads it (`status.sync`,
    `status.health`, `status.operationState`)."""

    namespace: str
    name: str
    # status.sync.revision: the commit the last refresh compared the live state with (the
    # target branch's head, as soon as Argo CD has seen it); the live state is at that commit
    # only while `sync` is Synced, so "synced to X" is sync == "Synced" and revision == X.
    revision: str | None
    sync: str  # status.sync.status: Synced | OutOfSync | Unknown
    health: str  # status.health.status: Healthy | Progressing | Degraded | Suspended | …
    operation: str | None = (
        None  # status.operationState.phase: Running | Succeeded | Failed | Error
    )


class Applications(Protocol):
    async def get_application(self, namespace: str, name: str) -> AppSync:
        """The Application now; PermanentError when there is none (or no such kind)."""
        ...


class RevertState(StrEnum):
    """Where a Tier 3 revert stands (one row per card, `bot.store.reverts`)."""

    PREPARED = "prepared"  # made and shown to the requester; nothing pushed
    CONFIRMED = "confirmed"  # the requester confirmed: push the branch, open the request
    OPENED = "opened"  # the pull or merge request is open: waiting for a second person
    APPROVED = "approved"  # approved on the card: merge (or queue the merge)
    MERGE_QUEUED = "merge-queued"  # left to branch protection: waiting for the host's merge
    MERGED = "merged"  # merged: waiting for Argo CD's sync and the Rollout's new revision
    VERIFIED = "verified"  # the Rollout runs the previous pod template again
    FAILED = "failed"  # stopped for good; `error` says why
    CANCELLED = "cancelled"  # the requester closed the modal without pushing

    @property
    def terminal(self) -> bool:
        return self in (RevertState.VERIFIED, RevertState.FAILED, RevertState.CANCELLED)


@dataclass(frozen=True, slots=True)
class RevertCase:
    """One Tier 3 revert, as stored: who asked, what was prepared, where it stands."""

    key: str  # `gitops:<card key>`: one revert per card
    service: str
    card_key: str
    revision: int | None  # the Rollout's revision the card is about
    state: RevertState
    requester: str  # Slack user id
    requested_at: str  # ISO 8601, UTC; also the revert commit's date (same commit again)
    provider: str
    project: str
    url: str
    base: str
    path: str
    branch: str
    release_sha: str
    image: str | None = None
    merge_mode: str = "rollbot"
    channel: str | None = None
    message_ts: str | None = None
    kind: str | None = None
    note: str = ""
    base_sha: str | None = None
    head_sha: str | None = None
    diff: str = ""
    files: tuple[str, ...] = ()
    change_number: int | None = None
    change_url: str | None = None
    merge_sha: str | None = None
    approver: str | None = None
    break_glass: str | None = None  # the requester's reason for approving alone
    error: str | None = None
    requester_name: str = ""  # as Slack names them, for the commit message
    version: int = 0
    updated_at: str = ""

    @property
    def pushed(self) -> bool:
        return self.change_number is not None or self.state in _AFTER_PUSH


_AFTER_PUSH = frozenset(
    {
        RevertState.OPENED,
        RevertState.APPROVED,
        RevertState.MERGE_QUEUED,
        RevertState.MERGED,
        RevertState.VERIFIED,
    }
)


def gitops_key(card_key: str) -> str:
    """The revert's key: one per card (a retried click, a second responder: the same)."""
    return f"gitops:{card_key}"


def trim_diff(diff: str, limit: int = 2800) -> tuple[str, bool]:
    """The diff cut to `limit` characters at a line end (a modal's section holds 3,000),
    and whether it was cut."""
    if len(diff) <= limit:
        return diff, False
    cut = diff.rfind("\n", 0, limit)
    return diff[: cut if cut > 0 else limit], True
