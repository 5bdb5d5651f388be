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

Pure bookkeeping, no I/O; the card engine calls it under the card's lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core import timeline
from bot.core.model import FlagAction, RolloutAction, RolloutState

__all__ = ["ActionGate"]


@dataclass
class ActionGate:
    """One card's account of rollbot's Rollout action: in flight (the action and the state
    it was taken from), the watch's last line held meanwhile, and the last verified one
    (action, before, after: the state its verification read back)."""

    acting: tuple[RolloutAction, RolloutState] | None = None
    held: tuple[str, RolloutState] | None = None
    explaining: tuple[RolloutAction, RolloutState, RolloutState] | None = None

    def start(self, action: RolloutAction, before: RolloutState) -> None:
        self.acting, self.held = (action, before), None

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
        if self.explaining is not None:
            action, before, after = self.explaining
            return timeline.explains(action, before=before, after=after, state=state)
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
        self.acting = self.held = self.explaining = None
        if acting is not None and verified and acting[0] is action:
            self.explaining = (action, acting[1], after)
        if held is None:
            return None
        line, seen = held
        return None if self.explains(seen) else line
