"""GitCli (bot.adapters.git) against the real Git peer: bare repositories served by
`git http-backend` over smart HTTP (bot/sim/git), with a token.

Aspects under test:

- a release that reverts cleanly → RevertKind.REVERT on the derived branch, the release's
  file back as it was, the diff and files as `git diff` says, nothing pushed yet, and
  the temporary clone removed;
- a revert that conflicts → the revert aborted and the stable image set back instead:
  the kustomize `images:` entry's newTag (comments and layout kept), or, without a
  kustomization, the manifest's `image:` field; the note names the conflicting path;
  with no image (or none that matches) → PermanentError saying what was tried;
- the release a merge commit → reverted against its first parent;
- the same work prepared twice, by another instance too (a restart) → the same commit
  sha, with the work's author and date;
- push → the branch at the prepared commit; pushed again (or from another instance) →
  nothing pushed, the same sha; the branch already at another sha → PermanentError
  naming both, the branch left alone; the base rewritten under the prepared revert →
  PermanentError, nothing pushed;
- a URL not in `allowed` (or with credentials, or not http) → PermanentError before any
  request; an unknown base branch, an unknown release sha, a release not on the base →
  PermanentError saying so;
- a wrong token, a 403 → PermanentError "the Git token was refused by <host>"; a host
  answering 503 or not listening → Unreachable (a TemporaryError), and the next call
  works; a rotated token file is read at the next call;
- the token is in no log record, no error message, no process argument (argv of every
  process started is recorded), and reaches git only as the scoped extraHeader;
- a redirect (to the real repository) is not followed → PermanentError, and the
  repository's host received nothing;
- a host that never answers → Unreachable "timed out" after `timeout`, and the git
  process was killed and reaped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.git import GitCli
from bot.core.errors import PermanentError, TemporaryError, Unreachable
from bot.core.gitops import (
    GitRepos,
    RevertKind,
    RevertWork,
    revert_branch,
    revert_message,
)
from bot.sim._server import ThreadedServer
from bot.sim.git import DEFAULT_TOKEN, BareRepo, GitHttpServer

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - rollout.yaml   # the Rollout
images:
  # the router's image: each release bumps the tag
  - name: registry.example.com/payment-router
    newTag: "1.4.0"
  - name: registry.example.com/sidecar
    newTag: "0.9"
"""
ROUTER = "services/payment-router"
LEDGER_ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: ledger
spec:
  template:
    spec:
      containers:
        - name: ledger
          image: registry.example.com/ledger:2.0.0   # stable
          env:
            - name: MODE
              value: safe
        - name: proxy
          image: "registry.example.com/proxy:3.1"
---
apiVersion: v1
kind: Service
metadata:
  name: ledger
"""
LEDGER = "services/ledger"
WHEN = "2026-12-06T15:00:00+00:00"
AUTHOR = ("rollbot", "rollbot@example.com")


@dataclass
class Configs:
    server: GitHttpServer
    repo: BareRepo
    url: str
    token_file: Path
    release: str  # payment-router 1.4.0 → 1.5.0
    ledger_release: str  # ledger 2.0.0 → 2.1.0, MODE safe → fast

    def work(self, **changes: Any) -> RevertWork:
        release = changes.pop("release_sha", self.release)
        work = RevertWork(
            url=self.url,
            base="main",
            path=ROUTER,
            release_sha=release,
            branch=revert_branch("payment-router", 7, "inc-42"),
            message=revert_message(
                service="payment-router",
                release_sha=release,
                incident="INC-42",
                requester="Alice",
                kind=RevertKind.REVERT,
            ),
            author=AUTHOR,
            when=WHEN,
            image="registry.example.com/payment-router:1.4.0",
        )
        return replace(work, **changes)


@pytest.fixture
def configs(tmp_path: Path) -> Iterator[Configs]:
    token_file = tmp_path / "git-token"
    token_file.write_text(DEFAULT_TOKEN + "\n")
    with GitHttpServer(tmp_path / "srv") as server:
        repo = server.create_repo(
            "configs",
            {
                f"{ROUTER}/kustomization.yaml": KUSTOMIZATION,
                f"{ROUTER}/rollout.yaml": "kind: Rollout\n",
                f"{LEDGER}/rollout.yaml": LEDGER_ROLLOUT,
            },
        )
        release = repo.commit_files(
            "main",
            {f"{ROUTER}/kustomization.yaml": KUSTOMIZATION.replace('"1.4.0"', '"1.5.0"')},
            "Release payment-router 1.5.0",
        )
        ledger_release = repo.commit_files(
            "main",
            {
                f"{LEDGER}/rollout.yaml": LEDGER_ROLLOUT.replace("2.0.0", "2.1.0").replace(
                    "value: safe", "value: fast"
                )
            },
            "Release ledger 2.1.0",
        )
        yield Configs(server, repo, server.repo_url("configs"), token_file, release, ledger_release)


@pytest.fixture
def cli(configs: Configs, tmp_path: Path) -> GitCli:
    return GitCli(configs.token_file, tmp_path / "work", allowed=[configs.url])


def _is_a_git_repos_port(adapter: GitCli) -> GitRepos:
    return adapter  # mypy checks that GitCli satisfies bot.core.gitops.GitRepos


# ── prepare ───────────────────────────────────────────────────────────────────────────


async def test_a_clean_revert(cli: GitCli, configs: Configs, tmp_path: Path) -> None:
    work = configs.work()
    prepared = await cli.prepare_revert(work)

    assert prepared.kind is RevertKind.REVERT
    assert prepared.note == ""
    assert prepared.base_sha == configs.repo.head("main")
    assert prepared.files == (f"{ROUTER}/kustomization.yaml",)
    assert '-    newTag: "1.5.0"\n+    newTag: "1.4.0"\n' in prepared.diff
    assert prepared.diff.startswith(f"diff --git a/{ROUTER}/kustomization.yaml")
    assert configs.server.pushes() == []
    assert work.branch not in configs.repo.branches()
    assert list((tmp_path / "work").iterdir()) == []  # the clone is gone

    assert await cli.push(prepared) == prepared.head_sha
    assert configs.repo.show(work.branch, f"{ROUTER}/kustomization.yaml") == KUSTOMIZATION
    commit = configs.repo.commit(prepared.head_sha)
    assert commit.parents == (prepared.base_sha,)
    assert commit.message == work.message.strip()
    assert (commit.author_name, commit.author_email) == AUTHOR


async def test_a_conflict_sets_the_kustomize_image_back(cli: GitCli, configs: Configs) -> None:
    hotfix = KUSTOMIZATION.replace('"1.4.0"', '"1.5.1"')
    configs.repo.commit_files("main", {f"{ROUTER}/kustomization.yaml": hotfix}, "Hotfix 1.5.1")

    prepared = await cli.prepare_revert(configs.work())

    assert prepared.kind is RevertKind.IMAGE
    assert prepared.note == (
        f"git revert conflicted in {ROUTER}/kustomization.yaml; "
        "the stable image was set back instead"
    )
    assert prepared.files == (f"{ROUTER}/kustomization.yaml",)
    await cli.push(prepared)
    # Only the tag changed: the comments, the other entry and the quoting are as they were.
    assert configs.repo.show(prepared.work.branch, f"{ROUTER}/kustomization.yaml") == KUSTOMIZATION


async def test_a_conflict_sets_a_digest_image_back(cli: GitCli, configs: Configs) -> None:
    configs.repo.commit_files(
        "main",
        {f"{ROUTER}/kustomization.yaml": KUSTOMIZATION.replace('"1.4.0"', '"1.5.1"')},
        "Hotfix 1.5.1",
    )
    digest = "sha256:" + "ab" * 32
    work = configs.work(image=f"registry.example.com/payment-router@{digest}")
    prepared = await cli.prepare_revert(work)
    assert prepared.kind is RevertKind.IMAGE
    await cli.push(prepared)
    assert configs.repo.show(work.branch, f"{ROUTER}/kustomization.yaml") == KUSTOMIZATION.replace(
        '    newTag: "1.4.0"\n', f"    digest: {digest}\n"
    )


async def test_a_conflict_sets_the_manifest_image_back(cli: GitCli, configs: Configs) -> None:
    later = LEDGER_ROLLOUT.replace("2.0.0", "2.1.0").replace("value: safe", "value: faster")
    configs.repo.commit_files("main", {f"{LEDGER}/rollout.yaml": later}, "Faster")
    work = configs.work(
        release_sha=configs.ledger_release,
        path=LEDGER,
        image="registry.example.com/ledger:2.0.0",
        branch=revert_branch("ledger", 3, "inc-43"),
    )
    prepared = await cli.prepare_revert(work)

    assert prepared.kind is RevertKind.IMAGE
    assert f"conflicted in {LEDGER}/rollout.yaml;" in prepared.note
    assert prepared.files == (f"{LEDGER}/rollout.yaml",)
    assert (
        "-          image: registry.example.com/ledger:2.1.0   # stable\n"
        "+          image: registry.example.com/ledger:2.0.0   # stable\n"
    ) in prepared.diff
    await cli.push(prepared)
    assert configs.repo.show(work.branch, f"{LEDGER}/rollout.yaml") == later.replace(
        "2.1.0", "2.0.0"
    )


async def test_a_conflict_with_no_image_to_set_says_what_was_tried(
    cli: GitCli, configs: Configs
) -> None:
    configs.repo.commit_files(
        "main",
        {f"{ROUTER}/kustomization.yaml": KUSTOMIZATION.replace('"1.4.0"', '"1.5.1"')},
        "Hotfix 1.5.1",
    )
    with pytest.raises(PermanentError, match="no stable image to set back"):
        await cli.prepare_revert(configs.work(image=None))
    with pytest.raises(PermanentError) as caught:
        await cli.prepare_revert(configs.work(image="registry.example.com/other:1.0"))
    assert f"conflicted in {ROUTER}/kustomization.yaml" in caught.value.message
    assert "has no `images:` entry named `registry.example.com/other`" in caught.value.message
    assert "no YAML file under" in caught.value.message
    assert configs.server.pushes() == []


async def test_the_release_a_merge_commit_is_reverted_against_its_first_parent(
    cli: GitCli, configs: Configs
) -> None:
    configs.repo.commit_files(
        "bump",
        {f"{ROUTER}/kustomization.yaml": KUSTOMIZATION.replace('"1.4.0"', '"1.6.0"')},
        "Bump to 1.6.0",
        start="main",
    )
    merged = configs.repo.merge("main", "bump", "Merge pull request #7: bump")
    prepared = await cli.prepare_revert(configs.work(release_sha=merged))
    assert prepared.kind is RevertKind.REVERT
    assert '-    newTag: "1.6.0"\n+    newTag: "1.5.0"\n' in prepared.diff


async def test_the_same_work_gives_the_same_commit(
    cli: GitCli, configs: Configs, tmp_path: Path
) -> None:
    work = configs.work()
    first = await cli.prepare_revert(work)
    again = await cli.prepare_revert(work)
    restarted = GitCli(configs.token_file, tmp_path / "other", allowed=[configs.url])
    after_restart = await restarted.prepare_revert(work)

    assert first.head_sha == again.head_sha == after_restart.head_sha
    assert first == again == after_restart
    await cli.push(first)
    shown = configs.repo.run("show", "-s", "--format=%an|%ae|%cn|%ce|%aI|%cI", first.head_sha)
    assert shown.strip() == "|".join([*AUTHOR, *AUTHOR, WHEN, WHEN])


# ── push ──────────────────────────────────────────────────────────────────────────────


async def test_push_is_idempotent(cli: GitCli, configs: Configs, tmp_path: Path) -> None:
    prepared = await cli.prepare_revert(configs.work())
    assert await cli.remote_head(configs.url, prepared.work.branch) is None

    assert await cli.push(prepared) == prepared.head_sha
    assert await cli.push(prepared) == prepared.head_sha
    restarted = GitCli(configs.token_file, tmp_path / "other", allowed=[configs.url])
    assert await restarted.push(prepared) == prepared.head_sha

    assert len(configs.server.pushes()) == 1
    assert configs.repo.head(prepared.work.branch) == prepared.head_sha
    assert await cli.remote_head(configs.url, prepared.work.branch) == prepared.head_sha


async def test_push_from_another_instance_rebuilds_the_same_commit(
    cli: GitCli, configs: Configs, tmp_path: Path
) -> None:
    prepared = await cli.prepare_revert(configs.work())
    configs.repo.commit_files("main", {"README.md": "moved on\n"}, "Unrelated")  # base moves
    restarted = GitCli(configs.token_file, tmp_path / "other", allowed=[configs.url])
    assert await restarted.push(prepared) == prepared.head_sha
    assert configs.repo.commit(prepared.head_sha).parents == (prepared.base_sha,)


async def test_push_after_the_base_was_rewritten_is_refused(cli: GitCli, configs: Configs) -> None:
    prepared = await cli.prepare_revert(configs.work())
    rewritten = configs.repo.commit_files("fresh", {"a.txt": "a\n"}, "A new history")
    configs.repo.run("update-ref", "refs/heads/main", rewritten)  # a force-push to main
    with pytest.raises(PermanentError, match=f"prepared on {prepared.base_sha}, which is no"):
        await cli.push(prepared)
    assert configs.server.pushes() == []


async def test_push_refuses_a_branch_at_another_sha(cli: GitCli, configs: Configs) -> None:
    prepared = await cli.prepare_revert(configs.work())
    other = configs.repo.commit_files(
        prepared.work.branch, {"x.txt": "someone else\n"}, "Not rollbot's", start="main"
    )
    with pytest.raises(PermanentError) as caught:
        await cli.push(prepared)
    assert other in caught.value.message and prepared.head_sha in caught.value.message
    assert "does not force-push" in caught.value.message
    assert configs.repo.head(prepared.work.branch) == other
    assert configs.server.pushes() == []


# ── refusals before any call ──────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "url",
    [
        "https://elsewhere.example.com/configs.git",
        "ext::sh -c touch% /tmp/pwned",
        "file:///etc",
    ],
)
async def test_a_url_not_allowed_is_refused_before_any_call(
    cli: GitCli, configs: Configs, url: str
) -> None:
    with pytest.raises(PermanentError, match="not one rollbot may use"):
        await cli.prepare_revert(configs.work(url=url))
    with pytest.raises(PermanentError, match="not one rollbot may use"):
        await cli.remote_head(url, "main")
    assert configs.server.requests == []


async def test_allowed_urls_with_credentials_or_another_scheme_are_refused(
    configs: Configs, tmp_path: Path
) -> None:
    with_user = configs.url.replace("http://", "http://me:secret@")
    cli = GitCli(configs.token_file, tmp_path / "w", allowed=[with_user, "file:///srv/c.git"])
    with pytest.raises(PermanentError, match="holds credentials"):
        await cli.remote_head(with_user, "main")
    with pytest.raises(PermanentError, match="not an http"):
        await cli.remote_head("file:///srv/c.git", "main")
    assert configs.server.requests == []


async def test_an_unknown_base_or_release_is_permanent(cli: GitCli, configs: Configs) -> None:
    with pytest.raises(PermanentError, match="the branch `nope` does not exist"):
        await cli.prepare_revert(configs.work(base="nope"))
    with pytest.raises(PermanentError, match="not an ancestor of `main`"):
        await cli.prepare_revert(configs.work(release_sha="0123456789abcdef" * 2 + "01234567"))
    elsewhere = configs.repo.commit_files("side", {"y.txt": "y\n"}, "On a side branch")
    with pytest.raises(PermanentError, match="not an ancestor of `main`"):
        await cli.prepare_revert(configs.work(release_sha=elsewhere))
    with pytest.raises(PermanentError, match="is not a commit id"):
        await cli.prepare_revert(configs.work(release_sha="--upload-pack=touch"))
    assert configs.server.pushes() == []


# ── the host and the token ────────────────────────────────────────────────────────────


async def test_a_refused_token_is_permanent(cli: GitCli, configs: Configs) -> None:
    host = configs.url.split("/")[2]
    configs.token_file.write_text("not-the-token\n")
    with pytest.raises(PermanentError, match=f"the Git token was refused by {host}"):
        await cli.prepare_revert(configs.work())
    configs.token_file.write_text(DEFAULT_TOKEN)
    configs.server.fail_next(1, 403)
    with pytest.raises(PermanentError, match=rf"the Git token was refused by {host} \(HTTP 403\)"):
        await cli.remote_head(configs.url, "main")


async def test_a_rotated_token_is_read_at_the_next_call(cli: GitCli, configs: Configs) -> None:
    assert await cli.remote_head(configs.url, "main") == configs.repo.head("main")
    configs.server.token = "rotated-token"
    with pytest.raises(PermanentError, match="refused"):
        await cli.remote_head(configs.url, "main")
    configs.token_file.write_text("rotated-token\n")
    assert await cli.remote_head(configs.url, "main") == configs.repo.head("main")


async def test_a_host_down_is_temporary_and_nothing_is_lost(cli: GitCli, configs: Configs) -> None:
    configs.server.fail_next(1, 503)
    with pytest.raises(Unreachable) as caught:
        await cli.prepare_revert(configs.work())
    assert isinstance(caught.value, TemporaryError)
    host = configs.url.split("/")[2]
    assert caught.value.message == (f"the Git host {host} is unreachable: HTTP 503 on git clone")
    prepared = await cli.prepare_revert(configs.work())  # the next try works
    configs.server.fail_next(1, 502)
    with pytest.raises(Unreachable, match="HTTP 502"):
        await cli.push(prepared)
    assert await cli.push(prepared) == prepared.head_sha


async def test_a_host_not_listening_is_unreachable(configs: Configs, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/configs.git"  # bound then closed: nothing listens
    cli = GitCli(configs.token_file, tmp_path / "w", allowed=[url])
    with pytest.raises(Unreachable, match=f"the Git host 127.0.0.1:{port} is unreachable"):
        await cli.remote_head(url, "main")


async def test_the_token_is_never_leaked(
    cli: GitCli, configs: Configs, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    started: list[tuple[tuple[str, ...], dict[str, str]]] = []
    real = asyncio.create_subprocess_exec

    async def recording(*args: Any, **kwargs: Any) -> Any:
        started.append((tuple(str(a) for a in args), dict(kwargs.get("env") or {})))
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording)
    caplog.set_level(logging.DEBUG)
    token = DEFAULT_TOKEN
    errors: list[Exception] = []

    prepared = await cli.prepare_revert(configs.work())
    await cli.push(prepared)
    configs.server.fail_next(1, 503)
    with pytest.raises(Unreachable) as down:
        await cli.remote_head(configs.url, "main")
    errors.append(down.value)
    configs.server.token = "another"
    with pytest.raises(PermanentError) as refused:
        await cli.prepare_revert(configs.work())
    errors.append(refused.value)

    gits = [(argv, env) for argv, env in started if argv[0] == "git"]
    assert len(gits) > 10
    for argv, env in gits:
        assert not any(token in arg for arg in argv)
        assert "GIT_ASKPASS" not in env and env["GIT_TERMINAL_PROMPT"] == "0"
        assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == os.devnull
        assert not any(token in value for value in env.values())  # only base64'd, in a header
    headers = {
        env[key.replace("KEY", "VALUE")]: env[key]
        for _, env in gits
        for key in env
        if re.fullmatch(r"GIT_CONFIG_KEY_\d+", key) and "extraheader" in env[key].lower()
    }
    assert set(headers.values()) == {f"http.{configs.url}.extraHeader"}  # scoped to the repo
    assert all(h.startswith("Authorization: Basic ") for h in headers)
    assert token not in caplog.text
    assert all(token not in str(e) for e in errors)
    assert all(token not in str(r.headers) for r in configs.server.requests)


async def test_a_redirect_is_not_followed(configs: Configs, tmp_path: Path) -> None:
    async def redirect(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = scope["query_string"].decode()
        location = configs.server.url + scope["path"] + (f"?{query}" if query else "")
        headers = [(b"location", location.encode()), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 301, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    mover = ThreadedServer(redirect, name="git-redirect", interface="asgi3")
    mover.start()
    try:
        url = f"{mover.url}/configs.git"
        cli = GitCli(configs.token_file, tmp_path / "w", allowed=[url])
        with pytest.raises(PermanentError, match=r"redirected git ls-remote \(HTTP 301\)"):
            await cli.remote_head(url, "main")
    finally:
        mover.stop()
    assert configs.server.requests == []


async def test_a_host_that_never_answers_times_out_and_git_is_killed(
    configs: Configs, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/configs.git"
        cli = GitCli(configs.token_file, tmp_path / "w", allowed=[url], timeout=1.0)
        caplog.set_level(logging.WARNING, logger="bot.adapters.git")
        with pytest.raises(Unreachable, match="git ls-remote timed out after 1 s"):
            await cli.remote_head(url, "main")
    [record] = [r for r in caplog.records if "timed out" in r.getMessage()]
    pid = int(re.search(r"pid (\d+)", record.getMessage()).group(1))  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped: not even a zombie is left
    assert list((tmp_path / "w").iterdir()) == []
