"""Actions: authorise → idempotency → execute → verify → audit → report, for every tier."""

from bot.actions.responder import ActionRequest, ActionResult, FlagRequest, Responder, RevertRequest

__all__ = ["ActionRequest", "ActionResult", "FlagRequest", "Responder", "RevertRequest"]
