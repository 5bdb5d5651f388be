"""The audit log's hash chain: canonical form, hashing and verification (pure, no I/O).

    hash(n) = sha256( prev_hash(n) + canonical_json(entry(n)) ),  prev_hash(n) = hash(n-1)
    prev_hash(1) = "0" * 64

`canonical_json` is JSON with sorted keys, no whitespace (`,` and `:` separators), UTF-8
(not `\\u` escapes), no NaN/Infinity, datetimes as ISO-8601 UTC with microseconds
(`2025-01-01T12:00:00.000000+00:00`). The hashed entry holds its own `seq` besides the
`AuditEntry` fields, so renumbering rows (reordering, closing the gap of a deleted row)
breaks the chain as surely as editing one.

Kept apart from the database so `rollbot audit verify|export` can check an exported copy
with the very same code (`verify_chain` takes any iterable of `AuditRecord`).

What the chain proves and what it does not: any UPDATE, DELETE or reordering of stored
entries is detected, and truncating the tail is detected against the `audit_head` row. An
attacker who can rewrite *every* row and the head can forge a consistent new chain; to
catch that, anchor the head hash outside the database (export it, post it, sign it).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from bot.core.model import AuditEntry
from bot.core.ports import AuditRecord, AuditVerification
from bot.store.schema import ZERO_HASH, to_utc


def json_default(value: Any) -> Any:
    """How rollbot writes values JSON has no type for."""
    if isinstance(value, datetime):
        return to_utc(value).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=json_default,
    )


def plain_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """`value` as JSON would give it back (tuples → lists, datetimes → strings, …).

    Entries are normalised to this form *before* hashing and storing, so what is hashed is
    exactly what is read back later.
    """
    result: dict[str, Any] = json.loads(canonical_json(dict(value)))
    return result


def normalise(entry: AuditEntry) -> AuditEntry:
    """The entry as it will be stored and read back: UTC time, plain JSON payloads."""
    return dataclasses.replace(
        entry,
        at=to_utc(entry.at),
        before=plain_json(entry.before),
        after=plain_json(entry.after),
        detail=plain_json(entry.detail),
        duration_ms=None if entry.duration_ms is None else int(entry.duration_ms),
    )


def entry_document(seq: int, entry: AuditEntry) -> dict[str, Any]:
    """What gets hashed for one entry."""
    return {
        "seq": seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "result": entry.result,
        "before": entry.before,
        "after": entry.after,
        "duration_ms": entry.duration_ms,
        "detail": entry.detail,
    }


def entry_hash(prev_hash: str, seq: int, entry: AuditEntry) -> str:
    payload = prev_hash + canonical_json(entry_document(seq, entry))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def verify_chain(
    records: Iterable[AuditRecord], *, head: tuple[int, str] | None = None
) -> AuditVerification:
    """Recompute the chain; report the first seq that does not hold.

    `head` is the (seq, hash) the store recorded for its last append; when given, a chain
    that stops short of it (tail deleted) or runs past it (rows inserted behind the store's
    back) fails too.
    """
    expected_seq, expected_prev, count = 1, ZERO_HASH, 0
    for rec in records:
        if rec.seq != expected_seq:
            if rec.seq > expected_seq:
                return AuditVerification(
                    False,
                    count,
                    expected_seq,
                    f"seq {expected_seq} is missing (next stored entry is {rec.seq}): deleted",
                )
            return AuditVerification(
                False, count, rec.seq, f"seq {rec.seq} out of order after {expected_seq - 1}"
            )
        if rec.prev_hash != expected_prev:
            return AuditVerification(
                False,
                count,
                rec.seq,
                f"seq {rec.seq}: prev_hash does not match the hash of entry {rec.seq - 1}",
            )
        if entry_hash(rec.prev_hash, rec.seq, rec.entry) != rec.hash:
            return AuditVerification(
                False, count, rec.seq, f"seq {rec.seq}: content does not match its hash"
            )
        count += 1
        expected_seq, expected_prev = rec.seq + 1, rec.hash
    if head is not None:
        head_seq, head_hash = head
        last = expected_seq - 1
        if head_seq > last:
            return AuditVerification(
                False,
                count,
                last + 1,
                f"entries {last + 1}..{head_seq} are missing: the log was truncated",
            )
        if head_seq < last:
            return AuditVerification(
                False,
                count,
                head_seq + 1,
                f"entries after {head_seq} were not appended through the store",
            )
        if head_hash != expected_prev:
            return AuditVerification(
                False, count, last, f"seq {last}: hash does not match the recorded head"
            )
    return AuditVerification(True, count)
