"""Is Slack taking rollbot's bot token? Asked once at start (`auth.test`), said in /readyz.

A token Slack refuses (``invalid_auth``: a typo, a token rotated away, an app uninstalled)
makes every card, reply and thread line fail, far from the cause; asked at start, it is one
readiness problem naming what Slack said (never the token) and one error line in the log.
A refusal is final for this process: the token comes from the configuration, so only a
restart with another one changes it.

Slack out of reach at start (a network, proxy or egress rule; Slack down) is not fatal:
it is its own readiness problem and one warning line, and the question is asked again,
backing off from `retry_initial` to `retry_max` seconds, until Slack answers either way.
Once Slack has accepted the token, this check is done: later outages are the adapters'.

`SlackTokenCheck` knows nothing of Slack's SDK: `probe` is `SlackChat.auth_test`, which
raises the bot.core.errors of the adapter's border (`Forbidden`/`PermanentError` for a
refusal, `TemporaryError` for out of reach).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from bot.core.errors import PermanentError, RollbotError, TemporaryError

__all__ = ["SlackTokenCheck"]

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[str]]


class SlackTokenCheck:
    """`auth.test` at start; `problem` is what /readyz says (None once Slack accepted).

    `probe` returns who the token is (for the log) or raises. `setting` names where the
    token comes from, for the operator."""

    def __init__(
        self,
        probe: Probe,
        *,
        setting: str = "ROLLBOT_SLACK__BOT_TOKEN",
        first_wait: float = 3.0,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        self.probe = probe
        self.setting = setting
        self.first_wait = first_wait
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.problem: str | None = "slack: the bot token is not checked yet (auth.test)"
        self.accepted = False
        self.refused = False
        self._warned = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Ask once, waiting at most `first_wait` s (so /readyz knows from the first
        request on); while Slack is out of reach, go on asking in the background."""
        try:
            done = await asyncio.wait_for(self._attempt(), timeout=self.first_wait)
        except TimeoutError:
            self._unreachable(f"no answer within {self.first_wait:g} s")
            done = False
        if not done:
            self._task = asyncio.create_task(self._retry(), name="rollbot-slack-token-check")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _retry(self) -> None:
        delay = self.retry_initial
        while True:
            await asyncio.sleep(delay)
            if await self._attempt():
                return
            delay = min(delay * 2, self.retry_max)

    async def _attempt(self) -> bool:
        """One auth.test; True when Slack answered (accepted or refused)."""
        try:
            who = await self.probe()
        except PermanentError as err:
            code = getattr(err, "detail", None) or getattr(err, "code", None) or err.message
            self.refused = True
            self.problem = (
                f"slack: the bot token was refused (auth.test: {code}); "
                f"set a valid {self.setting} and restart"
            )
            log.error(
                "Slack refused the bot token at start (auth.test: %s): nothing can be posted; "
                "/readyz says not ready until rollbot restarts with a valid %s",
                code,
                self.setting,
            )
            return True
        except (TemporaryError, TimeoutError, OSError) as err:
            detail = err.message if isinstance(err, RollbotError) else f"{type(err).__name__}"
            self._unreachable(detail)
            return False
        self.accepted = True
        self.problem = None
        if self._warned:
            log.info("Slack answered at last: the bot token is accepted (%s)", who)
        else:
            log.info("Slack accepted the bot token (%s)", who)
        return True

    def _unreachable(self, detail: str) -> None:
        self.problem = "slack: unreachable at start; the bot token is not checked yet (retrying)"
        if not self._warned:
            self._warned = True
            log.warning(
                "Slack is unreachable at start (auth.test: %s); not fatal: asking again, "
                "backing off up to %g s",
                detail,
                self.retry_max,
            )
