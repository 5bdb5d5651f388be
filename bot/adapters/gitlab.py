"""GitLab, over python-gitlab (REST API v4): the `CodeHost` port of `bot.core.gitops` for
merge requests.

This is the only module that imports `gitlab` (and the `requests` it runs on). The client
is synchronous, so every call runs in `asyncio.to_thread`, with a client of its own made
from the token file read at that moment: a rotated token is used at the next call, and
nothing holds a session between calls. The token never reaches a message or a log.

    find_change      GET  /projects/:path/merge_requests?source_branch=…&state=all
                          (newest first; any state)
    open_change      POST /projects/:path/merge_requests  (labels comma-separated,
                          remove_source_branch as configured); a 409 "Another open
                          merge request already exists…" answers with that one
    get_change       GET  /projects/:path/merge_requests/:iid
    comment          POST /projects/:path/merge_requests/:iid/notes
    merge            PUT  /projects/:path/merge_requests/:iid/merge  (sha, merge_commit_message)
    merge_when_ready PUT  …/merge  with merge_when_pipeline_succeeds=true as well

`repo` is the project's path ("group/name"); python-gitlab URL-encodes it. The merge commit
message is the title, a blank line and the message (GitLab takes one text).

Errors are translated at this border:

    401, 403                                   → Forbidden("GitLab", …) (a PermanentError)
    404                                        → TargetNotFound (the project or the !iid)
    merge: 405 (GitLab will not merge now)     → PermanentError naming what is missing, from
                                                 the merge request's detailed_merge_status;
                                                 already merged at `sha` (an earlier merge
                                                 whose answer was lost) → the merged request
    merge: 409 (the source head moved)         → PermanentError "head moved"
    merge: 422 (git could not merge)           → PermanentError
    other 4xx                                  → InvalidRequest with GitLab's message
    429, 5xx, connection errors, timeouts,
    an answer that is not GitLab's JSON        → Unreachable("GitLab", …) (a TemporaryError)

python-gitlab's own retries of transient errors are off (`retry_transient_errors=False`):
rollbot retries from its durable queue. Opening is at-least-once like any retried POST: a
merge request opened whose answer was lost is found again by `find_change` (the caller
looks before opening) or answered by the 409 above.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.exceptions import GitlabError, GitlabParsingError

from bot.adapters._token import TokenSource, read_token
from bot.adapters.calls import CallObserver, timed
from bot.core.errors import (
    Forbidden,
    InvalidRequest,
    PermanentError,
    TargetNotFound,
    Unreachable,
)
from bot.core.gitops import ChangeRequest

__all__ = ["GitLabHost", "translate"]

SERVICE = "GitLab"
PROVIDER = "gitlab"

#: What each `detailed_merge_status` (GitLab's documented values) says is missing.
MISSING = {
    "approvals_syncing": "the approvals are still syncing",
    "checking": "GitLab is still checking whether it can merge",
    "ci_must_pass": "the pipeline must pass",
    "ci_still_running": "the pipeline is still running",
    "commits_status": "the source branch must exist and have commits",
    "conflict": "the branches conflict",
    "discussions_not_resolved": "every discussion must be resolved",
    "draft_status": "it is a draft",
    "jira_association_missing": "the title or description must name a Jira issue",
    "merge_request_blocked": "another merge request blocks it",
    "merge_time": "it may not merge before its merge-after time",
    "need_rebase": "it must be rebased",
    "not_approved": "approvals are missing",
    "not_open": "it is not open",
    "preparing": "its diff is still being prepared",
    "requested_changes": "a reviewer requested changes",
    "security_policy_pipeline_check": "the pipelines security policies require must pass",
    "security_policy_violations": "security policies must be satisfied",
    "status_checks_must_pass": "the external status checks must pass",
    "unchecked": "GitLab has not checked yet whether it can merge",
    "locked_paths": "paths locked by others must be unlocked",
    "locked_lfs_files": "LFS files locked by others must be unlocked",
    "title_regex": "the title must match the project's pattern",
}

log = logging.getLogger(__name__)

T = TypeVar("T")


class GitLabHost:
    """Merge requests on the GitLab at `url`, with the personal (or project) access token
    in `token_file`, read at each call (or given by a callable: the settings' secret).
    `timeout` (seconds) bounds each request.
    `remove_source_branch`: ask GitLab to delete the revert branch once merged (off: the
    branch stays, so a revert resumed after the merge still finds it pushed)."""

    provider = PROVIDER

    def __init__(
        self,
        token_file: TokenSource | str,
        url: str = "https://gitlab.com",
        *,
        timeout: float = 10.0,
        remove_source_branch: bool = False,
        observer: CallObserver | None = None,
    ) -> None:
        self.token_file = Path(token_file) if isinstance(token_file, str) else token_file
        self.remove_source_branch = remove_source_branch
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.observer = observer

    def __repr__(self) -> str:  # never the token
        where = self.token_file if isinstance(self.token_file, Path) else "settings"
        return f"GitLabHost(url={self.url!r}, token_file={str(where)!r})"

    # ── the CodeHost port ──

    async def find_change(self, repo: str, head: str) -> ChangeRequest | None:
        def find(gl: gitlab.Gitlab) -> ChangeRequest | None:
            found = _project(gl, repo).mergerequests.list(
                source_branch=head,
                state="all",
                order_by="created_at",
                sort="desc",
                per_page=20,
                get_all=False,
            )
            return _change(found[0].attributes) if found else None

        return await self._run(f"the merge request of {head} in {repo}", repo, None, find)

    async def open_change(
        self, repo: str, *, head: str, base: str, title: str, body: str, labels: Sequence[str]
    ) -> ChangeRequest:
        def open_(gl: gitlab.Gitlab) -> ChangeRequest:
            project = _project(gl, repo)
            try:
                mr = project.mergerequests.create(
                    {
                        "source_branch": head,
                        "target_branch": base,
                        "title": title,
                        "description": body,
                        "labels": ",".join(labels),
                        "remove_source_branch": self.remove_source_branch,
                    }
                )
            except GitlabError as e:
                if e.response_code != 409:
                    raise
                existing = _open_one(project, head, base)
                if existing is None:
                    raise
                log.info(
                    "gitlab merge request already open",
                    extra={"repo": repo, "iid": existing.number},
                )
                return existing
            change = _change(mr.attributes)
            log.info("gitlab merge request opened", extra={"repo": repo, "iid": change.number})
            return change

        return await self._run(f"opening a merge request for {head} in {repo}", repo, None, open_)

    async def get_change(self, repo: str, number: int) -> ChangeRequest:
        def get(gl: gitlab.Gitlab) -> ChangeRequest:
            return _change(_project(gl, repo).mergerequests.get(number).attributes)

        return await self._run(f"reading !{number} in {repo}", repo, number, get)

    async def comment(self, repo: str, number: int, body: str) -> None:
        def note(gl: gitlab.Gitlab) -> None:
            mr = _project(gl, repo).mergerequests.get(number, lazy=True)
            mr.notes.create({"body": body})

        await self._run(f"a note on !{number} in {repo}", repo, number, note)

    async def merge(
        self, repo: str, number: int, *, sha: str, title: str, message: str
    ) -> ChangeRequest:
        return await self._merge(repo, number, sha=sha, text=_commit_text(title, message))

    async def merge_when_ready(
        self, repo: str, number: int, *, sha: str, title: str, message: str
    ) -> ChangeRequest:
        return await self._merge(
            repo, number, sha=sha, text=_commit_text(title, message), when_ready=True
        )

    # ── merging ──

    async def _merge(
        self, repo: str, number: int, *, sha: str, text: str, when_ready: bool = False
    ) -> ChangeRequest:
        what = f"{'auto-merging' if when_ready else 'merging'} !{number} in {repo}"

        def merge(gl: gitlab.Gitlab) -> ChangeRequest:
            mr = _project(gl, repo).mergerequests.get(number, lazy=True)
            extra: dict[str, Any] = {"merge_when_pipeline_succeeds": True} if when_ready else {}
            try:
                answer = mr.merge(merge_commit_message=text, sha=sha, **extra)
            except GitlabError as e:
                code = e.response_code
                if code == 405:
                    return _refused(gl, repo, number, sha, what)
                if code == 409:
                    raise PermanentError(
                        f"GitLab did not merge !{number} in {repo}: its source branch moved "
                        f"(head no longer {sha[:12]}); prepare and review the revert again."
                    ) from None
                if code == 422:
                    raise PermanentError(
                        f"GitLab could not merge !{number} in {repo}: "
                        f"{_detail(e) or 'Branch cannot be merged'} (a conflict with the "
                        "target branch?)."
                    ) from None
                raise
            change = _change(answer)
            event = "merged" if change.state == "merged" else "auto-merge set"
            log.info(
                f"gitlab merge request {event}",
                extra={"repo": repo, "iid": number, "auto_merge": change.auto_merge},
            )
            return change

        return await self._run(what, repo, number, merge)

    # ── plumbing ──

    async def _run(
        self, what: str, repo: str, number: int | None, fn: Callable[[gitlab.Gitlab], T]
    ) -> T:
        """`fn(client)` in a worker thread with a client made from the token now, errors
        translated (`translate`), timed as one call to GitLab."""

        def call() -> T:
            token = self._token()
            with timed(self.observer):  # errors leave it translated already
                try:
                    with gitlab.Gitlab(
                        self.url,
                        private_token=token,
                        timeout=self.timeout,
                        retry_transient_errors=False,
                    ) as gl:
                        return fn(gl)
                except GitlabError as e:
                    raise translate(what, repo, number, e) from None
                except requests.RequestException as e:
                    raise Unreachable(SERVICE, f"{_network(e)}, on {what}") from None

        return await asyncio.to_thread(call)

    def _token(self) -> str:
        return read_token(self.token_file, "GitLab token")


def _project(gl: gitlab.Gitlab, repo: str) -> Any:
    return gl.projects.get(repo, lazy=True)


def _open_one(project: Any, head: str, base: str) -> ChangeRequest | None:
    found = project.mergerequests.list(
        source_branch=head, target_branch=base, state="opened", get_all=False
    )
    return _change(found[0].attributes) if found else None


def _refused(gl: gitlab.Gitlab, repo: str, number: int, sha: str, what: str) -> ChangeRequest:
    """After a 405: the merge request as it is now. Merged at `sha` already (an earlier
    merge whose answer was lost): that is the answer; else what it is missing."""
    now = _project(gl, repo).mergerequests.get(number).attributes
    change = _change(now)
    if change.state == "merged" and change.head_sha == sha:
        return change
    status = str(now.get("detailed_merge_status") or now.get("merge_status") or "unknown")
    missing = MISSING.get(status, f"GitLab says {status}")
    raise PermanentError(
        f"GitLab will not merge !{number} in {repo} yet: {missing} "
        f"(detailed_merge_status {status})."
    )


def _change(raw: dict[str, Any]) -> ChangeRequest:
    state = str(raw.get("state") or "")
    mapped = {"merged": "merged", "closed": "closed"}.get(state, "open")
    return ChangeRequest(
        number=int(raw["iid"]),
        url=str(raw.get("web_url") or ""),
        head=str(raw.get("source_branch") or ""),
        base=str(raw.get("target_branch") or ""),
        state=mapped,  # type: ignore[arg-type]  # one of the three literals
        head_sha=str(raw.get("sha") or ""),
        merge_sha=raw.get("merge_commit_sha") or raw.get("squash_commit_sha") or None,
        auto_merge=bool(raw.get("merge_when_pipeline_succeeds")),
    )


def _commit_text(title: str, message: str) -> str:
    return f"{title}\n\n{message}" if message else title


def translate(what: str, repo: str, number: int | None, error: GitlabError) -> Exception:
    """The bot.core.errors equivalent of a python-gitlab error (GitLab's message only:
    never the request, which carries the token)."""
    code = error.response_code
    detail = _detail(error)
    if isinstance(error, GitlabParsingError) or code is None:
        return Unreachable(SERVICE, f"an answer that is not GitLab's JSON, on {what}")
    if code in (401, 403):
        return Forbidden(SERVICE, f"HTTP {code} {detail}, on {what}".strip())
    if code == 429 or code >= 500:
        return Unreachable(SERVICE, f"HTTP {code}, on {what}")
    if code == 404:
        if number is not None and "Project" not in detail:
            return TargetNotFound("GitLab merge request", repo, f"!{number}")
        return TargetNotFound("GitLab project", repo.rsplit("/", 1)[0], repo)
    return InvalidRequest(f"GitLab refused {what}: HTTP {code} {detail}".strip())


def _detail(error: GitlabError) -> str:
    message = error.error_message
    if isinstance(message, list):
        return "; ".join(str(m) for m in message)
    if isinstance(message, dict):
        return "; ".join(f"{k}: {v}" for k, v in message.items())
    text = str(message or "")
    return text[:200] if not text.lstrip().startswith("<") else ""


def _network(error: requests.RequestException) -> str:
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    return type(error).__name__
