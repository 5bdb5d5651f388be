"""GitHub, over githubkit (async): the `CodeHost` port of `bot.core.gitops` for a GitOps
repository's pull requests.

This is the only module that imports `githubkit`. The client is built for each call from
the token file as it is then (a rotated token is used at once), with githubkit's own
retries off (`auto_retry=False`: a 5xx would otherwise be retried three times with 1, 4
and 9 s sleeps; rollbot retries from its own durable queue) and its HTTP cache off (every
read is fresh: a pull request's head moves when rollbot pushes).

    find_change       GET  /repos/{o}/{r}/pulls?head=o:branch&state=all, newest first
    open_change       POST /repos/{o}/{r}/pulls, then POST …/issues/{n}/labels; when the
                      pull request already exists (an earlier answer was lost), that one
    get_change        GET  /repos/{o}/{r}/pulls/{n}
    comment           POST /repos/{o}/{r}/issues/{n}/comments
    merge             PUT  /repos/{o}/{r}/pulls/{n}/merge (merge commit, sha = the head
                      rollbot approved, the commit title and message given)
    merge_when_ready  GraphQL enablePullRequestAutoMerge (auto-merge exists only in
                      GraphQL), with the merge commit's headline and body. GitHub refuses
                      it when there is nothing to wait for ("… is in clean status", "…
                      Protected branch rules not configured for this branch"): then the
                      pull request is merged now, which is what auto-merge would do.

Pull requests are read with ``X-GitHub-Api-Version: 2022-11-28``: githubkit speaks
2026-03-10, which no longer has `merge_commit_sha` on pull requests, and that is the
commit Argo CD must sync. 2022-11-28 is the default version and supported until at least
March 2028.

Errors are translated at this border:

    401, 403                                  → Forbidden("GitHub", …) naming the host
    rate limited (403/429 with the headers)   → TemporaryError(delay=…)
    404                                       → PermanentError naming the repository or
                                                pull request
    405 on a merge                            → PermanentError saying what GitHub (its
                                                branch protection) still requires
    409 on a merge                            → PermanentError: the head moved
    422                                       → InvalidRequest with GitHub's errors
    5xx, connection errors, timeouts          → Unreachable("GitHub", …)
    the token file unreadable                 → PermanentError naming the file

Each call is timed as one call to GitHub (`bot.adapters.calls`, with `observer`).

A merge or an opening whose answer was lost is found again: `open_change` takes the
existing pull request, `merge` reads the pull request back after a 405 and returns it
when it is merged. The token is never logged nor put in a message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import (
    GraphQLFailed,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)

from bot.adapters._http import connect_reason
from bot.adapters._token import TokenSource, read_token
from bot.adapters.calls import CallObserver, timed
from bot.core.errors import (
    Forbidden,
    InvalidRequest,
    PermanentError,
    TemporaryError,
    Unreachable,
)
from bot.core.gitops import ChangeRequest

__all__ = ["GitHubHost"]

SERVICE = "GitHub"
READ_VERSION = {"X-GitHub-Api-Version": "2022-11-28"}  # still has merge_commit_sha
AUTO_MERGE = """
mutation($input: EnablePullRequestAutoMergeInput!) {
  enablePullRequestAutoMerge(input: $input) {
    pullRequest { id number autoMergeRequest { mergeMethod commitHeadline commitBody } }
  }
}
"""
NOTHING_TO_WAIT_FOR = ("is in clean status", "protected branch rules not configured")

log = logging.getLogger(__name__)

T = TypeVar("T")


class GitHubHost:
    """`CodeHost` for GitHub (or GitHub Enterprise: `base_url` …/api/v3)."""

    provider = "github"

    def __init__(
        self,
        token_file: TokenSource | str,
        base_url: str = "https://api.github.com",
        *,
        timeout: float = 10.0,
        observer: CallObserver | None = None,
    ) -> None:
        self.token_file = Path(token_file) if isinstance(token_file, str) else token_file
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.observer = observer
        self.host = urlsplit(self.base_url).netloc or self.base_url

    def __repr__(self) -> str:  # never the token
        return f"GitHubHost(base_url={self.base_url!r})"

    # ── the port ──

    async def find_change(self, repo: str, head: str) -> ChangeRequest | None:
        owner, name = _split(repo)

        async def call(gh: GitHub[Any]) -> ChangeRequest | None:
            resp = await gh.rest.pulls.async_list(
                owner,
                name,
                state="all",
                head=f"{owner}:{head}",
                sort="created",
                direction="desc",
                per_page=100,
                headers=READ_VERSION,
            )
            parsed: list[Any] = list(resp.parsed_data)
            raws: list[Any] = list(resp.json())
            found = [(p, raw) for p, raw in zip(parsed, raws, strict=True) if p.head.ref == head]
            if not found:
                return None
            pull, raw = max(found, key=lambda pr: pr[0].number)
            return ChangeRequest(
                number=pull.number,
                url=pull.html_url,
                head=pull.head.ref,
                base=pull.base.ref,
                state=_state(pull.state, merged=pull.merged_at is not None),
                head_sha=pull.head.sha,
                merge_sha=_merge_sha(raw, merged=pull.merged_at is not None),
                auto_merge=pull.auto_merge is not None,
            )

        return await self._run(f"the pull requests of {repo}", call)

    async def open_change(
        self, repo: str, *, head: str, base: str, title: str, body: str, labels: Sequence[str]
    ) -> ChangeRequest:
        owner, name = _split(repo)

        async def create(gh: GitHub[Any]) -> ChangeRequest | None:
            try:
                resp = await gh.rest.pulls.async_create(
                    owner, name, title=title, head=head, base=base, body=body, draft=False
                )
            except RequestFailed as e:
                if e.response.status_code == 422 and "already exists" in _detail(e):
                    return None  # opened by an earlier call whose answer was lost
                raise
            pull = resp.parsed_data
            log.info("github pull request opened", extra={"repo": repo, "number": pull.number})
            return ChangeRequest(
                number=pull.number,
                url=pull.html_url,
                head=pull.head.ref,
                base=pull.base.ref,
                state=_state(pull.state, merged=pull.merged),
                head_sha=pull.head.sha,
            )

        opened = await self._run(f"a pull request on {repo}", create)
        if opened is None:
            opened = await self.find_change(repo, head)
            if opened is None:
                raise PermanentError(
                    f"GitHub says a pull request for {head} exists on {repo}, but lists none."
                )
        if labels:
            number = opened.number

            async def label(gh: GitHub[Any]) -> None:
                await gh.rest.issues.async_add_labels(owner, name, number, labels=list(labels))

            await self._run(f"the labels of {repo}#{number}", label)
        return opened

    async def get_change(self, repo: str, number: int) -> ChangeRequest:
        change, _node = await self._read(repo, number)
        return change

    async def comment(self, repo: str, number: int, body: str) -> None:
        owner, name = _split(repo)

        async def call(gh: GitHub[Any]) -> None:
            await gh.rest.issues.async_create_comment(owner, name, number, body=body)

        await self._run(f"a comment on {repo}#{number}", call)

    async def merge(
        self, repo: str, number: int, *, sha: str, title: str, message: str
    ) -> ChangeRequest:
        owner, name = _split(repo)

        async def call(gh: GitHub[Any]) -> tuple[int, str]:
            try:
                await gh.rest.pulls.async_merge(
                    owner,
                    name,
                    number,
                    commit_title=title,
                    commit_message=message,
                    sha=sha,
                    merge_method="merge",
                )
            except RequestFailed as e:
                if e.response.status_code in (405, 409):
                    return e.response.status_code, _detail(e)
                raise
            return 200, ""

        what = f"{repo}#{number}"
        status, detail = await self._run(f"merging {what}", call)
        change = await self.get_change(repo, number)
        if status == 200 or (change.state == "merged" and change.head_sha == sha):
            return change  # merged now, or by an earlier call whose answer was lost
        if status == 409:
            raise PermanentError(
                f"GitHub did not merge {what}: its head moved to {change.head_sha[:12]} "
                f"since {sha[:12]} was approved. Review the new commits and approve again."
            )
        raise PermanentError(f"GitHub did not merge {what}: {detail}")

    async def merge_when_ready(
        self, repo: str, number: int, *, sha: str, title: str, message: str
    ) -> ChangeRequest:
        change, node_id = await self._read(repo, number)
        what = f"{repo}#{number}"
        if change.state == "merged":
            return change
        if change.state != "open":
            raise PermanentError(f"{what} is closed on GitHub: reopen it or start again.")
        if change.head_sha != sha:
            raise PermanentError(
                f"GitHub's {what} head moved to {change.head_sha[:12]} since {sha[:12]} was "
                "approved. Review the new commits and approve again."
            )
        variables = {
            "input": {
                "pullRequestId": node_id,
                "mergeMethod": "MERGE",
                "commitHeadline": title,
                "commitBody": message,
            }
        }

        async def enable(gh: GitHub[Any]) -> str | None:
            try:
                await gh.async_graphql(AUTO_MERGE, variables)
            except GraphQLFailed as e:
                said = "; ".join(err.message for err in e.response.errors or [])
                if any(n in said.lower() for n in NOTHING_TO_WAIT_FOR):
                    return said
                raise PermanentError(f"GitHub refused auto-merge of {what}: {said}") from None
            return None

        refused = await self._run(f"auto-merge of {what}", enable)
        if refused is not None:
            log.info("github auto-merge not needed, merging now", extra={"pull": what})
            return await self.merge(repo, number, sha=sha, title=title, message=message)
        return await self.get_change(repo, number)

    async def _read(self, repo: str, number: int) -> tuple[ChangeRequest, str]:
        """The pull request and its GraphQL node id."""
        owner, name = _split(repo)

        async def call(gh: GitHub[Any]) -> tuple[ChangeRequest, str]:
            resp = await gh.rest.pulls.async_get(owner, name, number, headers=READ_VERSION)
            pull = resp.parsed_data
            change = ChangeRequest(
                number=pull.number,
                url=pull.html_url,
                head=pull.head.ref,
                base=pull.base.ref,
                state=_state(pull.state, merged=pull.merged),
                head_sha=pull.head.sha,
                merge_sha=_merge_sha(resp.json(), merged=pull.merged),
                auto_merge=pull.auto_merge is not None,
            )
            return change, pull.node_id

        return await self._run(f"{repo}#{number}", call)

    # ── plumbing ──

    def _client(self) -> GitHub[TokenAuthStrategy]:
        token = read_token(self.token_file, "GitHub token")
        return GitHub(
            TokenAuthStrategy(token),
            base_url=self.base_url + "/",
            timeout=self.timeout,
            auto_retry=False,
            http_cache=False,
        )

    async def _run(self, what: str, call: Callable[[GitHub[Any]], Awaitable[T]]) -> T:
        """`call(client)` with GitHub's errors translated (see the module docstring), timed
        as one call to GitHub (`bot.adapters.calls`)."""
        with timed(self.observer):
            try:
                return await call(self._client())
            except RateLimitExceeded as e:
                delay = e.retry_after.total_seconds()
                raise TemporaryError(
                    f"GitHub ({self.host}) is rate limiting rollbot on {what}", delay=delay
                ) from None
            except RequestFailed as e:
                raise self._translate(what, e) from None
            except RequestTimeout:
                raise Unreachable(SERVICE, f"{self.host} timed out on {what}") from None
            except RequestError as e:
                reason = connect_reason(e.exc)
                raise Unreachable(SERVICE, f"{self.host} on {what}: {reason}") from None

    def _translate(self, what: str, e: RequestFailed) -> Exception:
        status = e.response.status_code
        detail = _detail(e)
        if status in (401, 403):
            return Forbidden(SERVICE, f"{self.host} answered {status} ({detail}) on {what}")
        if status >= 500:
            return Unreachable(SERVICE, f"{self.host} answered {status} on {what}")
        if status == 404:
            return PermanentError(
                f"GitHub ({self.host}) has no {what}, or rollbot's token cannot see it (404)."
            )
        if status == 422:
            return InvalidRequest(f"GitHub refused {what}: {detail}")
        return PermanentError(f"GitHub ({self.host}) answered {status} on {what}: {detail}")


def _split(repo: str) -> tuple[str, str]:
    owner, sep, name = repo.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise InvalidRequest(f"A GitHub repository is named owner/name, not {repo!r}.")
    return owner, name


def _state(state: str, *, merged: bool) -> Literal["open", "merged", "closed"]:
    return "merged" if merged else ("open" if state == "open" else "closed")


def _merge_sha(raw: Any, *, merged: bool) -> str | None:
    """`merge_commit_sha` of an answer in API version 2022-11-28, once merged (before,
    it names GitHub's test merge commit, which is no commit of the base branch)."""
    sha = raw.get("merge_commit_sha") if merged and isinstance(raw, dict) else None
    return str(sha) if sha else None


def _detail(e: RequestFailed) -> str:
    """GitHub's `message` and the messages of its `errors`, from the error body."""
    try:
        body = e.response.json()
    except ValueError:
        return e.response.reason_phrase or str(e.response.status_code)
    if not isinstance(body, dict):
        return str(e.response.status_code)
    parts = [str(body.get("message") or "")]
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            text = error.get("message") or " ".join(
                str(error[k]) for k in ("resource", "field", "code") if error.get(k)
            )
            parts.append(str(text))
    return "; ".join(p for p in parts if p) or str(e.response.status_code)
