"""What is wrong with a configuration: `ConfigProblem` (one thing, at a key path) and
`ConfigError` (the settings cannot be used, and every reason why).

A leaf of the package: the sources report problems as they read, the validation as it
checks, and both speak in these two types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.core.errors import PermanentError


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration, at a dotted key path.

    ``key_path`` is like ``services.payment-router.channel``; for problems with the file
    itself it is the file's path, for an environment variable its name. ``advisory``:
    ``rollbot serve`` starts anyway, with a feature off or degraded, and logs the problem as
    a warning; any other problem stops it before it opens or writes anything (not part of
    equality: the same problem is the same whichever way it is marked).
    """

    key_path: str
    message: str
    advisory: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return f"{self.key_path}: {self.message}"


class ConfigError(PermanentError):
    """The settings cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = list(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} configuration problem(s) "
            f"(run `rollbot check-config` for all of them):\n{listed}"
        )
