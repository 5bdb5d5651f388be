"""JQL for the Jira sim: a hand-written parser for the small subset rollbot and its tests
send, and its evaluation against the sim's issues.

The subset:

- clauses joined by AND, each ``field OP value``;
- operators ``=``, ``!=``, ``in (…)``, ``not in (…)``, ``is EMPTY`` / ``is not EMPTY`` (NULL
  is a synonym of EMPTY; ``= EMPTY`` means ``is EMPTY``, ``!= EMPTY`` ``is not EMPTY``);
- fields project, key (also issuekey, id, issue), labels, status, statusCategory, issuetype
  (also type), assignee, resolution; names are case-insensitive;
- values quoted ("…" or '…', backslash escapes) or bare words (letters, digits, ``_``, ``-``);
  values compare case-insensitively; a project matches by key, id or name, a status or type by
  name or id, a statusCategory by key, name or id, an assignee by account id, name or email;
- ``!=`` and ``not in`` never match an empty field, as in Jira;
- ``ORDER BY`` is checked (known fields, ASC/DESC, commas) and ignored: results come in
  creation order.

Anything else (OR, NOT, parentheses, functions such as ``currentUser()``, ``~``, ``<``, …)
is answered 400 in Jira's shape, saying it is beyond the sim. Syntax errors carry Jira's
wording and character positions; unknown fields, projects, statuses and issue keys are
refused as Jira refuses them ("The value 'X' does not exist for the field 'project'.").
Search sees an issue only from its `searchable_at` on (the model's `search_lag`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.sim.jira.model import (
    CATEGORIES,
    ISSUE_TYPES,
    STATUSES,
    Issue,
    JiraError,
    JiraState,
)

__all__ = ["Clause", "parse_jql", "run_jql"]


@dataclass(frozen=True, slots=True)
class Clause:
    field: str  # canonical: project, key, labels, status, statusCategory, issuetype, …
    op: str  # "=", "!=", "in", "not in", "is", "is not"
    values: tuple[str, ...]


JQL_FIELDS = {
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "id": "key",
    "issue": "key",
    "labels": "labels",
    "status": "status",
    "statuscategory": "statusCategory",
    "issuetype": "issuetype",
    "type": "issuetype",
    "assignee": "assignee",
    "resolution": "resolution",
}
ORDERABLE = {"key", "created", "updated", "duedate", "priority", "status", "summary", "rank"}
KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
RESERVED = set(" +.,;?|*/%^$#@[]!<>=~(){}'\"&")
BEYOND_SIM = (
    "JiraSim understands only AND of clauses 'field = value', '!=', 'in (…)', 'not in (…)', "
    "'is [not] EMPTY' on project, key, labels, status, statusCategory, issuetype, assignee, "
    "resolution"
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word | string | op | lparen | rparen | comma | end
    text: str
    at: int  # 1-based character


def _jql_error(message: str) -> JiraError:
    return JiraError(400, messages=[f"Error in the JQL Query: {message}"])


def _tokenize(jql: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(jql):
        c = jql[i]
        if c.isspace():
            i += 1
        elif c in "\"'":
            j, text = i + 1, []
            while j < len(jql) and jql[j] != c:
                if jql[j] == "\\" and j + 1 < len(jql):
                    j += 1
                text.append(jql[j])
                j += 1
            if j >= len(jql):
                raise _jql_error(
                    f"The quoted string '{jql[i + 1 :]}' has not been completed. "
                    f"(line 1, character {i + 1})"
                )
            tokens.append(_Token("string", "".join(text), i + 1))
            i = j + 1
        elif (
            jql.startswith("!=", i)
            or jql.startswith("!~", i)
            or jql.startswith("<=", i)
            or (jql.startswith(">=", i))
        ):
            tokens.append(_Token("op", jql[i : i + 2], i + 1))
            i += 2
        elif c in "=<>~":
            tokens.append(_Token("op", c, i + 1))
            i += 1
        elif c == "(":
            tokens.append(_Token("lparen", c, i + 1))
            i += 1
        elif c == ")":
            tokens.append(_Token("rparen", c, i + 1))
            i += 1
        elif c == ",":
            tokens.append(_Token("comma", c, i + 1))
            i += 1
        elif c.isalnum() or c == "_":
            j = i
            while j < len(jql) and (jql[j].isalnum() or jql[j] in "_-"):
                j += 1
            if j < len(jql) and jql[j] in RESERVED and jql[j] not in " =!<>~(),'\"":
                raise _jql_error(
                    f"The character '{jql[j]}' is a reserved JQL character. You must enclose "
                    f"it in a string or use the escape '\\u{ord(jql[j]):04x}' instead. "
                    f"(line 1, character {j + 1})"
                )
            tokens.append(_Token("word", jql[i:j], i + 1))
            i = j
        else:
            raise _jql_error(
                f"The character '{c}' is a reserved JQL character. You must enclose it in a "
                f"string or use the escape '\\u{ord(c):04x}' instead. (line 1, character {i + 1})"
            )
    tokens.append(_Token("end", "", len(jql) + 1))
    return tokens


def parse_jql(jql: str) -> list[Clause]:
    """AND-joined clauses; ORDER BY checked then dropped."""
    tokens = _tokenize(jql)
    pos = 0

    def peek() -> _Token:
        return tokens[pos]

    def take() -> _Token:
        nonlocal pos
        token = tokens[pos]
        pos += 1
        return token

    def word(token: _Token, *texts: str) -> bool:
        return token.kind == "word" and token.text.lower() in texts

    def value() -> str:
        token = take()
        if token.kind == "lparen" or (token.kind == "word" and peek().kind == "lparen"):
            raise _jql_error(f"{BEYOND_SIM}. (line 1, character {token.at})")
        if token.kind == "string" or (token.kind == "word" and token.text.lower() not in KEYWORDS):
            return token.text
        if token.kind == "word" and token.text.lower() in KEYWORDS:
            raise _jql_error(
                f"Expecting either a value, list or function but got '{token.text}'. You must "
                f"surround '{token.text}' in quotation marks to use it as a value. "
                f"(line 1, character {token.at})"
            )
        got = token.text or "<EOF>"
        raise _jql_error(
            f"Expecting either a value, list or function but got '{got}'. "
            f"(line 1, character {token.at})"
        )

    clauses: list[Clause] = []
    while peek().kind != "end" and not word(peek(), "order"):
        token = take()
        if token.kind == "lparen" or word(token, "not"):
            raise _jql_error(f"{BEYOND_SIM}. (line 1, character {token.at})")
        if token.kind not in ("word", "string"):
            raise _jql_error(
                f"Expecting a field name but got '{token.text}'. (line 1, character {token.at})"
            )
        name = JQL_FIELDS.get(token.text.lower())
        if name is None:
            raise JiraError(
                400,
                messages=[
                    f"Field '{token.text}' does not exist or you do not have permission to view it."
                ],
            )
        op_token = take()
        values: tuple[str, ...] = ()
        if op_token.kind == "op" and op_token.text in ("=", "!=") and word(peek(), "empty", "null"):
            take()  # `= EMPTY` is `IS EMPTY`
            op = "is" if op_token.text == "=" else "is not"
        elif op_token.kind == "op" and op_token.text in ("=", "!="):
            op, values = op_token.text, (value(),)
        elif word(op_token, "in") or (word(op_token, "not") and word(peek(), "in")):
            if word(op_token, "not"):
                take()
            op = "not in" if word(op_token, "not") else "in"
            if take().kind != "lparen":
                raise _jql_error(f"Expecting '(' after '{op.upper()}'. (line 1)")
            items = [value()]
            while peek().kind == "comma":
                take()
                items.append(value())
            closing = take()
            if closing.kind != "rparen":
                raise _jql_error(
                    f"Expecting ')' but got '{closing.text or '<EOF>'}'. "
                    f"(line 1, character {closing.at})"
                )
            values = tuple(items)
        elif word(op_token, "is"):
            op = "is"
            if word(peek(), "not"):
                take()
                op = "is not"
            empty = take()
            if not word(empty, "empty", "null"):
                raise _jql_error(
                    f"Expecting 'EMPTY' or 'NULL' after '{op.upper()}' but got "
                    f"'{empty.text or '<EOF>'}'. (line 1, character {empty.at})"
                )
        elif op_token.kind == "op":
            raise _jql_error(f"{BEYOND_SIM}. (line 1, character {op_token.at})")
        else:
            raise _jql_error(
                f"Expecting operator but got '{op_token.text or '<EOF>'}'. The valid operators "
                "are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and "
                f"'IS NOT'. (line 1, character {op_token.at})"
            )
        clauses.append(Clause(name, op, values))
        following = peek()
        if word(following, "and"):
            take()
            if peek().kind == "end":
                raise _jql_error(
                    f"Expecting a field name but got '<EOF>'. (line 1, character {peek().at})"
                )
        elif word(following, "or"):
            raise _jql_error(f"{BEYOND_SIM}. (line 1, character {following.at})")
        elif following.kind != "end" and not word(following, "order"):
            raise _jql_error(
                f"Expecting either 'OR' or 'AND' but got '{following.text}'. "
                f"(line 1, character {following.at})"
            )
    if word(peek(), "order"):
        take()
        if not word(take(), "by"):
            raise _jql_error("Expecting 'BY' after 'ORDER'. (line 1)")
        while True:
            token = take()
            if token.kind not in ("word", "string"):
                raise _jql_error(
                    f"Expecting a field name but got '{token.text or '<EOF>'}'. "
                    f"(line 1, character {token.at})"
                )
            if token.text.lower() not in ORDERABLE and token.text.lower() not in JQL_FIELDS:
                raise JiraError(
                    400,
                    messages=[
                        f"Field '{token.text}' does not exist or you do not have permission "
                        "to view it."
                    ],
                )
            if word(peek(), "asc", "desc"):
                take()
            if peek().kind != "comma":
                break
            take()
        if peek().kind != "end":
            raise _jql_error(
                f"Expecting ',' but got '{peek().text}'. (line 1, character {peek().at})"
            )
    return clauses


# ---------------------------------------------------------------------- evaluation


def run_jql(state: JiraState, jql: str) -> list[Issue]:
    """The issues `jql` finds (searchable ones only), in creation order. Hold `state.lock`."""
    clauses = parse_jql(jql)
    now = time.monotonic()
    candidates = [i for i in state.issues.values() if i.searchable_at <= now]
    for clause in clauses:
        _check_clause(state, clause)
    found = [i for i in candidates if all(_matches(state, i, c) for c in clauses)]
    return sorted(found, key=lambda i: int(i.id))


def _check_clause(state: JiraState, clause: Clause) -> None:
    """Jira refuses values that name nothing, for fields with a fixed domain."""
    if clause.field == "project":
        for value in clause.values:
            if state.find_project(value) is None and value.lower() not in (
                p.name.lower() for p in state.projects.values()
            ):
                raise JiraError(
                    400,
                    messages=[f"The value '{value}' does not exist for the field 'project'."],
                )
    elif clause.field == "status":
        known = {s.lower() for s in STATUSES} | {sid for sid, _ in STATUSES.values()}
        for value in clause.values:
            if value.lower() not in known:
                raise JiraError(
                    400,
                    messages=[f"The value '{value}' does not exist for the field 'status'."],
                )
    elif clause.field == "key" and clause.op in ("=", "in"):
        for value in clause.values:
            if value.upper() not in state.issues and not any(
                i.id == value for i in state.issues.values()
            ):
                raise JiraError(
                    400,
                    messages=[f"An issue with key '{value}' does not exist for field 'key'."],
                )


def _matches(state: JiraState, issue: Issue, clause: Clause) -> bool:
    actual = _clause_values(state, issue, clause.field)
    if clause.op in ("is", "is not"):
        empty = not actual
        return empty if clause.op == "is" else not empty
    wanted = {v.lower() for v in clause.values}
    hit = any(a.lower() in wanted for a in actual)
    if clause.op in ("=", "in"):
        return hit
    return bool(actual) and not hit  # like Jira, != and NOT IN never match an empty field


def _clause_values(state: JiraState, issue: Issue, name: str) -> list[str]:
    if name == "project":
        project = state.projects[issue.project]
        return [project.key, project.id, project.name]
    if name == "key":
        return [issue.key, issue.id]
    if name == "labels":
        return list(issue.labels)
    if name == "status":
        return [issue.status, STATUSES[issue.status][0]]
    if name == "statusCategory":
        category = STATUSES[issue.status][1]
        cid, cname, _ = CATEGORIES[category]
        return [category, cname, str(cid)]
    if name == "issuetype":
        return [issue.issue_type, ISSUE_TYPES[issue.issue_type]]
    if name == "assignee":
        user = state.users.get(issue.assignee) if issue.assignee else None
        return [] if user is None else [user.account_id, user.name, user.email]
    if name == "resolution":
        return ["Done"] if issue.resolutiondate else []
    raise AssertionError(name)
