"""When rollbot acts on a card's Rollout, its thread says so once (issue 14).

One abort used to add up to seven lines to a card's thread: the Rollout changing under the
patch (seen by the watch), the incident recovering because of it, the action, the Rollout's
final state. `ActionGate` keeps one card's account of rollbot's own Rollout action, so the
card engine (`bot.cards.engine`) can leave those repeats out:

- from `start` (rollbot is about to patch) to `settle` (its outcome is reported), the
  watch's lines are held (`hold`): the action's line says what it did, verified;
- `settle` gives back the line held meanwhile only when the action does not explain it
  (`bot.core.timeline.explains`): a failed action explains nothing, so what the watch saw
  is told after the failure's line;
- after a verified action, the watch's lines it explains are left out (`passes`), until
  the first state it does not explain; `explains` answers the incident engine the same
  (the incident "recovering" because of rollbot's abort is not a line of its own);
- `end` lets the watch's lines go on when an error ended the action before its report.

Every replica answers Slack (issue 15), so the action may run on a standby while the
leader's watch sees the Rollout change. The gate is therefore kept with the card's record
too (`to_json`, as `{"acting": {"action", "revision"} | null, "explaining": {"action",
"revision", "line"} | null}`), and a process not acting itself takes it over before the
watch's lines are weighed (`adopt`): another replica's abort in flight is `remote`, and
its verified action explains the same states as one of this process's own. A line seen
while another replica acts is not held (the hold is this process's memory): it is told,
unless the action explains it.

Pure bookkeeping, no I/O; the card engine calls it under the card's lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.core import timeline
from bot.core.model import FlagAction, RolloutAction, RolloutState

__all__ = ["ActionGate"]


@dataclass
class ActionGate:
    """One card's account of rollbot's Rollout action: in flight here (the action and the
    state it was taken from), in flight on another replica (`remote`: the action and the
    revision), the watch's last line held meanwhile, and the last verified one (action,
    the revision it was taken on, the line of the state its verification read back)."""

    acting: tuple[RolloutAction, RolloutState] | None = None
    held: tuple[str, RolloutState] | None = None
    explaining: tuple[RolloutAction, int, str] | None = None
    remote: tuple[RolloutAction, int] | None = None

    def to_json(self) -> dict[str, Any] | None:
        """What the card's record keeps (None: nothing to keep)."""
        flying = (self.acting[0], self.acting[1].revision) if self.acting else self.remote
        if flying is None and self.explaining is None:
            return None
        return {
            "acting": None
            if flying is None
            else {"action": flying[0].value, "revision": flying[1]},
            "explaining": None
            if self.explaining is None
            else {
                "action": self.explaining[0].value,
                "revision": self.explaining[1],
                "line": self.explaining[2],
            },
        }

    def adopt(self, data: Mapping[str, Any] | None) -> None:
        """Take over what the card's record says (another replica's action), unless this
        process is acting itself (then its memory is the newer). Unreadable parts (an
        action this build does not know) are read as none."""
        if self.acting is not None:
            return
        data = data or {}
        self.remote = self.explaining = None
        acting, explaining = data.get("acting"), data.get("explaining")
        try:
            if acting:
                self.remote = (RolloutAction(acting["action"]), int(acting["revision"]))
            if explaining:
                self.explaining = (
                    RolloutAction(explaining["action"]),
                    int(explaining["revision"]),
                    str(explaining["line"]),
                )
        except (ValueError, KeyError, TypeError):
            pass

    def start(self, action: RolloutAction, before: RolloutState) -> None:
        self.acting, self.held, self.remote = (action, before), None, None

    def end(self, action: RolloutAction, before: RolloutState) -> None:
        """That action ended (`settle` has cleared it already, unless an error came first)."""
        if self.acting == (action, before):
            self.acting = self.held = None

    def explains(self, state: RolloutState) -> bool:
        """Whether rollbot's action (in flight, or verified and still holding) explains
        `state`: a line about it would repeat the action's line."""
        if self.acting is not None:
            action, before = self.acting
            return timeline.explains(action, before=before, after=None, state=state)
        if self.remote is not None:
            return self.remote[0] is RolloutAction.ABORT and state.aborted
        if self.explaining is not None:
            action, revision, line = self.explaining
            if action is RolloutAction.ABORT:
                return state.aborted
            return state.revision == revision and timeline.state_line(state) == line
        return False

    def hold(self, line: str, state: RolloutState) -> bool:
        """While an action is in flight, the watch's `line` about `state` waits for it."""
        if self.acting is None:
            return False
        self.held = (line, state)
        return True

    def passes(self, state: RolloutState) -> bool:
        """Whether the watch's line about `state` is news: not explained by the last verified
        action (whose explanation ends at the first state it does not explain)."""
        if self.explains(state):
            return False
        self.explaining = None
        return True

    def settle(
        self, action: RolloutAction | FlagAction, *, verified: bool, after: RolloutState
    ) -> str | None:
        """A Rollout action's outcome ends its flight (a flag's leaves it alone): a verified
        one explains what follows; the line held meanwhile, unless explained, is returned to
        be told after the action's own."""
        if not isinstance(action, RolloutAction):
            return None
        acting, held = self.acting, self.held
        self.acting = self.held = self.explaining = self.remote = None
        if verified and (acting is None or acting[0] is action):
            # Verified: it explains what follows (an action recovered after a restart,
            # or taken by another process, has no `acting` here but explains the same).
            revision = acting[1].revision if acting is not None else after.revision
            self.explaining = (action, revision, timeline.state_line(after))
        if held is None:
            return None
        line, seen = held
        return None if self.explains(seen) else line
