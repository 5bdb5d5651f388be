"""The GitHub sim's state: repositories backed by real bare repositories, their pull
requests, labels, comments, reviews, commit statuses, branch protection and auto-merge.

Nothing about a branch is cached: a pull request's head is `BareRepo.head(ref)` at the
moment it is read (rollbot pushes over smart HTTP to the same bare repository), until the
pull request is closed or merged, when GitHub freezes it. Mergeability is asked of git
(`git merge-tree --write-tree`), and a merge is `BareRepo.merge`: a real merge commit (or
a squash) on the base branch.

Every method runs under `GitHubState.lock`; failures raise `GitHubError` (the REST error
body) or `GraphQLError` (one entry of a GraphQL answer's `errors`).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.sim.git import BareRepo, GitError, MergeConflict

__all__ = [
    "AutoMerge",
    "Comment",
    "GitHubError",
    "GitHubState",
    "GraphQLError",
    "Label",
    "Protection",
    "Pull",
    "Repo",
    "User",
    "node_id",
    "now_iso",
]

DOCS = "https://docs.github.com/rest"
MERGE_DOCS = "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request"
CREATE_DOCS = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    """A global node id in GitHub's legacy form: base64 of "0<len(kind)>:<kind><id>"
    ("MDExOlB1bGxSZXF1ZXN0MQ==" is "011:PullRequest1")."""
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


class GitHubError(Exception):
    """A REST error: `status` and GitHub's body (`message`, `documentation_url`, `status`,
    and `errors` for a 422)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        docs: str = DOCS,
        errors: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.docs = docs
        self.errors = errors

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"message": self.message, "documentation_url": self.docs}
        if self.errors is not None:
            out["errors"] = self.errors
        out["status"] = str(self.status)
        return out


class GraphQLError(Exception):
    """One GraphQL error (`type` as GitHub names it: NOT_FOUND, UNPROCESSABLE, …)."""

    def __init__(self, message: str, *, type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.type = type


@dataclass(slots=True)
class User:
    login: str
    id: int
    type: str = "User"


@dataclass(slots=True)
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass(slots=True)
class Comment:
    id: int
    body: str
    user: User
    created_at: str


@dataclass(slots=True)
class Protection:
    """Classic branch protection: required approving reviews and required status checks."""

    approvals: int = 0
    checks: tuple[str, ...] = ()


@dataclass(slots=True)
class AutoMerge:
    enabled_by: User
    merge_method: str  # merge | squash | rebase
    commit_title: str | None
    commit_message: str | None


@dataclass(slots=True)
class Pull:
    number: int
    id: int
    title: str
    body: str | None
    head: str
    base: str
    user: User
    draft: bool
    created_at: str
    updated_at: str
    state: str = "open"  # open | closed
    merged: bool = False
    merged_at: str | None = None
    closed_at: str | None = None
    merged_by: User | None = None
    merge_commit_sha: str | None = None
    frozen_head: str | None = None  # the head sha once closed or merged
    frozen_base: str | None = None
    labels: list[Label] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    approvals: dict[str, str] = field(default_factory=dict)  # login → sha approved
    auto_merge: AutoMerge | None = None


@dataclass(slots=True)
class Repo:
    owner: User
    name: str
    id: int
    git: BareRepo
    default_branch: str
    allow_auto_merge: bool = True
    created_at: str = field(default_factory=now_iso)
    pulls: dict[int, Pull] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # lower-cased name → label
    protection: dict[str, Protection] = field(default_factory=dict)  # branch → rules
    statuses: dict[str, dict[str, str]] = field(default_factory=dict)  # sha → context → state

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    def head_sha(self, pull: Pull) -> str:
        if pull.frozen_head is not None:
            return pull.frozen_head
        return self.git.head(pull.head) or ""

    def base_sha(self, pull: Pull) -> str:
        if pull.frozen_base is not None:
            return pull.frozen_base
        return self.git.head(pull.base) or ""


class GitHubState:
    """Every repository, user and counter of the sim."""

    def __init__(self, repos: dict[str, BareRepo], *, login: str) -> None:
        self.lock = threading.RLock()
        self._ids = 1000
        self.bot = User(login, self._next_id(), type="Bot" if login.endswith("[bot]") else "User")
        self.users: dict[str, User] = {login.lower(): self.bot}
        self.repos: dict[str, Repo] = {}
        for full_name, git in repos.items():
            self.add_repo(full_name, git)

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # ── repositories and users ──

    def user(self, login: str) -> User:
        known = self.users.get(login.lower())
        if known is None:
            known = self.users[login.lower()] = User(login, self._next_id())
        return known

    def add_repo(self, full_name: str, git: BareRepo) -> Repo:
        owner, _, name = full_name.partition("/")
        if not owner or not name:
            raise ValueError(f"a repository is named owner/name, not {full_name!r}")
        branches = git.branches()
        default = "main" if "main" in branches or not branches else sorted(branches)[0]
        repo = Repo(self.user(owner), name, self._next_id(), git, default)
        self.repos[full_name.lower()] = repo
        return repo

    def repo(self, owner: str, name: str) -> Repo:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise GitHubError(404, "Not Found", docs=f"{DOCS}/repos/repos#get-a-repository")
        return repo

    def pull(self, repo: Repo, number: int) -> Pull:
        pull = repo.pulls.get(number)
        if pull is None:
            raise GitHubError(404, "Not Found", docs=f"{DOCS}/pulls/pulls#get-a-pull-request")
        return pull

    def pull_by_node(self, node: str) -> tuple[Repo, Pull]:
        for repo in self.repos.values():
            for pull in repo.pulls.values():
                if node_id("PullRequest", pull.id) == node:
                    return repo, pull
        raise GraphQLError(
            f"Could not resolve to a node with the global id of '{node}'", type="NOT_FOUND"
        )

    # ── pull requests ──

    def create_pull(
        self,
        repo: Repo,
        *,
        title: str | None,
        head: str,
        base: str,
        body: str | None,
        draft: bool,
        author: User,
    ) -> Pull:
        owner, sep, ref = head.partition(":")
        if not sep:
            owner, ref = repo.owner.login, head
        errors: list[dict[str, object]] = []
        if not title:
            errors.append({"resource": "Issue", "code": "missing_field", "field": "title"})
        if owner.lower() != repo.owner.login.lower() or repo.git.head(ref) is None:
            errors.append({"resource": "PullRequest", "field": "head", "code": "invalid"})
        if repo.git.head(base) is None:
            errors.append({"resource": "PullRequest", "field": "base", "code": "invalid"})
        if not errors:
            for other in repo.pulls.values():
                if other.state == "open" and other.head == ref and other.base == base:
                    errors.append(
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {owner}:{ref}.",
                        }
                    )
                    break
        if not errors and not repo.git.commits(base, ref):
            errors.append(
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {base} and {ref}",
                }
            )
        if errors:
            raise GitHubError(422, "Validation Failed", docs=CREATE_DOCS, errors=errors)
        number = max(repo.pulls, default=0) + 1
        at = now_iso()
        pull = Pull(
            number=number,
            id=self._next_id(),
            title=str(title),
            body=body,
            head=ref,
            base=base,
            user=author,
            draft=draft,
            created_at=at,
            updated_at=at,
        )
        repo.pulls[number] = pull
        return pull

    def add_labels(self, repo: Repo, pull: Pull, names: Iterable[str]) -> list[Label]:
        for name in names:
            label = repo.labels.get(name.lower())
            if label is None:
                label = repo.labels[name.lower()] = Label(self._next_id(), name)
            if label not in pull.labels:
                pull.labels.append(label)
        pull.updated_at = now_iso()
        return list(pull.labels)

    def add_comment(self, pull: Pull, body: str, author: User) -> Comment:
        comment = Comment(self._next_id(), body, author, now_iso())
        pull.comments.append(comment)
        pull.updated_at = comment.created_at
        return comment

    # ── mergeability and protection ──

    def conflicts(self, repo: Repo, pull: Pull) -> bool:
        try:
            repo.git.run("merge-tree", "--write-tree", repo.base_sha(pull), repo.head_sha(pull))
        except GitError:
            return True
        return False

    def missing(self, repo: Repo, pull: Pull) -> list[str]:
        """What branch protection on the base still requires, in GitHub's words."""
        rules = repo.protection.get(pull.base)
        if rules is None:
            return []
        out: list[str] = []
        head = repo.head_sha(pull)
        approved = sum(
            1 for login, sha in pull.approvals.items() if sha == head and login != pull.user.login
        )
        if approved < rules.approvals:
            noun = "review is" if rules.approvals == 1 else "reviews are"
            out.append(
                f"At least {rules.approvals} approving {noun} required by reviewers with "
                "write access."
            )
        states = repo.statuses.get(head, {})
        failing = [c for c in rules.checks if states.get(c) in ("failure", "error")]
        expected = [c for c in rules.checks if states.get(c) != "success" and c not in failing]
        for context in failing:
            out.append(f'Required status check "{context}" is failing.')
        if len(expected) == 1:
            out.append(f'Required status check "{expected[0]}" is expected.')
        elif expected:
            out.append(
                f"{len(expected)} of {len(rules.checks)} required status checks are expected."
            )
        return out

    def mergeable_state(self, repo: Repo, pull: Pull) -> tuple[bool | None, str]:
        """(`mergeable`, `mergeable_state`) as GitHub reports them."""
        if pull.state != "open":
            return None, "unknown"
        if self.conflicts(repo, pull):
            return False, "dirty"
        if pull.draft:
            return True, "draft"
        if self.missing(repo, pull):
            return True, "blocked"
        return True, "clean"

    # ── merging ──

    def merge(
        self,
        repo: Repo,
        pull: Pull,
        *,
        by: User,
        sha: str | None,
        title: str | None,
        message: str | None,
        method: str,
    ) -> str:
        if method not in ("merge", "squash", "rebase"):
            raise GitHubError(
                422,
                "Validation Failed",
                docs=MERGE_DOCS,
                errors=[{"resource": "PullRequest", "field": "merge_method", "code": "invalid"}],
            )
        if pull.state != "open" or pull.draft:
            raise GitHubError(405, "Pull Request is not mergeable", docs=MERGE_DOCS)
        head = repo.head_sha(pull)
        if sha is not None and sha != head:
            raise GitHubError(
                409, "Head branch was modified. Review and try the merge again.", docs=MERGE_DOCS
            )
        if method == "rebase":
            raise GitHubError(
                405, "Rebase merges are not allowed on this repository.", docs=MERGE_DOCS
            )
        missing = self.missing(repo, pull)
        if missing:
            raise GitHubError(405, "\n".join(missing), docs=MERGE_DOCS)
        if title is None:
            title = (
                f"{pull.title} (#{pull.number})"
                if method == "squash"
                else f"Merge pull request #{pull.number} from {repo.owner.login}/{pull.head}"
            )
        if message is None:
            message = pull.title if method == "merge" else ""
        text = f"{title}\n\n{message}" if message else title
        base_before = repo.git.head(pull.base) or ""
        try:
            merged = repo.git.merge(
                pull.base,
                pull.head,
                text,
                author=(by.login, f"{by.login}@users.noreply.github.com"),
                squash=method == "squash",
            )
        except MergeConflict:
            raise GitHubError(405, "Pull Request is not mergeable", docs=MERGE_DOCS) from None
        at = now_iso()
        pull.state, pull.merged, pull.merged_at, pull.closed_at = "closed", True, at, at
        pull.updated_at = at
        pull.merged_by = by
        pull.merge_commit_sha = merged
        pull.frozen_head, pull.frozen_base = head, base_before
        pull.auto_merge = None
        return merged

    def settle(self) -> list[tuple[Repo, Pull]]:
        """Merge every pull request whose auto-merge is enabled and whose base's protection
        is now satisfied, as GitHub does (with the commit title and message given when
        auto-merge was enabled); the ones merged."""
        done: list[tuple[Repo, Pull]] = []
        for repo in self.repos.values():
            for pull in list(repo.pulls.values()):
                auto = pull.auto_merge
                if auto is None or pull.state != "open":
                    continue
                if self.missing(repo, pull) or self.conflicts(repo, pull):
                    continue
                try:
                    self.merge(
                        repo,
                        pull,
                        by=auto.enabled_by,
                        sha=None,
                        title=auto.commit_title,
                        message=auto.commit_message,
                        method=auto.merge_method,
                    )
                except GitHubError:
                    continue
                done.append((repo, pull))
        return done

    def enable_auto_merge(
        self,
        node: str,
        *,
        by: User,
        method: str,
        headline: str | None,
        body: str | None,
    ) -> tuple[Repo, Pull]:
        repo, pull = self.pull_by_node(node)
        if pull.state != "open":
            raise GraphQLError("Pull request is closed", type="UNPROCESSABLE")
        if not repo.allow_auto_merge:
            raise GraphQLError(
                "Pull request Auto merge is not allowed for this repository", type="UNPROCESSABLE"
            )
        if pull.base not in repo.protection:
            raise GraphQLError(
                "Pull request Protected branch rules not configured for this branch",
                type="UNPROCESSABLE",
            )
        _mergeable, state = self.mergeable_state(repo, pull)
        if state in ("clean", "dirty"):
            raise GraphQLError(
                f"Pull request Pull request is in {state} status", type="UNPROCESSABLE"
            )
        pull.auto_merge = AutoMerge(by, method, headline, body)
        pull.updated_at = now_iso()
        return repo, pull
