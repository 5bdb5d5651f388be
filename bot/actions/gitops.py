"""Tier 3 executed: a GitOps revert, from the card to the Rollout running the previous
release again, exactly once across clicks, replicas and restarts.

    start (card button, Tier 1's guard)   ─► prepared: the revert made in a clone, its diff
                                              shown in the modal; nothing pushed
    confirm (the requester, in the modal) ─► confirmed ─► [step] push the branch, open the
                                              pull or merge request ─► opened
    approve (a second person, or the requester breaking glass with a reason)
                                          ─► approved ─► [step] merge (merge: rollbot) or
                                              queue it for branch protection (merge: humans)
                                          ─► merged ─► [step] Argo CD synced the merge, the
                                              Rollout has a new revision on the stable image
                                          ─► verified

Each arrow is `advance_revert`, a compare-and-set on the case's state and version: a
second click, a second replica or a retried step finds the case already moved and does
not do it twice. Each step `[step]` is an outbox item (kind `gitops`, one per case and
version) drained by the leader, whose loop wakes when an item is queued, when the soonest
waiting one falls due, or every `poll_seconds`; a step that meets an unreachable host is
retried with backoff (1, 2, 4 … s) and said once in the card's thread; one refused for
good fails the case, parks the item and is said. A step is safe to run again: the revert
commit is the same commit when prepared again (its date is the request's; its message
says what it does, `git revert` of the release or, when that conflicted, the stable image
set back and where it conflicted, as first prepared), a branch already pushed at that commit
is not pushed again, the request for the branch is looked for before one is opened, and a
merged request is not merged again. At the leader's start every live case gets its step
queued again (`resume`): a crash between a move and its queueing loses nothing.

Names are derived (`bot.core.gitops`): the branch from the catalog and the card, the
commit and merge messages naming the incident, the requester and the approver. The
token is the adapters' (`bot.adapters.git`, `github`, `gitlab`) and never reaches here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot.actions.pipeline import Pipeline
from bot.actions.values import ActionResult, GuardedRequest
from bot.core import mrkdwn, policy
from bot.core import tiers as core_tiers
from bot.core.errors import (
    InvalidRequest,
    NotAuthorised,
    PermanentError,
    RollbotError,
    TemporaryError,
)
from bot.core.gitops import (
    Applications,
    ChangeRequest,
    CodeHost,
    GitRepos,
    PreparedRevert,
    RevertCase,
    RevertKind,
    RevertState,
    RevertWork,
    gitops_key,
    merge_message,
    revert_branch,
    revert_message,
)
from bot.core.model import Actor, RolloutState
from bot.core.ports import Rollouts
from bot.runtime.metrics import Metrics

if TYPE_CHECKING:
    from bot.settings import GitOpsSettings, ServiceSettings

log = logging.getLogger(__name__)

OUTBOX_KIND = "gitops"
#: The audit log's actions (and the PagerDuty notes').
STARTED, CONFIRMED, OPENED, APPROVED, MERGED, VERIFIED, FAILED = (
    "tier3-prepared",
    "tier3-confirmed",
    "tier3-opened",
    "tier3-approved",
    "tier3-merged",
    "tier3-verified",
    "tier3-failed",
)
#: States a step drives (the others wait for a person, or are over).
DRIVEN = (
    RevertState.CONFIRMED,
    RevertState.APPROVED,
    RevertState.MERGE_QUEUED,
    RevertState.MERGED,
)
POLL_SECONDS = 2.0  # how often a case waiting on the host or Argo CD is looked at again
MAX_BACKOFF = 300.0


class RevertStore(Protocol):
    """The store's reverts and outbox, as this module uses them (`bot.store.SqlStore`)."""

    async def create_revert(self, case: RevertCase) -> tuple[RevertCase, bool]: ...
    async def get_revert(self, key: str) -> RevertCase | None: ...
    async def advance_revert(
        self, case: RevertCase, state: RevertState, **changes: Any
    ) -> RevertCase | None: ...
    async def reverts_in(self, states: Iterable[RevertState]) -> list[RevertCase]: ...
    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        dedup_key: str | None,
        *,
        not_before: datetime | None = None,
    ) -> bool: ...
    async def pending_outbox(self, limit: int = 500) -> list[Any]: ...
    async def outbox_done(self, id: int) -> None: ...
    async def outbox_retry(self, id: int, error: str, next_attempt_at: datetime) -> None: ...
    async def outbox_park(self, id: int, error: str) -> None: ...


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step did: the case as it is now, and when to look again (None: done)."""

    case: RevertCase
    again_in: float | None = None


class GitOpsReverts:
    """Tier 3 executed for the services whose `gitops.provider` is set."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        store: RevertStore,
        rollouts: Rollouts,
        repos: Mapping[str, GitRepos],
        hosts: Mapping[str, CodeHost],
        settings: GitOpsSettings,
        applications: Applications | None = None,
        links: Callable[[RevertCase], Awaitable[Mapping[str, str]]] | None = None,
        poll_seconds: float = POLL_SECONDS,
        metrics: Metrics | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._store = store
        self._rollouts = rollouts
        self._repos = repos
        self._hosts = hosts
        self._settings = settings
        self._apps = applications
        self._links = links
        self.poll_seconds = poll_seconds
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._said_down: set[str] = set()  # case keys told "unreachable" since their last step
        self._soonest: datetime | None = None  # the next attempt the last pass left waiting

    # ── who may, what is asked ─────────────────────────────────────────────────────────

    def executable(self, service: str) -> bool:
        cfg = self._pipeline.service(service)
        return cfg.gitops.executable and cfg.gitops.provider in self._hosts

    async def case(self, key: str) -> RevertCase | None:
        return await self._store.get_revert(key)

    async def case_for(self, service: str, revision: int) -> RevertCase | None:
        cfg = self._pipeline.service(service)
        return await self._store.get_revert(gitops_key(_card(cfg, revision)))

    async def start(
        self,
        service: str,
        revision: int,
        actor: Actor,
        *,
        channel: str | None = None,
        message_ts: str | None = None,
    ) -> RevertCase:
        """Prepare the revert of the release the card of `revision` shows, for `actor` (the
        on-call or the owners group: NotAuthorised otherwise). Once per card: a case
        already confirmed is returned as it is (the caller says who started it); one still
        only prepared is taken over by `actor` and prepared again (the modal that showed
        it was closed). PermanentError when the release commit or the repository cannot be
        worked out, or the revert cannot be made."""
        cfg = self._pipeline.service(service)
        if not self.executable(service):
            raise InvalidRequest(f"Tier 3 of {service} is not run by rollbot (no gitops.provider).")
        card = _card(cfg, revision)
        await self._pipeline.authorise(service, policy.REVERT, actor, target=f"{card} (Tier 3)")
        existing = await self._store.get_revert(gitops_key(card))
        if existing is not None and existing.state not in (
            RevertState.PREPARED,
            RevertState.CANCELLED,
        ):
            return existing
        state = await self._state(cfg, revision)
        sha = core_tiers.release_sha(state, cfg.gitops.sha_annotation)
        app = cfg.gitops.application
        if not sha and app is not None and self._apps is not None:
            # No annotation: the commit Argo CD synced the release from (the revision the
            # Application is synced at while the card's revision is the live one).
            synced = await self._apps.get_application(app.namespace, app.name)
            sha = synced.revision if synced.sync == "Synced" else None
        if not sha:
            raise PermanentError(
                f"The release's Git commit is unknown: the Rollout's pod template has no "
                f"`{cfg.gitops.sha_annotation}` annotation"
                + (" and Argo CD's Application is not synced" if app is not None else "")
                + ". Revert by hand (the runbook's steps)."
            )
        now = self._pipeline.now()
        case = RevertCase(
            key=gitops_key(card),
            service=service,
            card_key=card,
            revision=revision,
            state=RevertState.PREPARED,
            requester=actor.id,
            requested_at=now.isoformat(),
            provider=str(cfg.gitops.provider),
            project=cfg.gitops.project,
            url=str(cfg.gitops.repo),
            base=cfg.gitops.branch,
            path=str(cfg.gitops.path),
            branch=revert_branch(service, revision, card_key_digest(card)),
            release_sha=sha,
            image=state.stable_image,
            merge_mode=cfg.gitops.merge,
            channel=channel,
            message_ts=message_ts,
            requester_name=actor.name,
        )
        if existing is None:
            case, created = await self._store.create_revert(case)
            if not created and case.state is not RevertState.PREPARED:
                return case
        # The same person preparing again (a retried click, a second modal) keeps the
        # request's date, hence the same commit: any of their modals pushes what it showed.
        prior = existing or case
        requested_at = prior.requested_at if prior.requester == actor.id else now.isoformat()
        case = dataclasses.replace(
            case, requester=actor.id, requester_name=actor.name, requested_at=requested_at
        )
        prepared = await self._prepare(case)
        read = await self._store.get_revert(case.key)
        if read is None or read.state not in (RevertState.PREPARED, RevertState.CANCELLED):
            return read or case
        moved = await self._store.advance_revert(
            read,
            RevertState.PREPARED,
            requester=actor.id,
            requester_name=actor.name,
            requested_at=case.requested_at,
            channel=channel or read.channel,
            message_ts=message_ts or read.message_ts,
            **_prepared_fields(prepared),
        )
        if moved is None:
            return await self._store.get_revert(case.key) or case
        await self._pipeline.audit(
            GuardedRequest(service, STARTED, actor),
            f"{card} (Tier 3)",
            "succeeded",
            before=state,
            detail={
                "branch": moved.branch,
                "release_sha": moved.release_sha,
                "kind": moved.kind,
                "files": list(moved.files),
                "note": moved.note,
            },
        )
        return moved

    async def confirm(self, key: str, actor: Actor, *, shown: str | None = None) -> RevertCase:
        """The requester confirmed the prepared revert in its modal: push and open. `shown`:
        the revert commit the modal showed; a modal left open while the revert was
        prepared again (another responder took it over, or its base moved) is refused as
        stale, so only what the requester saw is pushed."""
        case = await self._get(key)
        if case.state is not RevertState.PREPARED:
            return case
        if case.requester != actor.id:
            raise NotAuthorised(
                f"<@{case.requester}> prepared this revert; only they can push it. Start "
                "the revert again from the card to prepare your own."
            )
        if shown is not None and shown != case.head_sha:
            raise InvalidRequest(
                "This modal is stale: the revert was prepared again since it opened. Start "
                "the revert again from the card to see what would be pushed."
            )
        moved = await self._store.advance_revert(case, RevertState.CONFIRMED)
        if moved is None:
            return await self._get(key)
        await self._counted(
            moved,
            CONFIRMED,
            "succeeded",
            f"{actor.name} started the Tier 3 revert of release {moved.release_sha[:12]} "
            f"({_kind_words(moved)}): pushing {moved.branch}.",
            actor=actor,
        )
        await self._queue(moved)
        await self._say(
            moved,
            f":rewind: Tier 3: <@{actor.id}> is reverting release "
            f"`{moved.release_sha[:12]}` in Git ({_kind_words(moved)}); pushing "
            f"`{mrkdwn.escape(moved.branch)}` and opening the "
            f"{_request_word(moved)}.",
        )
        await self._pipeline.cards.revert_progress(moved.service, moved.card_key)
        return moved

    async def approve(
        self, key: str, actor: Actor, *, break_glass_reason: str | None = None
    ) -> RevertCase:
        """A second person approves the open request (the on-call or the owners group); the
        requester only with a reason (break-glass: loud, audited)."""
        case = await self._get(key)
        cfg = self._pipeline.service(case.service)
        if case.state is not RevertState.OPENED:
            return case
        reason = (break_glass_reason or "").strip()
        await self._pipeline.authorise(
            case.service, policy.REVERT, actor, target=f"{case.card_key} (Tier 3)"
        )
        if actor.id == case.requester and not reason:
            await self._pipeline.audit(
                GuardedRequest(case.service, APPROVED, actor),
                f"{case.card_key} (Tier 3)",
                "refused",
                detail={"reason": "the requester cannot approve their own revert"},
            )
            raise NotAuthorised(
                "You started this revert: a second person (on call or an owner) must "
                "approve it. Alone, break glass with a reason."
            )
        moved = await self._store.advance_revert(
            case, RevertState.APPROVED, approver=actor.id, break_glass=reason or None
        )
        if moved is None:
            return await self._get(key)
        glass = f" (break glass: {reason})" if reason else ""
        await self._counted(
            moved,
            APPROVED,
            "succeeded",
            f"{actor.name} approved {_request_ref(moved)}{glass}; merging.",
            actor=actor,
            detail={"break_glass": reason} if reason else None,
        )
        await self._queue(moved)
        who = f"<@{actor.id}>"
        if reason:
            line = (
                f":rotating_light: *Break glass:* {who} approved their own Tier 3 revert of "
                f"`{mrkdwn.escape(case.service)}`. Reason: {mrkdwn.escape(reason)}"
            )
            group = cfg.owners.slack_usergroup if cfg.owners else None
            loud = f"<!subteam^{group}> {line}" if group else line
            with contextlib.suppress(RollbotError):
                await self._pipeline.chat.post(cfg.channel, text=loud)
        else:
            line = f":white_check_mark: Tier 3: {who} approved {_request_ref(moved)}."
        await self._say(moved, line)
        await self._pipeline.cards.revert_progress(moved.service, moved.card_key)
        return moved

    # ── the steps ────────────────────────────────────────────────────────────────────

    async def step(self, case: RevertCase) -> StepResult:
        """Take `case` one step on (see the module docstring); TemporaryError: try again."""
        if case.state is RevertState.CONFIRMED:
            return await self._push_and_open(case)
        if case.state is RevertState.APPROVED:
            return await self._merge(case)
        if case.state is RevertState.MERGE_QUEUED:
            return await self._await_merge(case)
        if case.state is RevertState.MERGED:
            return await self._verify(case)
        return StepResult(case)

    async def _push_and_open(self, case: RevertCase) -> StepResult:
        """Push the branch (unless it is there already, at the commit the requester saw),
        then open its request (unless one is open already): each half safe to run again,
        so a step cut anywhere (a host down, a restart) ends with one branch and one
        request."""
        git, host = self._git(case), self._host(case)
        remote = await git.remote_head(case.url, case.branch)
        if remote is None:
            prepared = await self._prepare(case)
            if case.head_sha and prepared.head_sha != case.head_sha:
                raise PermanentError(
                    f"the revert prepared again is {prepared.head_sha[:12]}, not the "
                    f"{case.head_sha[:12]} shown in the modal (the base branch moved): "
                    "start Tier 3 again from the card"
                )
            await git.push(prepared)
        elif case.head_sha and remote != case.head_sha:
            raise PermanentError(
                f"the branch {case.branch} is at {remote[:12]}, not the revert "
                f"{case.head_sha[:12]} shown in the modal: someone else pushed to it"
            )
        found = await host.find_change(case.project, case.branch)
        if found is None or found.state == "closed":
            found = await host.open_change(
                case.project,
                head=case.branch,
                base=case.base,
                title=_title(case),
                body=await self._body(case),
                labels=self._labels(case),
            )
        moved = await self._store.advance_revert(
            case, RevertState.OPENED, change_number=found.number, change_url=found.url
        )
        if moved is None:
            return StepResult(await self._get(case.key))
        await self._counted(
            moved,
            OPENED,
            "succeeded",
            f"Opened {_request_ref(moved)} to revert "
            f"release `{moved.release_sha[:12]}`; waiting for a second person.",
        )
        await self._say(
            moved,
            f":arrow_heading_up: Tier 3: {_request_ref(moved)} is open "
            f"({_kind_words(moved)}). A second person approves it on the card.",
        )
        await self._pipeline.cards.revert_progress(moved.service, moved.card_key)
        return StepResult(moved)

    async def _merge(self, case: RevertCase) -> StepResult:
        host = self._host(case)
        assert case.change_number is not None
        current = await host.get_change(case.project, case.change_number)
        if current.state == "merged":
            return await self._merged(case, current)
        if current.state == "closed":
            raise PermanentError(f"{_request_ref(case)} was closed without merging")
        title, message = merge_message(
            service=case.service,
            number=case.change_number,
            incident=case.card_key,
            requester=case.requester,
            approver=f"{case.approver}" + (" (break glass)" if case.break_glass else ""),
        )
        if case.merge_mode == "humans":
            queued = await host.merge_when_ready(
                case.project,
                case.change_number,
                sha=current.head_sha,
                title=title,
                message=message,
            )
            if queued.state == "merged":
                return await self._merged(case, queued)
            moved = await self._store.advance_revert(case, RevertState.MERGE_QUEUED)
            if moved is None:
                return StepResult(await self._get(case.key))
            await self._say(
                moved,
                f":hourglass_flowing_sand: Tier 3: {_request_ref(moved)} will merge once "
                "branch protection allows (its required reviews and checks).",
            )
            await self._pipeline.cards.revert_progress(moved.service, moved.card_key)
            return StepResult(moved, again_in=self.poll_seconds)
        merged = await host.merge(
            case.project, case.change_number, sha=current.head_sha, title=title, message=message
        )
        return await self._merged(case, merged)

    async def _await_merge(self, case: RevertCase) -> StepResult:
        assert case.change_number is not None
        current = await self._host(case).get_change(case.project, case.change_number)
        if current.state == "merged":
            return await self._merged(case, current)
        if current.state == "closed":
            raise PermanentError(f"{_request_ref(case)} was closed without merging")
        return StepResult(case, again_in=self.poll_seconds)

    async def _merged(self, case: RevertCase, change: ChangeRequest) -> StepResult:
        moved = await self._store.advance_revert(
            case, RevertState.MERGED, merge_sha=change.merge_sha
        )
        if moved is None:
            return StepResult(await self._get(case.key))
        await self._counted(
            moved,
            MERGED,
            "succeeded",
            f"Merged {_request_ref(moved)} ({(change.merge_sha or '')[:12]}); waiting for "
            "Argo CD's sync and the Rollout's new revision.",
        )
        await self._say(
            moved,
            f":twisted_rightwards_arrows: Tier 3: {_request_ref(moved)} merged "
            f"(`{(change.merge_sha or '')[:12]}`). Waiting for Argo CD to sync it and the "
            "Rollout to run the previous release.",
        )
        await self._pipeline.cards.revert_progress(moved.service, moved.card_key)
        return StepResult(moved, again_in=self.poll_seconds)

    async def _verify(self, case: RevertCase) -> StepResult:
        cfg = self._pipeline.service(case.service)
        checks: list[tuple[str, bool]] = []
        app = cfg.gitops.application
        if app is not None and self._apps is not None:
            synced = await self._apps.get_application(app.namespace, app.name)
            checks.append(
                (
                    f"Argo CD {app.name} synced {case.merge_sha and case.merge_sha[:12]}",
                    synced.revision == case.merge_sha and synced.sync == "Synced",
                )
            )
        state = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
        newer = case.revision is None or state.revision > case.revision
        checks.append((f"a new revision (now {state.revision})", newer))
        if case.image:
            checks.append((f"the pod template runs {case.image}", state.canary_image == case.image))
        if all(ok for _, ok in checks):
            moved = await self._store.advance_revert(case, RevertState.VERIFIED)
            if moved is None:
                return StepResult(await self._get(case.key))
            words = "; ".join(what for what, _ in checks)
            await self._counted(moved, VERIFIED, "succeeded", f"Tier 3 done, verified: {words}.")
            await self._say(
                moved, f":white_check_mark: *Tier 3 done, verified*: {mrkdwn.escape(words)}."
            )
            await self._pipeline.cards.revert_progress(moved.service, moved.card_key)
            return StepResult(moved)
        merged_at = datetime.fromisoformat(case.updated_at) if case.updated_at else None
        waited = (self._pipeline.now() - merged_at).total_seconds() if merged_at else 0.0
        if waited > self._settings.verify_timeout_seconds:
            missing = "; ".join(what for what, ok in checks if not ok)
            raise PermanentError(f"merged, but not verified after {waited / 60:.0f} min: {missing}")
        return StepResult(case, again_in=self.poll_seconds)

    # ── the loop ─────────────────────────────────────────────────────────────────────

    async def resume(self) -> int:
        """Queue the step of every case a step drives (the leader's start); how many."""
        cases = await self._store.reverts_in(DRIVEN)
        for case in cases:
            await self._queue(case)
        return len(cases)

    async def run(self) -> None:
        """Drain the `gitops` outbox items until cancelled (the leader's loop)."""
        await self.resume()
        while True:
            try:
                await self.drain()
            except Exception:  # boundary: the loop outlives one bad pass
                log.exception("Tier 3 step pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._pause())

    def _pause(self) -> float:
        """Seconds until the next pass: the soonest item the last pass left waiting (a
        backoff of 1 s is 1 s, not the next poll), at most `poll_seconds`."""
        if self._soonest is None:
            return self.poll_seconds
        until = (self._soonest - self._pipeline.now()).total_seconds()
        return min(self.poll_seconds, max(0.05, until))

    async def drain(self) -> int:
        """One pass over the due `gitops` items; how many steps moved a case."""
        moved = 0
        now = self._pipeline.now()
        soonest: list[datetime] = []
        try:
            for item in await self._store.pending_outbox():
                if item.kind != OUTBOX_KIND:
                    continue
                if item.next_attempt_at > now:
                    soonest.append(item.next_attempt_at)
                    continue
                moved += await self._drain_one(item, soonest)
        finally:
            self._soonest = min(soonest, default=None)
        return moved

    async def _drain_one(self, item: Any, soonest: list[datetime]) -> int:
        """One due item's step; 1 when it moved its case. When the item waits again, its
        next attempt goes into `soonest`."""
        key = str(item.payload.get("key", ""))
        case = await self._store.get_revert(key)
        if case is None or case.version != item.payload.get("version") or case.state not in DRIVEN:
            await self._store.outbox_done(item.id)  # moved on since: its own item drives it
            return 0
        try:
            result = await self.step(case)
        except TemporaryError as err:
            at = self._backoff(item, err)
            await self._store.outbox_retry(item.id, err.message, at)
            soonest.append(at)
            if key not in self._said_down:
                self._said_down.add(key)
                await self._say(
                    case,
                    f":warning: Tier 3: {mrkdwn.escape(err.message)}. rollbot keeps trying; "
                    "nothing is lost.",
                )
            return 0
        except RollbotError as err:
            await self._store.outbox_park(item.id, f"refused: {err.message}")
            if self._metrics is not None:
                self._metrics.outbox_parked.labels(OUTBOX_KIND).inc()
            await self._fail(case, err.message)
            return 0
        self._said_down.discard(key)
        if result.case.version != case.version:
            await self._store.outbox_done(item.id)
            if result.case.state in DRIVEN:
                await self._queue(result.case, delay=result.again_in)
            return 1
        if result.again_in is not None:
            at = self._pipeline.now() + timedelta(seconds=result.again_in)
            await self._store.outbox_retry(item.id, "waiting", at)
            soonest.append(at)
        else:
            await self._store.outbox_done(item.id)
        return 0

    def _backoff(self, item: Any, err: TemporaryError) -> datetime:
        delay = err.delay or min(MAX_BACKOFF, 1.0 * 2 ** min(int(item.attempts), 10))
        return self._pipeline.now() + timedelta(seconds=delay)

    async def _queue(self, case: RevertCase, *, delay: float | None = None) -> None:
        at = self._pipeline.now() + timedelta(seconds=delay) if delay else None
        await self._store.enqueue(
            OUTBOX_KIND,
            {"key": case.key, "version": case.version, "state": case.state.value},
            f"gitops:{case.key}@{case.version}",
            not_before=at,
        )
        self._wake.set()

    async def _fail(self, case: RevertCase, why: str) -> None:
        moved = await self._store.advance_revert(case, RevertState.FAILED, error=why)
        if moved is None:
            return
        await self._counted(moved, FAILED, "failed", f"Tier 3 revert stopped: {why}")
        await self._say(
            moved,
            f":x: Tier 3 revert stopped: {mrkdwn.escape(why.rstrip('. '))}. "
            + (f"{_request_ref(moved)} is left as it is; " if moved.change_url else "")
            + "finish by hand (the runbook's steps).",
        )
        await self._pipeline.cards.revert_progress(moved.service, moved.card_key)

    # ── helpers ──────────────────────────────────────────────────────────────────────

    def _git(self, case: RevertCase) -> GitRepos:
        try:
            return self._repos[case.provider]
        except KeyError:
            raise PermanentError(f"no {case.provider} token configured") from None

    def _host(self, case: RevertCase) -> CodeHost:
        try:
            return self._hosts[case.provider]
        except KeyError:
            raise PermanentError(f"no {case.provider} token configured") from None

    async def _get(self, key: str) -> RevertCase:
        case = await self._store.get_revert(key)
        if case is None:
            raise InvalidRequest("This Tier 3 revert is not known (any more).")
        return case

    async def _state(self, cfg: ServiceSettings, revision: int) -> RolloutState:
        card = _card(cfg, revision)
        state = self._pipeline.cards.known_state(card)
        if state is None:
            state = await self._rollouts.get_state(cfg.namespace, cfg.rollout)
            if state.revision != revision:
                raise InvalidRequest(
                    f"The Rollout is at revision {state.revision} now, not {revision}: start "
                    "the revert from the current card."
                )
        return state

    async def _prepare(self, case: RevertCase) -> PreparedRevert:
        """The revert of `case` made in a clone: the same commit each time for the same
        case (its message and date are the case's), so a step after a restart pushes what
        the requester saw. The message says what the commit does: `git revert` of the
        release, or (`RevertKind.IMAGE`) the stable image set back because the revert
        conflicted, naming the conflict. The kind is known only once tried, so the first
        preparation tries the case's kind (REVERT when not prepared yet) and, when the
        clone made the other, prepares again with that message: the same conflict gives
        the same note, hence the same commit, and a case prepared before (its kind and note
        stored) takes one clone."""
        kind = RevertKind(case.kind) if case.kind else RevertKind.REVERT
        note = case.note if case.kind else ""
        prepared = await self._git(case).prepare_revert(self._work(case, kind, note))
        if prepared.kind is not kind or prepared.note != note:
            prepared = await self._git(case).prepare_revert(
                self._work(case, prepared.kind, prepared.note)
            )
        return prepared

    def _work(self, case: RevertCase, kind: RevertKind, note: str) -> RevertWork:
        return RevertWork(
            url=case.url,
            base=case.base,
            path=case.path,
            release_sha=case.release_sha,
            branch=case.branch,
            message=revert_message(
                service=case.service,
                release_sha=case.release_sha,
                incident=case.card_key,
                requester=f"{case.requester_name or case.requester} (Slack {case.requester})",
                kind=kind,
                note=note,
            ),
            author=(self._settings.author_name, self._settings.author_email),
            when=case.requested_at,
            image=case.image,
        )

    def _labels(self, case: RevertCase) -> list[str]:
        cfg = self._pipeline.service(case.service)
        return list(cfg.gitops.labels)

    async def _body(self, case: RevertCase) -> str:
        """The request's description: the incident, the commit reverted, who asked, and the
        links (the Slack card, the PagerDuty incident, the runbook) where known."""
        who = (
            f"{case.requester_name} (Slack `{case.requester}`)"
            if case.requester_name
            else (f"Slack user `{case.requester}`")
        )
        lines = [
            f"Tier 3 revert of **{case.service}**, prepared by rollbot for the incident "
            f"`{case.card_key}`.",
            "",
            f"- Reverts release commit `{case.release_sha}`"
            + (f" ({case.note})" if case.note else ""),
            f"- Requested by {who}; a second person approves it from the Slack card.",
        ]
        links = await self._links(case) if self._links is not None else {}
        for name, url in links.items():
            lines.append(f"- {name}: {url}")
        return "\n".join(lines)

    async def _counted(
        self,
        case: RevertCase,
        action: str,
        status: str,
        message: str,
        *,
        actor: Actor | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Audit a step and tell the listeners (the PagerDuty note), counted in /metrics."""
        if actor is None:
            who = case.approver or case.requester
            actor = Actor(id=who, name=who, source="slack")
        req = GuardedRequest(case.service, action, actor)

        async def done() -> ActionResult:
            await self._pipeline.audit(
                req,
                f"{case.card_key} (Tier 3)",
                status,
                detail={
                    "change": case.change_url,
                    "merge_sha": case.merge_sha,
                    "branch": case.branch,
                    "requester": case.requester,
                    "error": case.error,
                    **(detail or {}),
                },
            )
            return ActionResult(status, message)

        await self._pipeline.counted(req, action, done(), card=case.card_key)

    async def _say(self, case: RevertCase, text: str) -> None:
        """A line in the card's thread (else the service's channel); best effort."""
        cfg = self._pipeline.service(case.service)
        card = await self._pipeline.store.get_card(case.card_key)
        channel = case.channel or (card.channel if card else None) or cfg.channel
        thread = case.message_ts or (card.ts if card else None)
        try:
            await self._pipeline.chat.post(channel, text=text, thread_ts=thread)
        except RollbotError as err:
            log.warning("could not tell the Tier 3 step in the thread: %s", err.message)


def _card(cfg: ServiceSettings, revision: int) -> str:
    return f"{cfg.namespace}/{cfg.rollout}@{revision}"


def card_key_digest(card: str) -> str:
    """A short, stable name for the card in branch names (its revision is named apart)."""
    import hashlib

    return hashlib.sha256(card.encode()).hexdigest()[:8]


def _prepared_fields(prepared: PreparedRevert) -> dict[str, Any]:
    return {
        "kind": prepared.kind.value,
        "note": prepared.note,
        "base_sha": prepared.base_sha,
        "head_sha": prepared.head_sha,
        "diff": prepared.diff[:60_000],
        "files": tuple(prepared.files),
    }


def _request_word(case: RevertCase) -> str:
    return "merge request" if case.provider == "gitlab" else "pull request"


def _request_ref(case: RevertCase) -> str:
    """`<url|pull request #12>` (mrkdwn; the host's URL escaped), or the name alone."""
    sign = "!" if case.provider == "gitlab" else "#"
    name = f"{_request_word(case)} {sign}{case.change_number}"
    return mrkdwn.link(case.change_url, name) if case.change_url else name


def _kind_words(case: RevertCase) -> str:
    if case.kind == RevertKind.IMAGE.value:
        return "the revert conflicted: the stable image is set back instead"
    return f"`git revert {case.release_sha[:12]}`"


def _title(case: RevertCase) -> str:
    return f"Tier 3 revert of {case.service}: release {case.release_sha[:12]}"
