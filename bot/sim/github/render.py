"""GitHub's JSON shapes, as the REST API description's schemas have them (`simple-user`,
`repository`, `full-repository`, `pull-request`, `pull-request-simple`, `label`,
`issue-comment`, `pull-request-merge-result`): every required field, the URL templates in
GitHub's forms, null where the sim has nothing to say.

`version` is the REST API version the request selected (`X-GitHub-Api-Version`):
2026-03-10 no longer has `merge_commit_sha` on pull requests (its breaking change
`remove_pull_request_merge_commit_sha`); 2022-11-28, the default, still has it.
"""

from __future__ import annotations

from typing import Any

from bot.sim.github.model import (
    Comment,
    GitHubState,
    Label,
    Pull,
    Repo,
    User,
    node_id,
)

__all__ = ["V2022", "V2026", "VERSIONS", "Renderer"]

V2022 = "2022-11-28"
V2026 = "2026-03-10"
VERSIONS = (V2022, V2026)

_REPO_URLS = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
    "hooks_url": "/hooks",
}


class Renderer:
    """The shapes, with URLs under `url` (the sim serves the API and names its web pages
    from the same origin, as GitHub Enterprise does from one host)."""

    def __init__(self, state: GitHubState, url: str = "") -> None:
        self.state = state
        self.url = url

    # ── users, repositories ──

    def user(self, user: User) -> dict[str, Any]:
        api = f"{self.url}/users/{user.login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id(user.type, user.id),
            "avatar_url": f"{self.url}/avatars/{user.login}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.url}/{user.login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def repository(self, repo: Repo) -> dict[str, Any]:
        """The `repository` schema (a pull request's head.repo and base.repo)."""
        api = f"{self.url}/repos/{repo.full_name}"
        host = self.url.split("://", 1)[-1]
        out: dict[str, Any] = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self.user(repo.owner),
            "private": True,
            "html_url": f"{self.url}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": api,
        }
        out.update({key: api + suffix for key, suffix in _REPO_URLS.items()})
        out.update(
            {
                "git_url": f"git://{host}/{repo.full_name}.git",
                "ssh_url": f"git@{host.split(':')[0]}:{repo.full_name}.git",
                "clone_url": f"{self.url}/{repo.full_name}.git",
                "mirror_url": None,
                "svn_url": f"{self.url}/{repo.full_name}",
                "homepage": None,
                "language": None,
                "forks_count": 0,
                "stargazers_count": 0,
                "watchers_count": 0,
                "size": 0,
                "default_branch": repo.default_branch,
                "open_issues_count": self._open(repo),
                "is_template": False,
                "topics": [],
                "has_issues": True,
                "has_projects": False,
                "has_wiki": False,
                "has_pages": False,
                "has_downloads": False,
                "has_discussions": False,
                "archived": False,
                "disabled": False,
                "visibility": "private",
                "pushed_at": repo.created_at,
                "created_at": repo.created_at,
                "updated_at": repo.created_at,
                "permissions": {
                    "admin": False,
                    "maintain": False,
                    "push": True,
                    "triage": True,
                    "pull": True,
                },
                "allow_rebase_merge": False,
                "template_repository": None,
                "temp_clone_token": None,
                "allow_squash_merge": True,
                "allow_merge_commit": True,
                "allow_auto_merge": repo.allow_auto_merge,
                "delete_branch_on_merge": False,
                "allow_update_branch": False,
                "allow_forking": False,
                "web_commit_signoff_required": False,
                "subscribers_count": 0,
                "network_count": 0,
                "license": None,
                "forks": 0,
                "open_issues": self._open(repo),
                "watchers": 0,
            }
        )
        return out

    def full_repository(self, repo: Repo) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}: `repository` plus the counts of `full-repository`."""
        out = self.repository(repo)
        out.update(
            {
                "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
                "squash_merge_commit_message": "COMMIT_MESSAGES",
                "merge_commit_title": "MERGE_MESSAGE",
                "merge_commit_message": "PR_TITLE",
            }
        )
        return out

    @staticmethod
    def _open(repo: Repo) -> int:
        return sum(1 for p in repo.pulls.values() if p.state == "open")

    # ── labels, comments ──

    def label(self, repo: Repo, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{self.url}/repos/{repo.full_name}/labels/{label.name}",
            "name": label.name,
            "description": label.description,
            "color": label.color,
            "default": False,
            "archived_at": None,
            "archived_by": None,
        }

    def comment(self, repo: Repo, pull: Pull, comment: Comment) -> dict[str, Any]:
        api = f"{self.url}/repos/{repo.full_name}"
        return {
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"{self.url}/{repo.full_name}/pull/{pull.number}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self.user(comment.user),
            "created_at": comment.created_at,
            "updated_at": comment.created_at,
            "issue_url": f"{api}/issues/{pull.number}",
            "author_association": "COLLABORATOR",
        }

    # ── pull requests ──

    def pull_simple(self, repo: Repo, pull: Pull, version: str) -> dict[str, Any]:
        """The `pull-request-simple` schema (GET …/pulls)."""
        api = f"{self.url}/repos/{repo.full_name}"
        html = f"{self.url}/{repo.full_name}/pull/{pull.number}"
        head_sha = repo.head_sha(pull)
        out: dict[str, Any] = {
            "url": f"{api}/pulls/{pull.number}",
            "id": pull.id,
            "node_id": node_id("PullRequest", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{pull.number}",
            "commits_url": f"{api}/pulls/{pull.number}/commits",
            "review_comments_url": f"{api}/pulls/{pull.number}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{pull.number}/comments",
            "statuses_url": f"{api}/statuses/{head_sha}",
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self.user(pull.user),
            "body": pull.body,
            "labels": [self.label(repo, label) for label in pull.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": pull.created_at,
            "updated_at": pull.updated_at,
            "closed_at": pull.closed_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": self._merge_commit_sha(repo, pull),
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": self._ref(repo, pull.head, head_sha),
            "base": self._ref(repo, pull.base, repo.base_sha(pull)),
            "_links": self._links(repo, pull, head_sha),
            "author_association": "COLLABORATOR",
            "auto_merge": self._auto_merge(pull),
            "draft": pull.draft,
        }
        if version == V2026:
            del out["merge_commit_sha"]
        return out

    def pull(self, repo: Repo, pull: Pull, version: str) -> dict[str, Any]:
        """The `pull-request` schema (GET, POST …/pulls/{n})."""
        out = self.pull_simple(repo, pull, version)
        mergeable, state = self.state.mergeable_state(repo, pull)
        commits = (
            len(repo.git.commits(repo.base_sha(pull), repo.head_sha(pull)))
            if repo.head_sha(pull)
            else 0
        )
        out.update(
            {
                "merged": pull.merged,
                "mergeable": mergeable,
                "rebaseable": False,
                "mergeable_state": state,
                "merged_by": self.user(pull.merged_by) if pull.merged_by else None,
                "comments": len(pull.comments),
                "review_comments": 0,
                "maintainer_can_modify": False,
                "commits": commits,
                "additions": 0,
                "deletions": 0,
                "changed_files": 0,
            }
        )
        return out

    def _merge_commit_sha(self, repo: Repo, pull: Pull) -> str | None:
        # Before the merge GitHub names its test merge commit here; the sim has none and
        # says null, as GitHub does while it has not computed one.
        return pull.merge_commit_sha

    def _ref(self, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{repo.owner.login}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.user(repo.owner),
            "repo": self.repository(repo),
        }

    def _links(self, repo: Repo, pull: Pull, head_sha: str) -> dict[str, Any]:
        api = f"{self.url}/repos/{repo.full_name}"
        n = pull.number
        return {
            "self": {"href": f"{api}/pulls/{n}"},
            "html": {"href": f"{self.url}/{repo.full_name}/pull/{n}"},
            "issue": {"href": f"{api}/issues/{n}"},
            "comments": {"href": f"{api}/issues/{n}/comments"},
            "review_comments": {"href": f"{api}/pulls/{n}/comments"},
            "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/pulls/{n}/commits"},
            "statuses": {"href": f"{api}/statuses/{head_sha}"},
        }

    def _auto_merge(self, pull: Pull) -> dict[str, Any] | None:
        auto = pull.auto_merge
        if auto is None:
            return None
        return {
            "enabled_by": self.user(auto.enabled_by),
            "merge_method": auto.merge_method,
            "commit_title": auto.commit_title,
            "commit_message": auto.commit_message,
        }
