"""Git over HTTPS with the `git` CLI: the `GitRepos` port of `bot.core.gitops` (Tier 3's
revert, prepared in a clone and pushed to a branch).

Why the CLI: git's own revert and merge machinery is the reference (conflict detection,
rename handling, reverting a merge commit against its first parent), and this is the one
place that must agree with it exactly. dulwich re-implements Git in Python and has no
equivalent of `git revert` with its 3-way merge; GitPython wraps this same CLI,
synchronously, and its README warns that it leaks resources in long-running processes;
pygit2 needs libgit2 (a native library to build, pin and patch). So each operation is a
`git` process started with `asyncio.create_subprocess_exec` (never a shell, never
blocking the event loop), in a session of its own, with a timeout after which its process
group is killed and the process reaped.

    prepare_revert(work)
        clone --single-branch --no-tags --branch <base>     into <workdir>/revert-*/repo
        merge-base --is-ancestor <release> <base head>      else PermanentError
        checkout -B <branch> <base head>
        revert --no-commit [-m 1 for a merge] <release>
          clean      → commit -F - (work.message)                    RevertKind.REVERT
          conflicts  → revert --abort; the stable image set back
                       (`bot.adapters._images`), commit -F -         RevertKind.IMAGE
        diff <base head> <head>, diff --name-only                    → PreparedRevert
        the temporary directory is removed, whatever happened

    push(prepared)
        ls-remote: the branch at prepared.head_sha  → nothing to do, that sha
                   the branch at another sha        → PermanentError naming both (no force)
        otherwise clone again and rebuild the commit on prepared.base_sha: the same work
        on the same base gives the same commit (fixed identity, dates and message), which
        is checked, then `push <url> <sha>:refs/heads/<branch>` (plain, never forced);
        the remote branch's sha read back

    remote_head(url, branch)   ls-remote --heads

The clone lives only as long as one call. `push` rebuilds instead of keeping it, so a
push after a restart (the PreparedRevert read back from the database) works the same as
one right after `prepare_revert`, and nothing piles up under `workdir` when a revert is
prepared and never pushed. The cost is a second clone per revert. Clones are of the base
branch's whole history (`--single-branch --no-tags`), because the release commit may be
any commit of it and the ancestor check needs the history between the two. Measured on
the loopback sim: a repository of 1,000 commits (750 KB packed) clones whole in 0.21 s
and at `--depth=50` in 0.24 s (a shallow clone saves nothing at that size); a whole
`prepare_revert` there takes 0.3 to 0.4 s.

Same work, same commit. Author and committer are `work.author`, both dates `work.when`
(GIT_AUTHOR_DATE, GIT_COMMITTER_DATE), the message `work.message` whichever way the
revert was made (`PreparedRevert.kind` and `.note` say which: a caller that wants the
image-fallback subject prepares again with `revert_message(kind=IMAGE, note=…)`; the
same conflict gives the same note, hence the same commit).

Authentication. The token (read from `token_file` at each use, so a rotated token is
picked up) goes only in an HTTP header, through the environment:

    GIT_CONFIG_KEY_n=http.<repository url>.extraHeader
    GIT_CONFIG_VALUE_n=Authorization: Basic base64(x-access-token:<token>)

scoped by git to that URL, never in argv, never in a remote URL, never logged, and
replaced by `***` in any git output that goes into an error. Redirects are not followed
(`http.followRedirects=false`: after a redirect git would send the header to the new
host). Only the URLs in `allowed` (the catalog's repositories), over http(s), without
credentials in them, are used at all; any other is refused before any network call.

Hermetic git: a fresh environment (PATH, proxy and CA settings only), HOME a temporary
directory, GIT_CONFIG_NOSYSTEM=1, GIT_CONFIG_GLOBAL=/dev/null, GIT_TERMINAL_PROMPT=0, no
GIT_ASKPASS, LC_ALL=C (git's messages are read to classify failures), only the http and
https transports allowed, hooks off.

Errors:

    URL not in `allowed`, not http(s), with credentials    → PermanentError (no call made)
    host not reached, DNS failure, connection reset, 5xx   → Unreachable("the Git host <h>")
    a git call slower than `timeout`                        → Unreachable(…, "timed out")
    401 / 403 (git asks for a user name)                    → PermanentError("the Git token
                                                               was refused by <host>")
    3xx (a redirect, not followed)                          → PermanentError
    the base branch missing, the release commit unknown or
    not on the base, neither revert nor image applicable    → PermanentError, saying which
    the remote branch exists at another sha                 → PermanentError naming both
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path

from bot.adapters import _images
from bot.adapters._token import TokenSource, read_token
from bot.core.errors import PermanentError, TemporaryError, Unreachable
from bot.core.gitops import PreparedRevert, RevertKind, RevertWork

__all__ = ["GitCli"]

log = logging.getLogger(__name__)

#: Environment variables a git process inherits: how to find programs, proxies, CAs.
_INHERITED = (
    "PATH",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
)
#: Configuration every git call gets (GIT_CONFIG_COUNT…), before the token's header.
_CONFIG = (
    ("protocol.allow", "never"),
    ("protocol.https.allow", "always"),
    ("protocol.http.allow", "always"),
    ("http.followRedirects", "false"),
    ("core.hooksPath", os.devnull),
    ("core.autocrlf", "false"),
    ("commit.gpgSign", "false"),
    ("advice.detachedHead", "false"),
)
_SHA = re.compile(r"[0-9a-f]{7,64}")
_STATUS = re.compile(r"returned error: (\d{3})")
_AUTH = (
    "terminal prompts disabled",
    "could not read username",
    "could not read password",
    "authentication failed",
)
_UNREACHABLE = (
    "unable to access",
    "could not resolve",
    "failed to connect",
    "connection refused",
    "connection reset",
    "connection timed out",
    "operation timed out",
    "empty reply",
    "rpc failed",
    "early eof",
    "the remote end hung up",
)


@dataclass(frozen=True, slots=True)
class _Run:
    code: int
    out: str
    err: str  # secrets already replaced


class GitCli:
    """The `GitRepos` port on the git CLI (see the module docstring).

    `token_file`: a file holding the token, read at each use, or a callable giving it (the
    settings' secret) (None: anonymous access); `workdir`: where the
    temporary clones go (one directory per call, removed after it); `allowed`: the
    repository URLs rollbot may use, exactly as the catalog spells them; `timeout`:
    seconds each git process may run before it is killed (a clone of a large repository
    over a slow link is the longest).
    """

    def __init__(
        self,
        token_file: TokenSource | None,
        workdir: Path,
        *,
        allowed: Collection[str],
        timeout: float = 60.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.token_file = Path(token_file) if isinstance(token_file, str) else token_file
        self.workdir = Path(workdir)
        self.allowed = frozenset(allowed)
        self.timeout = timeout

    # ── the GitRepos port ─────────────────────────────────────────────────────────────

    async def prepare_revert(self, work: RevertWork) -> PreparedRevert:
        self._check_work(work)
        async with self._session(work.url, work) as session:
            await session.clone()
            base_sha = await session.rev("HEAD")
            prepared = await session.build(base_sha)
        log.info(
            "prepared the revert of %s on %s of %s (%s, commit %s)",
            work.release_sha,
            work.branch,
            work.url,
            prepared.kind.value,
            prepared.head_sha,
        )
        return prepared

    async def push(self, prepared: PreparedRevert) -> str:
        work = prepared.work
        self._check_work(work)
        if not _SHA.fullmatch(prepared.head_sha) or not _SHA.fullmatch(prepared.base_sha):
            raise PermanentError("the prepared revert's shas are not commit ids")
        remote = await self.remote_head(work.url, work.branch)
        if remote == prepared.head_sha:
            log.info("%s of %s is already at %s: not pushed again", work.branch, work.url, remote)
            return remote
        if remote is not None:
            raise _diverged(work, remote, prepared.head_sha)
        async with self._session(work.url, work) as session:
            await session.clone()
            base = await session.git(
                "cat-file", "-e", f"{prepared.base_sha}^{{commit}}", check=False
            )
            if base.code:
                raise PermanentError(
                    f"the revert was prepared on {prepared.base_sha}, which is no longer on "
                    f"`{work.base}` of {work.url} (was the branch rewritten?): prepare it again"
                )
            rebuilt = await session.build(prepared.base_sha)
            if rebuilt.head_sha != prepared.head_sha:
                raise PermanentError(
                    f"preparing the revert again on {prepared.base_sha} gave commit "
                    f"{rebuilt.head_sha}, not {prepared.head_sha} (did the work change?): "
                    f"nothing was pushed; prepare it again"
                )
            done = await session.git(
                "push",
                "--quiet",
                "--no-verify",
                "--",
                work.url,
                f"{prepared.head_sha}:refs/heads/{work.branch}",
                network=True,
                check=False,
            )
        if done.code != 0:
            # Someone else created the branch since ls-remote? Then say what it holds.
            after = await self.remote_head(work.url, work.branch)
            if after == prepared.head_sha:
                return after
            if after is not None:
                raise _diverged(work, after, prepared.head_sha)
            raise _failure("push", done, work.url, self._has_token())
        pushed = await self.remote_head(work.url, work.branch)
        if pushed != prepared.head_sha:
            raise PermanentError(
                f"pushed {prepared.head_sha} to `{work.branch}` of {work.url}, but the branch "
                f"reads back as {pushed or 'missing'}"
            )
        log.info("pushed %s to %s of %s", pushed, work.branch, work.url)
        return pushed

    async def remote_head(self, url: str, branch: str) -> str | None:
        self._check_url(url)
        async with self._session(url, None, branch) as session:
            done = await session.git(
                "ls-remote", "--heads", "--", url, f"refs/heads/{branch}", network=True
            )
        for line in done.out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None

    # ── checks made before any network call ──────────────────────────────────────────

    def _check_url(self, url: str) -> None:
        if url not in self.allowed:
            raise PermanentError(
                f"the Git repository {url} is not one rollbot may use (not in the catalog)"
            )
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise PermanentError(f"the Git repository {url} is not an http(s) URL")
        if parts.username or parts.password:
            raise PermanentError(
                "the Git repository URL holds credentials: the token goes in its own file"
            )

    def _check_work(self, work: RevertWork) -> None:
        self._check_url(work.url)
        if not _SHA.fullmatch(work.release_sha):
            raise PermanentError(f"`{work.release_sha}` is not a commit id")
        if work.path.startswith("/") or ".." in Path(work.path).parts:
            raise PermanentError(f"`{work.path}` is not a path inside the repository")

    # ── the token ─────────────────────────────────────────────────────────────────────

    def _has_token(self) -> bool:
        return self.token_file is not None

    def _token(self) -> str | None:
        if self.token_file is None:
            return None
        return read_token(self.token_file, "Git token")

    # ── one call's temporary directory and environment ────────────────────────────────

    @contextlib.asynccontextmanager
    async def _session(
        self, url: str, work: RevertWork | None, *branches: str
    ) -> AsyncIterator[_Session]:
        if work is not None:
            branches = (work.base, work.branch, *branches)
        for branch in branches:
            if not branch or branch.startswith("-"):
                raise PermanentError(f"`{branch}` is not a valid branch name")
        token = self._token()
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="revert-", dir=self.workdir))
        try:
            home = tmp / "home"
            home.mkdir()
            env = _environment(home, url, token, work)
            secrets = [] if token is None else [token, _basic(token)]
            session = _Session(self, url, work, tmp / "repo", env, secrets)
            for branch in branches:  # local and fast: before any network call
                if (
                    await session.git("check-ref-format", f"refs/heads/{branch}", check=False)
                ).code:
                    raise PermanentError(f"`{branch}` is not a valid branch name")
            yield session
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, ignore_errors=True)


def _basic(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def _environment(
    home: Path, url: str, token: str | None, work: RevertWork | None
) -> dict[str, str]:
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(
        HOME=str(home),
        LC_ALL="C",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
    )
    config = list(_CONFIG)
    if token is not None:
        config.append((f"http.{url}.extraHeader", f"Authorization: Basic {_basic(token)}"))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    if work is not None:
        name, email = work.author
        env.update(
            GIT_AUTHOR_NAME=name,
            GIT_AUTHOR_EMAIL=email,
            GIT_COMMITTER_NAME=name,
            GIT_COMMITTER_EMAIL=email,
            GIT_AUTHOR_DATE=work.when,
            GIT_COMMITTER_DATE=work.when,
        )
    return env


class _Session:
    """The git processes of one call: their environment, the clone, the secrets to hide."""

    def __init__(
        self,
        cli: GitCli,
        url: str,
        work: RevertWork | None,
        repo: Path,
        env: dict[str, str],
        secrets: list[str],
    ) -> None:
        self.cli, self.url, self._work, self.repo = cli, url, work, repo
        self.env, self.secrets = env, secrets

    @property
    def work(self) -> RevertWork:
        assert self._work is not None
        return self._work

    async def git(
        self,
        *args: str,
        input: str | None = None,
        network: bool = False,
        check: bool = True,
    ) -> _Run:
        """Run `git <args>` in the clone (or the session's directory before it exists)."""
        cwd = self.repo if self.repo.is_dir() else self.repo.parent
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: a kill reaches its helpers too
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(input.encode() if input is not None else None),
                self.cli.timeout,
            )
        except TimeoutError:
            log.warning(
                "git %s (pid %d) timed out after %g s: killed", args[0], proc.pid, self.cli.timeout
            )
            detail = f"git {args[0]} timed out after {self.cli.timeout:g} s"
            if network:
                raise Unreachable(f"the Git host {_host(self.url)}", detail) from None
            raise TemporaryError(detail) from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        done = _Run(proc.returncode or 0, out.decode(errors="replace"), self._scrub(err))
        if check and done.code != 0:
            raise _failure(args[0], done, self.url, self.cli._has_token(), network=network)
        return done

    def _scrub(self, raw: bytes) -> str:
        text = raw.decode(errors="replace")
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    async def rev(self, rev: str) -> str:
        return (await self.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")).out.strip()

    # ── the steps ────────────────────────────────────────────────────────────────────

    async def clone(self) -> None:
        work = self.work
        done = await self.git(
            "clone",
            "--quiet",
            "--single-branch",
            "--no-tags",
            f"--branch={work.base}",
            "--",
            work.url,
            str(self.repo),
            network=True,
            check=False,
        )
        if done.code == 0:
            return
        if "not found in upstream" in done.err.lower():
            raise PermanentError(f"the branch `{work.base}` does not exist in {work.url}")
        raise _failure("clone", done, work.url, self.cli._has_token(), network=True)

    async def build(self, base_sha: str) -> PreparedRevert:
        """Make the revert commit on `base_sha` (see the module docstring)."""
        work = self.work
        release = work.release_sha
        known = await self.git("cat-file", "-e", f"{release}^{{commit}}", check=False)
        if known.code == 0:
            release = await self.rev(release)
        if (
            known.code
            or (await self.git("merge-base", "--is-ancestor", release, base_sha, check=False)).code
        ):
            # The clone holds the base branch's history only: a commit of another branch
            # is as unknown to it as a commit of no branch at all.
            raise PermanentError(
                f"the release commit {release} is not an ancestor of `{work.base}` "
                f"({base_sha}) in {work.url}: it is not in the history of the branch Argo "
                f"CD syncs (or not in the repository at all), so there is nothing to revert "
                f"there"
            )
        await self.git("checkout", "--quiet", "-B", work.branch, base_sha)
        parents = (await self.git("rev-list", "--parents", "-n", "1", release)).out.split()[1:]
        mainline = ["-m", "1"] if len(parents) > 1 else []
        reverted = await self.git("revert", "--no-commit", *mainline, release, check=False)
        note = ""
        if reverted.code == 0:
            kind = RevertKind.REVERT
            if (await self.git("diff", "--cached", "--quiet", check=False)).code == 0:
                raise PermanentError(
                    f"reverting {release} changes nothing on `{work.base}` of {work.url} "
                    f"(already reverted?)"
                )
        else:
            conflicted = await self._conflicts()
            if not conflicted:
                raise _failure("revert", reverted, work.url, self.cli._has_token())
            await self.git("revert", "--abort")
            kind = RevertKind.IMAGE
            note = (
                f"git revert conflicted in {', '.join(conflicted)}; "
                f"the stable image was set back instead"
            )
            if not work.image:
                raise PermanentError(
                    f"git revert of {release} conflicted in {', '.join(conflicted)}, and "
                    f"there is no stable image to set back instead"
                )
            try:
                edit = await asyncio.to_thread(_images.set_image, self.repo, work.path, work.image)
            except _images.ImageNotSet as err:
                raise PermanentError(
                    f"git revert of {release} conflicted in {', '.join(conflicted)}, and "
                    f"{err.message}"
                ) from None
            await self.git("add", "--", *edit.files)
        await self.git(
            "commit",
            "--quiet",
            "--no-verify",
            "--cleanup=whitespace",
            "-F",
            "-",
            input=work.message,
        )
        head = await self.rev("HEAD")
        diff = (await self.git("diff", base_sha, head)).out
        names = (await self.git("diff", "--name-only", "-z", base_sha, head)).out
        return PreparedRevert(
            work=work,
            kind=kind,
            base_sha=base_sha,
            head_sha=head,
            diff=diff,
            files=tuple(n for n in names.split("\0") if n),
            note=note,
        )

    async def _conflicts(self) -> list[str]:
        out = (await self.git("diff", "--name-only", "--diff-filter=U", "-z")).out
        return [name for name in out.split("\0") if name]


# ── errors ────────────────────────────────────────────────────────────────────────────


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else url


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:])[:400] or "no message"


def _failure(
    command: str, done: _Run, url: str, has_token: bool, *, network: bool = True
) -> Exception:
    """The typed error for a failed git call (its stderr already scrubbed)."""
    host = _host(url)
    lower = done.err.lower()
    status = _STATUS.search(done.err)
    code = int(status.group(1)) if status else None
    if code in (401, 403) or (code is None and any(s in lower for s in _AUTH)):
        if not has_token:
            return PermanentError(
                f"the Git host {host} asked for credentials and rollbot has no Git token configured"
            )
        return PermanentError(
            f"the Git token was refused by {host}" + (f" (HTTP {code})" if code else " (HTTP 401)")
        )
    if code is not None and code >= 500:
        return Unreachable(f"the Git host {host}", f"HTTP {code} on git {command}")
    if code is not None and 300 <= code < 400:
        return PermanentError(
            f"{host} redirected git {command} (HTTP {code}): rollbot follows no Git redirect, "
            f"so the token never goes to another host; put the repository's current URL in "
            f"the catalog"
        )
    if code == 404:
        return PermanentError(
            f"{url} was not found on {host} (HTTP 404; or the token may not read it)"
        )
    if code is None and network and any(s in lower for s in _UNREACHABLE):
        return Unreachable(f"the Git host {host}", f"git {command}: {_last_lines(done.err, 1)}")
    return PermanentError(f"git {command} failed (exit {done.code}): {_last_lines(done.err)}")


def _diverged(work: RevertWork, remote: str, head: str) -> PermanentError:
    return PermanentError(
        f"the branch `{work.branch}` already exists on {work.url} at {remote}, not at the "
        f"prepared revert {head}: rollbot does not force-push; look at the branch, then "
        f"delete it or prepare the revert again"
    )
