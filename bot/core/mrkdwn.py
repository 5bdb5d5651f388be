"""Slack mrkdwn made safely: the one place where outside text becomes mrkdwn.

Slack reads `&`, `<` and `>` as control characters in mrkdwn (and in a message's `text`):
`<!channel>`, `<!here>`, `<@U…>` and `<!subteam^S…>` notify people, `<https://…|label>`
is a link whose target the reader does not see. Slack's "Escaping text"
(https://api.slack.com/reference/surfaces/formatting#escaping) asks for exactly three
entities, and only those: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`.

The rule in rollbot: every string rollbot did not write itself (an Argo message, an alert's
labels and annotations, a PagerDuty name or note, a Jira field, an error an outside service
answered, whatever a person typed) passes through `escape` before it is put into mrkdwn.
rollbot's own markup (`*bold*`, `` `code` ``, the links it builds with `link`, mentions of
the Slack ids it resolved itself) is written around the escaped pieces, never escaped as a
finished string. Plain text (`bot.core` messages, `Trouble.summary`, `Change.text`, a
`RollbotError`'s message other than a policy refusal) is escaped where it becomes mrkdwn.

    escape(text)            the three entities, nothing else (`*`, `_`, `` ` `` stay)
    unescape(text)          the inverse, for text Slack sent escaped (a slash command)
    clip(text, limit)       at most `limit` characters, an ellipsis when cut
    safe(text, limit)       one line, escaped, clipped without cutting an entity
    is_web_url(url)         an http(s) URL Slack accepts in a link or a URL button
    link(url, label)        `<url|label>` with the characters that would end it encoded
    plain(text)             rollbot's mrkdwn as plain text (PagerDuty notes): links as
                            their label, emphasis markers dropped, entities decoded

Pure: no I/O, usable from `bot.core` and from the Slack layer alike.
"""

from __future__ import annotations

__all__ = ["clip", "escape", "is_web_url", "link", "plain", "safe", "unescape"]


def escape(text: str) -> str:
    """`text` with Slack's three control characters as entities, so that it shows as
    written and never mentions, links or formats anything by itself.

    `&` first, so that an entity already in the text (`&lt;`) shows as typed, not as `<`.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """The inverse of `escape` (`&amp;` last, so `&amp;lt;` becomes `&lt;`, not `<`)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def clip(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start and `…`."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe(text: str, limit: int) -> str:
    """`text` on one line, escaped for mrkdwn, clipped to `limit` without cutting an entity."""
    escaped = escape(" ".join(text.split()))
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def is_web_url(url: str | None) -> bool:
    """Slack accepts only http(s) URLs up to 3000 characters in URL buttons and links."""
    return (
        bool(url)
        and str(url).startswith(("https://", "http://"))
        and len(str(url)) <= 3000
        and not any(c.isspace() for c in str(url))
    )


def link(url: str, label: str) -> str:
    """`<url|label>`: in the URL, the characters that would end the link are percent-encoded
    and `&` is escaped as Slack escapes it in all text (Slack decodes it back, so the link
    goes where `url` says, and an entity in a URL never turns into anything else).

    `label` is mrkdwn: pass rollbot's own words, or outside text through `safe`/`escape`.
    Check the URL with `is_web_url` first when it is not rollbot's own."""
    target = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{target.replace('&', '&amp;')}|{label}>"


def plain(text: str) -> str:
    """rollbot's mrkdwn as plain text, for places that do not render it (PagerDuty notes):
    `<url|label>` and `<@U…|name>` show their label, `*` and `` ` `` go, entities are decoded
    last (so an escaped `&lt;!here&gt;` reads `<!here>` and is not taken for markup)."""
    out = text.replace("*", "").replace("`", "")
    while "<" in out and ">" in out[out.index("<") :]:
        start = out.index("<")
        end = out.index(">", start)
        inner = out[start + 1 : end]
        shown = inner.split("|", 1)[-1]
        out = out[:start] + shown + out[end + 1 :]
    return unescape(out)


def channel(ref: str) -> str:
    """A channel as Slack shows it: an id (`C0123ABC`) as a mention (`<#C0123ABC>`, which
    Slack renders as its name), a name as written (`#payments-deploys`, once: `<#…>` takes
    an id, and a name there showed as "##payments-deploys")."""
    ref = ref.strip()
    if ref[:1] in ("C", "G") and ref[1:].isalnum() and ref.isupper():
        return f"<#{ref}>"
    return safe("#" + ref.lstrip("#"), 100)
