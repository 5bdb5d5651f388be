"""Actions: authorise → idempotency → execute → verify → audit → report, for every tier.

values      the requests (one per tier) and the result: plain values
pipeline    what every tier shares: catalog, authorisation, idempotency claim, audit,
            metrics and listeners
tier1       Rollout commands (abort, retry, promote…) and their read-back verification
tier2       the circuit-breaker flag: flip, read back, break-glass, SDK propagation
tier3       a revert started in Git, recorded
responder   `Responder`, the one front door that builds the tiers on one pipeline
"""

from bot.actions.responder import Responder
from bot.actions.values import ActionRequest, ActionResult, FlagRequest, RevertRequest

__all__ = ["ActionRequest", "ActionResult", "FlagRequest", "Responder", "RevertRequest"]
