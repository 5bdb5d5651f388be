"""Runbook Markdown: one parser for the runbook page and the runbook linter.

Runbooks are written by people with repository access and read in two places: on GitHub,
by their authors, and on rollbot's runbook page, next to buttons that act. So the page
renders them as GitHub does, and nothing a runbook holds can run in that page:

    text ──parse──▶ Document (markdown-it tokens, front matter, line numbers)
                        │                     │
                      render                bot.core.runbook lints the same tokens
                        │
              markdown-it HTML ──nh3 allow-list──▶ safe HTML

`PARSER` is the one configured markdown-it-py instance: CommonMark, plus what GitHub adds
for the constructs runbooks use: pipe tables, `~~strikethrough~~` (and `~single~`), bare
URL autolinks (``https://…``, ``www.…``, e-mail addresses), YAML front matter between
``---`` fences at the very top (mdit-py-plugins' front_matter, shown on the page apart),
and heading ids from the heading text as GitHub makes them (`slug`, unique per document:
``verify``, ``verify-1``), so ``[see](#tier-1--abort-060-s)`` works on both. Reference
definitions stay in the token stream (``definition`` tokens, not shown) and a reference
link's token carries its label (``meta["label"]``), so the linter checks each target where
it is written.

Safety is two layers. The parser never passes HTML through (``html=False``: raw HTML is
shown as text) and refuses link targets that `safe_href` refuses (a refused link shows as
its Markdown text). Then nh3 (ammonia) cleans the output with an explicit allow-list:
the tags in ``_TAGS``; ``id`` on headings, ``href``/``title`` on links (http, https, mailto,
relative, ``#anchor``; ``rel="noopener noreferrer"`` added to every link), ``class`` only
as ``language-…`` on code and ``align-left|center|right`` on table cells (the page's CSP
forbids style attributes), ``start`` on ordered lists.

Images are shown as links to the image (their alt text, or the URL): the page's CSP is
``img-src 'self'`` and rollbot serves no images, so an ``<img>`` would only be a broken
picture; an image inside a link shows its alt text.

Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.front_matter import front_matter_plugin
from mdit_py_plugins.gfm_autolink import gfm_autolink_plugin

__all__ = ["PARSER", "Document", "inline", "parse", "render", "safe_href", "slug"]

# ── links ──────────────────────────────────────────────────────────────────────────────

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})


def safe_href(url: str) -> str | None:
    """`url` if it may become an href (http, https, mailto, relative, #anchor), else None."""
    if not url or len(url) > 2048:
        return None
    # Browsers drop tabs and newlines inside URLs and trim control characters and spaces:
    # "java\tscript:" is javascript:. Refuse any of them rather than guess.
    if any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        return None
    match = _SCHEME.match(url)
    if match is not None:
        return url if match.group(1).lower() in _ALLOWED_SCHEMES else None
    if ":" in url.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]:
        return None  # "a:b" parses as a scheme somewhere; not a plain relative path
    return url


# ── heading ids ────────────────────────────────────────────────────────────────────────


def slug(text: str) -> str:
    """A heading's id as GitHub makes it from the heading's text: lower case; every
    character but letters, digits, marks, ``_``, ``-`` and spaces dropped; each space a
    hyphen ("Tier 1 — abort (0–60 s)" → ``tier-1--abort-060-s``). ``section`` when nothing
    is left (GitHub's id would be empty, which no link can reach)."""
    kept = "".join(
        c
        for c in text.strip().lower()
        if c in " -_" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc"
    )
    return kept.replace(" ", "-") or "section"


# ── the parser ─────────────────────────────────────────────────────────────────────────


def _image_as_link(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children, options, env)
    src = str(token.attrGet("src") or "")
    depth = sum(
        1 if t.type == "link_open" else -1 for t in tokens[:idx] if t.type.startswith("link_")
    )
    if depth > 0 or not src:  # no link inside a link
        return escapeHtml(alt)
    return f'<a href="{escapeHtml(src)}">{escapeHtml(alt or src)}</a>'


def _nothing(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return ""


def _build() -> MarkdownIt:
    md = MarkdownIt(
        "commonmark",
        {
            "html": False,  # raw HTML is text
            "linkify": False,  # GitHub's autolinks come from gfm_autolink_plugin
            "typographer": False,
            "xhtmlOut": False,
            "breaks": False,  # GitHub keeps soft line breaks in .md files
            "inline_definitions": True,  # reference definitions as tokens, for the linter
            "store_labels": True,  # a reference link's token names its definition
            "strikethrough_single_tilde": True,  # GitHub strikes ~x~ too
        },
    )
    md.enable(["table", "strikethrough"])
    md.use(front_matter_plugin)
    md.use(anchors_plugin, min_level=1, max_level=6, slug_func=slug)
    md.use(gfm_autolink_plugin)
    md.validateLink = lambda url: safe_href(url) is not None  # type: ignore[method-assign]
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("definition", _nothing)
    return md


PARSER = _build()
"""The one markdown-it instance the page and the linter share (never reconfigure it)."""

_NEWLINES = re.compile(r"\r\n?")


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed runbook. `tokens`: markdown-it's block tokens, whose ``map`` are 0-based
    line ranges of `lines`; `lines`: the text as parsed (BOM dropped, line ends ``\\n``);
    `front_matter`: the YAML between the fences (None: no front matter, or never closed);
    `body_line`: the 1-based line the Markdown after the front matter starts on."""

    tokens: tuple[Token, ...]
    lines: tuple[str, ...]
    front_matter: str | None
    body_line: int

    @property
    def body(self) -> str:
        """The text after the front matter."""
        return "\n".join(self.lines[self.body_line - 1 :])


def parse(text: str) -> Document:
    """`text` (a whole runbook file) as tokens."""
    source = _NEWLINES.sub("\n", text.removeprefix("\ufeff"))
    tokens = PARSER.parse(source)
    front = next((t for t in tokens if t.type == "front_matter"), None)
    body_line = front.map[1] + 1 if front is not None and front.map else 1
    return Document(
        tokens=tuple(tokens),
        lines=tuple(source.split("\n")),
        front_matter=front.content if front is not None else None,
        body_line=body_line,
    )


# ── the allow-list ─────────────────────────────────────────────────────────────────────

_TAGS = {
    *("h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote", "ul", "ol", "li"),
    *("pre", "code", "em", "strong", "s", "a", "table", "thead", "tbody", "tr", "th", "td"),
}
_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "code": {"class"},
    "th": {"class"},
    "td": {"class"},
    "ol": {"start"},
    **{f"h{n}": {"id"} for n in range(1, 7)},
}
_ALIGN_CLASSES = frozenset({"align-left", "align-center", "align-right"})
_LANGUAGE = re.compile(r"[^A-Za-z0-9_+\-]")


def _attribute(tag: str, name: str, value: str) -> str | None:
    if name != "class":
        return value
    if tag in ("th", "td"):
        return value if value in _ALIGN_CLASSES else None
    language = _LANGUAGE.sub("", value.removeprefix("language-"))[:32]
    return f"language-{language}" if value.startswith("language-") and language else None


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute,
    url_schemes=set(_ALLOWED_SCHEMES),
    link_rel="noopener noreferrer",
    strip_comments=True,
)

# ── rendering ──────────────────────────────────────────────────────────────────────────

_ALIGN = re.compile(r"^text-align:(left|center|right)$")


def _presented(tokens: Sequence[Token], heading_offset: int) -> list[Token]:
    """Copies of the tokens as the page shows them: headings shifted down by
    `heading_offset` levels, table alignment as a class (the CSP refuses style="…")."""
    out = []
    for token in tokens:
        if heading_offset and token.type in ("heading_open", "heading_close"):
            token = token.copy(tag=f"h{min(6, int(token.tag[1]) + heading_offset)}")
        elif token.type in ("th_open", "td_open") and token.attrs:
            align = _ALIGN.match(str(token.attrGet("style") or ""))
            token = token.copy(attrs={"class": f"align-{align.group(1)}"} if align else {})
        out.append(token)
    return out


def render(source: str | Document, *, heading_offset: int = 0) -> str:
    """A runbook (text or parsed) as safe HTML; its front matter is not shown.

    `heading_offset` shifts heading levels down (1: `#` becomes `<h2>`), so the page
    around the runbook keeps its own `<h1>`."""
    document = parse(source) if isinstance(source, str) else source
    tokens = _presented(document.tokens, max(0, heading_offset))
    return _CLEANER.clean(PARSER.renderer.render(tokens, PARSER.options, {}))


def inline(text: str) -> str:
    """One run of inline Markdown (a message, a list item) as safe HTML."""
    return _CLEANER.clean(PARSER.renderInline(text))


def _build_messages() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable(["link", "image", "autolink"])
    return md


MESSAGES = _build_messages()
"""For rollbot's messages shown on a page: emphasis and code only. They quote outside words
(an API's error, a flag's name), and neither `[label](url)` nor a bare URL there may become
a link beside the action buttons."""


def message(text: str) -> str:
    """One of rollbot's messages as safe HTML: emphasis and code, never a link."""
    return _CLEANER.clean(MESSAGES.renderInline(text))
