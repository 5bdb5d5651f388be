"""bot.core.markdown: the safe Markdown renderer of the runbook pages.

Aspects under test:
- front matter: split off when fenced by `---` on the first line (closed by `---` or
  `...`), left alone otherwise (no fence, not on the first line, never closed);
- blocks: headings with unique ids and the level offset, paragraphs, lists (bullets,
  numbers with a start, one level of nesting, continuation lines, code inside an item),
  fenced code (language class, verbatim, unterminated), GFM tables (alignment, escaped
  pipes, ragged rows), blockquotes, horizontal rules;
- inline: code spans, bold, italic (not inside snake_case), links, autolinks, escapes;
- safety, as a table of attacks: raw HTML, script tags, event-handler attributes,
  javascript:/data:/vbscript: links (also obfuscated with case, entities, control
  characters), attribute injection through URLs, code languages and table cells; and as
  a property: for any input, the output holds only the allowed tags and attributes, and
  every href is one `safe_href` accepts;
- runbooks/payment-router.md renders with nothing left over (no `|---|`, `**`, ```` ``` ````
  in the text), its tables as tables and its commands as code.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import markdown as md

RUNBOOK = Path(__file__).resolve().parents[2] / "runbooks" / "payment-router.md"

ALLOWED_TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "pre", "code", "strong", "em",
    "a", "table", "thead", "tbody", "tr", "th", "td", "blockquote", "hr",
}  # fmt: skip
ALLOWED_ATTRS = {
    "a": {"href", "rel"},
    "code": {"class"},
    "th": {"class"},
    "td": {"class"},
    "ol": {"start"},
    **{f"h{n}": {"id"} for n in range(1, 7)},
}


class Parsed(HTMLParser):
    """Every tag and attribute of the output, and its text (entities decoded)."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)

    def hrefs(self) -> list[str]:
        return [a["href"] or "" for t, a in self.tags if t == "a" and "href" in a]


def assert_safe(markup: str) -> Parsed:
    parsed = Parsed(markup)
    for tag, attrs in parsed.tags:
        assert tag in ALLOWED_TAGS, (tag, markup)
        assert set(attrs) <= ALLOWED_ATTRS.get(tag, set()), (tag, attrs, markup)
        if tag == "code" and "class" in attrs:
            assert (attrs["class"] or "").startswith("language-")
        if tag in ("td", "th") and "class" in attrs:
            assert attrs["class"] in ("align-left", "align-center", "align-right")
        if tag == "a" and "rel" in attrs:
            assert attrs["rel"] == "noopener noreferrer"
    for href in parsed.hrefs():
        assert md.safe_href(href) == href, href
    return parsed


# ── front matter ────────────────────────────────────────────────────────────────────────


def test_front_matter_split():
    text = "---\nservice: x\nflags: {a: b}\n---\n# Title\n"
    assert md.split_front_matter(text) == ("service: x\nflags: {a: b}\n", "# Title\n")
    assert md.split_front_matter("---\na: 1\n...\nbody") == ("a: 1\n", "body")
    assert md.split_front_matter("\ufeff---\na: 1\n---\nbody") == ("a: 1\n", "body")
    assert md.split_front_matter("---\r\na: 1\r\n---\r\nbody") == ("a: 1\r\n", "body")


@pytest.mark.parametrize("text", ["# Title\n---\n", "\n---\na: 1\n---\n", "---\na: 1\n", ""])
def test_no_front_matter(text):
    assert md.split_front_matter(text) == (None, text)


# ── blocks ──────────────────────────────────────────────────────────────────────────────


def test_headings_ids_and_offset():
    out = md.render("# Tier 1 — abort (0–60 s)\n## Verify\n## Verify\n### `code` *x*\n")
    assert '<h1 id="tier-1--abort-060-s">Tier 1 — abort (0–60 s)</h1>' in out
    assert '<h2 id="verify">Verify</h2>' in out
    assert '<h2 id="verify-1">Verify</h2>' in out
    assert '<h3 id="code-x"><code>code</code> <em>x</em></h3>' in out
    shifted = md.render("# A\n###### F\n", heading_offset=1)
    assert '<h2 id="a">A</h2>' in shifted and '<h6 id="f">F</h6>' in shifted
    assert md.render("#hashtag\n") == "<p>#hashtag</p>\n"  # no space: not a heading


def test_paragraphs_and_rules():
    out = md.render("one\ntwo\n\nthree\n\n---\n***\n")
    assert out == "<p>one\ntwo</p>\n<p>three</p>\n<hr>\n<hr>\n"


def test_lists():
    out = md.render(
        "- a\n- b **bold**\n  continued\n  - nested 1\n  - nested 2\n- c\n\n"
        "3. three\n4. four\n   1. sub\n"
    )
    assert (
        "<ul><li>a</li><li>b <strong>bold</strong>\ncontinued"
        "<ul><li>nested 1</li><li>nested 2</li></ul></li><li>c</li></ul>"
    ) in out
    assert '<ol start="3"><li>three</li><li>four<ol><li>sub</li></ol></li></ol>' in out


def test_list_with_code_and_loose_items():
    out = md.render("1. run:\n   ```sh\n   kubectl get ro\n   ```\n\n2. verify\n")
    assert (
        '<ol><li>run:<pre><code class="language-sh">kubectl get ro\n</code></pre></li>'
        "<li>verify</li></ol>"
    ) in out
    assert "```" not in out


def test_fenced_code():
    out = md.render('```sh\necho "<b>" && **x**\n\n  indented\n```\n~~~\nplain\n~~~\n')
    assert (
        '<pre><code class="language-sh">echo &quot;&lt;b&gt;&quot; &amp;&amp; **x**\n\n'
        "  indented\n</code></pre>"
    ) in out
    assert "<pre><code>plain\n</code></pre>" in out
    unterminated = md.render("```\nnever closed\n# not a heading\n")
    assert unterminated == "<pre><code>never closed\n# not a heading\n</code></pre>\n"


def test_tables():
    out = md.render(
        "| you see | do | n |\n|:---|:---:|---:|\n| a \\| b | **x** | 1 |\n| only one |\n"
    )
    assert out == (
        "<table><thead><tr>"
        '<th class="align-left">you see</th><th class="align-center">do</th>'
        '<th class="align-right">n</th></tr></thead><tbody><tr>'
        '<td class="align-left">a | b</td><td class="align-center"><strong>x</strong></td>'
        '<td class="align-right">1</td></tr><tr>'
        '<td class="align-left">only one</td><td class="align-center"></td>'
        '<td class="align-right"></td></tr></tbody></table>\n'
    )


def test_blockquote():
    out = md.render("> **Note**: careful\n> - one\n")
    assert out == (
        "<blockquote>\n<p><strong>Note</strong>: careful</p>\n<ul><li>one</li></ul>\n"
        "</blockquote>\n"
    )


# ── inline ──────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("source", "html"),
    [
        ("`a < b`", "<code>a &lt; b</code>"),
        ("`` a `b` ``", "<code>a `b`</code>"),
        ("**bold** and *it* and __b2__ and _i2_", "<strong>bold</strong> and <em>it</em> "
         "and <strong>b2</strong> and <em>i2</em>"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2*3*4"),
        ("\\*not italic\\*", "*not italic*"),
        ("[docs](https://example.com/a_b?x=1&y=2)",
         '<a href="https://example.com/a_b?x=1&amp;y=2" rel="noopener noreferrer">docs</a>'),
        ("[up](../deploy/x.yaml)", '<a href="../deploy/x.yaml">up</a>'),
        ("[tier](#tier-1)", '<a href="#tier-1">tier</a>'),
        ("[mail](mailto:oncall@example.com)", '<a href="mailto:oncall@example.com">mail</a>'),
        ('[t](https://e.com "title")', '<a href="https://e.com" rel="noopener noreferrer">t</a>'),
        ("<https://e.com/x>", '<a href="https://e.com/x" rel="noopener noreferrer">'
         "https://e.com/x</a>"),
        ("**[bold link](#x)**", '<strong><a href="#x">bold link</a></strong>'),
        ("[`code` link](#x)", '<a href="#x"><code>code</code> link</a>'),
        ("a [b] c", "a [b] c"),
        ("unclosed `tick", "unclosed `tick"),
    ],
)  # fmt: skip
def test_inline(source, html):
    assert md.render(source) == f"<p>{html}</p>\n"


# ── safety ──────────────────────────────────────────────────────────────────────────────

ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](java%0ascript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x]( javascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](vbscript:msgbox)",
    '[x](https://e.com" onmouseover="alert(1))',
    "[x](https://e.com'><script>alert(1)</script>)",
    "<javascript:alert(1)>",
    '```js" onload="alert(1)\nx\n```',
    "```<script>\nx\n```",
    "| a | b |\n|---|---|\n| <script>x</script> | [y](javascript:z) |",
    "# <img src=x onerror=alert(1)>",
    "- <iframe src=//evil>",
    "> <style>body{display:none}</style>",
    "**<b onclick=alert(1)>x</b>**",
    "`</code><script>alert(1)</script>`",
    "[<script>](#a)",
    "\ue0000\ue001 placeholder smuggling \ue000",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_render_as_text(attack):
    out = md.render(attack)
    parsed = assert_safe(out)
    assert "<script" not in out.lower()
    assert "<img" not in out.lower() and "<iframe" not in out.lower()
    assert "<style" not in out.lower()
    for href in parsed.hrefs():
        assert not href.lower().startswith(("javascript", "data", "vbscript"))
    assert not any(name.startswith("on") for _, attrs in parsed.tags for name in attrs)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://e.com", True),
        ("http://e.com/x?y#z", True),
        ("mailto:a@b.c", True),
        ("/runbooks/x", True),
        ("../deploy/a.yaml", True),
        ("#anchor", True),
        ("a/b:c", True),
        ("javascript:alert(1)", False),
        ("JAVASCRIPT:x", False),
        ("data:text/html,x", False),
        ("file:///etc/passwd", False),
        ("java\nscript:x", False),
        (" https://e.com", False),
        ("https://e.com\\@evil", False),
        ("x:y", False),
        ("", False),
    ],
)
def test_safe_href(url, ok):
    assert (md.safe_href(url) == url) is ok


@given(
    st.text(alphabet=st.sampled_from(list("<>&\"'`*_[]()|#-:!/\\ \nabjsvcript=1.")), max_size=120)
)
@settings(max_examples=600, deadline=None)
def test_any_input_yields_only_allowed_markup(text):
    assert_safe(md.render(text))


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_unicode_yields_only_allowed_markup(text):
    assert_safe(md.render(text))


# ── the real runbook ────────────────────────────────────────────────────────────────────


def test_payment_router_runbook_renders_without_leftovers():
    front, body = md.split_front_matter(RUNBOOK.read_text())
    assert front is not None and "payment-router" in front
    out = md.render(body, heading_offset=1)
    parsed = assert_safe(out)
    text = parsed.all_text
    for leftover in ("|---|", "| --- |", "**", "```", "~~~"):
        assert leftover not in text, leftover
    assert "---\nservice:" not in out
    tags = [t for t, _ in parsed.tags]
    assert tags.count("table") >= 1 and "th" in tags and "td" in tags
    assert tags.count("pre") >= 3
    assert "kubectl argo rollouts abort payment-router -n payments" in text
    headings = [a.get("id") for t, a in parsed.tags if t in ("h2", "h3")]
    assert any(h and h.startswith("tier-1") for h in headings)
    assert "h1" not in tags  # the page keeps its own <h1>
