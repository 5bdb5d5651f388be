"""GitLab's JSON shapes for the sim's objects: the project, the merge request (the single
one and the list entry), the note and the user, with the fields and the order of the
examples in GitLab's REST API documentation (tests/fixtures/gitlab/, see SOURCES.md there).

Fields the sim has no model for keep the documentation's "nothing here" values (null,
0, false, empty lists) rather than being left out, so a client that reads them finds them.
"""

from __future__ import annotations

from typing import Any

from bot.sim.gitlab.model import GitLabState, MergeRequest, Note, Project, User, gitlab_time

__all__ = ["GitLabRenderer"]


class GitLabRenderer:
    def __init__(self, state: GitLabState, url: str = "") -> None:
        self.state = state
        self.url = url  # the sim's base URL, for web_url

    def user(self, user: User | None) -> dict[str, Any] | None:
        if user is None:
            return None
        return {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": "active",
            "locked": False,
            "avatar_url": None,
            "web_url": f"{self.url}/{user.username}",
        }

    def project(self, project: Project) -> dict[str, Any]:
        namespace = project.namespace
        return {
            "id": project.id,
            "description": None,
            "name": project.name,
            "name_with_namespace": " / ".join(project.path.split("/")),
            "path": project.name,
            "path_with_namespace": project.path,
            "created_at": gitlab_time(project.created_at),
            "default_branch": project.default_branch,
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": f"git@{self.url.split('://', 1)[-1]}:{project.path}.git",
            "http_url_to_repo": f"{self.url}/{project.path}.git",
            "web_url": f"{self.url}/{project.path}",
            "readme_url": None,
            "forks_count": 0,
            "avatar_url": None,
            "star_count": 0,
            "last_activity_at": gitlab_time(project.created_at),
            "visibility": "private",
            "namespace": {
                "id": project.id,
                "name": namespace.rsplit("/", 1)[-1],
                "path": namespace.rsplit("/", 1)[-1],
                "kind": "group",
                "full_path": namespace,
                "parent_id": None,
                "avatar_url": None,
                "web_url": f"{self.url}/groups/{namespace}",
            },
            "archived": False,
            "merge_requests_enabled": True,
            "merge_method": "merge",
            "squash_option": "default_off",
            "only_allow_merge_if_pipeline_succeeds": project.pipelines_must_succeed,
            "only_allow_merge_if_all_discussions_are_resolved": False,
            "remove_source_branch_after_merge": True,
            "approvals_before_merge": project.approvals_required,
        }

    def note(self, mr: MergeRequest, note: Note) -> dict[str, Any]:
        return {
            "id": note.id,
            "type": None,
            "body": note.body,
            "attachment": None,
            "author": self.user(note.author),
            "created_at": gitlab_time(note.created_at),
            "updated_at": gitlab_time(note.created_at),
            "system": note.system,
            "noteable_id": mr.id,
            "noteable_type": "MergeRequest",
            "project_id": mr.project.id,
            "noteable_iid": mr.iid,
            "resolvable": False,
            "confidential": False,
            "internal": False,
            "imported": False,
            "imported_from": "none",
        }

    def merge_request(self, mr: MergeRequest, *, single: bool = True) -> dict[str, Any]:
        """The merge request: `single` as GET /merge_requests/:iid (and create, merge)
        answers it, else as a list entry (MergeRequestBasic)."""
        project = mr.project
        sha = mr.sha
        pipeline = self.state.head_pipeline(mr)
        body: dict[str, Any] = {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": project.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "imported": False,
            "imported_from": "none",
            "created_at": gitlab_time(mr.created_at),
            "updated_at": gitlab_time(mr.updated_at),
            "merged_by": self.user(mr.merge_user if mr.state == "merged" else None),
            "merge_user": self.user(mr.merge_user),
            "merged_at": gitlab_time(mr.merged_at) if mr.merged_at else None,
            "merge_after": None,
            "prepared_at": gitlab_time(mr.created_at),
            "closed_by": None,
            "closed_at": gitlab_time(mr.closed_at) if mr.closed_at else None,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "user_notes_count": sum(1 for n in mr.notes if not n.system),
            "upvotes": 0,
            "downvotes": 0,
            "author": self.user(mr.author),
            "assignees": [],
            "assignee": None,
            "reviewers": [],
            "source_project_id": project.id,
            "target_project_id": project.id,
            "labels": list(mr.labels),
            "draft": False,
            "work_in_progress": False,
            "milestone": None,
            "merge_when_pipeline_succeeds": mr.auto_merge is not None,
            "merge_status": self.state.merge_status(mr),
            "detailed_merge_status": self.state.detailed_merge_status(mr),
            "sha": sha,
            "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": mr.squash_commit_sha,
            "discussion_locked": None,
            "should_remove_source_branch": None,
            "force_remove_source_branch": mr.force_remove_source_branch,
            "reference": f"!{mr.iid}",
            "references": {
                "short": f"!{mr.iid}",
                "relative": f"!{mr.iid}",
                "full": f"{project.path}!{mr.iid}",
            },
            "web_url": f"{self.url}/{project.path}/-/merge_requests/{mr.iid}",
            "time_stats": {
                "time_estimate": 0,
                "total_time_spent": 0,
                "human_time_estimate": None,
                "human_total_time_spent": None,
            },
            "squash": mr.squash,
            "squash_on_merge": mr.squash,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_conflicts": mr.merge_error == "conflict",
            "blocking_discussions_resolved": True,
            "approvals_before_merge": None,
        }
        if not single:
            return body
        pipeline_json = None
        if pipeline is not None:
            number, pipeline_sha, status = pipeline
            pipeline_json = {
                "id": number,
                "iid": number,
                "project_id": project.id,
                "sha": pipeline_sha,
                "ref": mr.source_branch,
                "status": status,
                "source": "push",
                "created_at": gitlab_time(mr.created_at),
                "updated_at": gitlab_time(mr.updated_at),
                "web_url": f"{self.url}/{project.path}/-/pipelines/{number}",
            }
        base = mr.base_sha or project.repo.head(mr.target_branch)
        body.update(
            {
                "subscribed": True,
                "changes_count": str(len(_changed(mr))) if sha else None,
                "latest_build_started_at": None,
                "latest_build_finished_at": None,
                "first_deployed_to_production_at": None,
                "pipeline": pipeline_json,
                "head_pipeline": pipeline_json,
                "diff_refs": {"base_sha": base, "head_sha": sha, "start_sha": base},
                "merge_error": None if mr.merge_error == "conflict" else mr.merge_error,
                "first_contribution": False,
                "user": {"can_merge": True},
            }
        )
        if mr.merge_error == "conflict":
            body["merge_error"] = "Branch cannot be merged"
        return body


def _changed(mr: MergeRequest) -> list[str]:
    """The paths the merge request changes (from the merge base to its head)."""
    sha = mr.sha
    if sha is None:
        return []
    target = mr.base_sha if mr.state != "opened" and mr.base_sha else mr.target_branch
    out = mr.project.repo.run("diff", "--name-only", f"{target}...{sha}")
    return [line for line in out.splitlines() if line]
