"""bot.core.markdown: the runbook parser and the safe renderer of the runbook pages.

Aspects under test:
- front matter: parsed when fenced by `---` on the first line (closed by `---` or `...`,
  a BOM and CRLF line ends tolerated), with the line the body starts on; left alone
  otherwise (no fence, not on the first line, never closed) and never shown on the page;
- blocks: headings with unique GitHub-style ids and the level offset, paragraphs, lists
  (bullets, numbers with a start, nesting, continuation lines, code inside an item, loose
  items in paragraphs), fenced code (language class, verbatim, unterminated), GFM tables
  (alignment as classes, escaped pipes, ragged rows), blockquotes, horizontal rules;
- what the hand-written renderer got wrong and GitHub shows: reference links, setext
  headings, indented code, `~~strike~~` and `~strike~`, images (shown as links: the page's
  CSP allows no outside image), third-level lists, bare URL autolinks, hard line breaks;
- inline: code spans, bold, italic (not inside snake_case), links with titles, autolinks,
  escapes; `inline` for one run of text;
- safety, as a table of attacks: raw HTML, script tags, event-handler attributes,
  javascript:/data:/vbscript: links (also obfuscated with case, entities, control
  characters), attribute injection through URLs, code languages and table cells; and as
  a property: for any input, the output holds only the allowed tags and attributes, and
  every href is one `safe_href` accepts;
- runbooks/payment-router.md renders with nothing left over (no `|---|`, `**`, ```` ``` ````
  in the text), its tables as tables and its commands as code.
"""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import markdown as md

RUNBOOK = Path(__file__).resolve().parents[3] / "runbooks" / "payment-router.md"

ALLOWED_TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "pre", "code", "strong", "em",
    "s", "a", "table", "thead", "tbody", "tr", "th", "td", "blockquote", "hr", "br",
}  # fmt: skip
ALLOWED_ATTRS = {
    "a": {"href", "rel", "title"},
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


BLOCK_TAGS = "h1|h2|h3|h4|h5|h6|p|ul|ol|li|pre|table|thead|tbody|tr|th|td|blockquote|hr|br"


class Canon(HTMLParser):
    """Markup re-serialised so that two renderings of the same structure compare equal:
    attributes sorted, entities decoded and re-escaped, `<hr />` as `<hr>`, whitespace
    outside `<pre>` collapsed to one space and dropped next to block tags (as a browser
    lays it out). Tags, attributes, text and nesting still have to match."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.pre = 0
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.pre += tag == "pre"
        shown = "".join(f' {k}="{html_lib.escape(v or "")}"' for k, v in sorted(attrs))
        self.out.append(f"<{tag}{shown}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.pre -= tag == "pre"
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        text = html_lib.escape(data, quote=False)
        self.out.append(text if self.pre else re.sub(r"\s+", " ", text))

    @property
    def text(self) -> str:
        joined = "".join(self.out)
        return re.sub(rf"\s*(</?(?:{BLOCK_TAGS})\b[^>]*>)\s*", r"\1", joined).strip()


def same(markup: str, expected: str) -> None:
    assert Canon(markup).text == Canon(expected).text, markup


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
        # "" is `[x]()`: a link to the page itself, as GitHub renders it
        assert href == "" or md.safe_href(href) == href, href
    return parsed


# ── front matter ────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("text", "front", "body_line", "body"),
    [
        ("---\nservice: x\nflags: {a: b}\n---\n# Title\n", "service: x\nflags: {a: b}", 5,
         "# Title\n"),
        ("---\na: 1\n...\nbody", "a: 1", 4, "body"),
        ("\ufeff---\na: 1\n---\nbody", "a: 1", 4, "body"),
        ("---\r\na: 1\r\n---\r\nbody", "a: 1", 4, "body"),
        ("---\n---\nbody", "", 3, "body"),
    ],
)  # fmt: skip
def test_front_matter(text, front, body_line, body):
    doc = md.parse(text)
    assert (doc.front_matter, doc.body_line, doc.body) == (front, body_line, body)
    assert "a: 1" not in md.render(doc) and "service" not in md.render(text)


@pytest.mark.parametrize("text", ["# Title\n---\n", "\n---\na: 1\n---\n", "---\na: 1\n", ""])
def test_no_front_matter(text):
    doc = md.parse(text)
    assert (doc.front_matter, doc.body_line, doc.body) == (None, 1, text)


def test_an_unclosed_front_matter_is_shown_as_markdown():
    same(md.render("---\na: 1\n"), "<hr><p>a: 1</p>")


# ── blocks ──────────────────────────────────────────────────────────────────────────────


def test_headings_ids_and_offset():
    out = md.render("# Tier 1 — abort (0–60 s)\n## Verify\n## Verify\n### `code` *x*\n")
    same(
        out,
        '<h1 id="tier-1--abort-060-s">Tier 1 — abort (0–60 s)</h1>'
        '<h2 id="verify">Verify</h2><h2 id="verify-1">Verify</h2>'
        '<h3 id="code-x"><code>code</code> <em>x</em></h3>',
    )
    shifted = md.render("# A\n###### F\n", heading_offset=1)
    same(shifted, '<h2 id="a">A</h2><h6 id="f">F</h6>')
    same(md.render("#hashtag\n"), "<p>#hashtag</p>")  # no space: not a heading


@pytest.mark.parametrize(
    ("title", "anchor"),
    [
        ("Tier 2 — circuit breaker (0–10 s)", "tier-2--circuit-breaker-010-s"),
        ("Which tier? (decide in 30 seconds)", "which-tier-decide-in-30-seconds"),
        ("Do not", "do-not"),
        ("`kubectl` & **Argo**: v1.2", "kubectl--argo-v12"),
        ("snake_case and kebab-case", "snake_case-and-kebab-case"),
        ("Über Größe", "über-größe"),
        ("[linked](#x) title", "linked-title"),
        ("!!!", "section"),
    ],
)
def test_heading_ids_are_githubs(title, anchor):
    parsed = Parsed(md.render(f"## {title}\n"))
    assert parsed.tags[0] == ("h2", {"id": anchor})


def test_paragraphs_and_rules():
    same(md.render("one\ntwo\n\nthree\n\n---\n***\n"), "<p>one\ntwo</p><p>three</p><hr><hr>")


def test_lists():
    out = md.render(
        "- a\n- b **bold**\n  continued\n  - nested 1\n  - nested 2\n- c\n\n"
        "3. three\n4. four\n   1. sub\n"
    )
    same(
        out,
        "<ul><li>a</li><li>b <strong>bold</strong>\ncontinued"
        "<ul><li>nested 1</li><li>nested 2</li></ul></li><li>c</li></ul>"
        '<ol start="3"><li>three</li><li>four<ol><li>sub</li></ol></li></ol>',
    )


def test_list_with_code_and_loose_items():
    # A blank line between items makes a loose list: each item's text is a paragraph,
    # as GitHub shows it (the hand-written renderer left the <p> out).
    out = md.render("1. run:\n   ```sh\n   kubectl get ro\n   ```\n\n2. verify\n")
    same(
        out,
        '<ol><li><p>run:</p><pre><code class="language-sh">kubectl get ro\n</code></pre></li>'
        "<li><p>verify</p></li></ol>",
    )
    assert "```" not in out


def test_fenced_code():
    out = md.render('```sh\necho "<b>" && **x**\n\n  indented\n```\n~~~\nplain\n~~~\n')
    same(
        out,
        '<pre><code class="language-sh">echo &quot;&lt;b&gt;&quot; &amp;&amp; **x**\n\n'
        "  indented\n</code></pre><pre><code>plain\n</code></pre>",
    )
    unterminated = md.render("```\nnever closed\n# not a heading\n")
    same(unterminated, "<pre><code>never closed\n# not a heading\n</code></pre>")


def test_a_code_language_keeps_only_word_characters():
    out = md.render('```js" onload="alert(1)\nx\n```\n')
    assert Parsed(out).tags == [("pre", {}), ("code", {"class": "language-js"})]


def test_tables():
    out = md.render(
        "| you see | do | n |\n|:---|:---:|---:|\n| a \\| b | **x** | 1 |\n| only one |\n"
    )
    same(
        out,
        "<table><thead><tr>"
        '<th class="align-left">you see</th><th class="align-center">do</th>'
        '<th class="align-right">n</th></tr></thead><tbody><tr>'
        '<td class="align-left">a | b</td><td class="align-center"><strong>x</strong></td>'
        '<td class="align-right">1</td></tr><tr>'
        '<td class="align-left">only one</td><td class="align-center"></td>'
        '<td class="align-right"></td></tr></tbody></table>',
    )
    assert "style" not in out  # the page's CSP refuses style attributes


def test_blockquote():
    same(
        md.render("> **Note**: careful\n> - one\n"),
        "<blockquote><p><strong>Note</strong>: careful</p><ul><li>one</li></ul></blockquote>",
    )


# ── what GitHub shows and the hand-written renderer did not ─────────────────────────────


def test_reference_links():
    out = md.render(
        "See [the rollout][ro], [Grafana][] and [ro].\n\n"
        '[ro]: ../deploy/x.yaml "The Rollout"\n[grafana]: https://grafana.example.com/d/1\n'
    )
    same(
        out,
        '<p>See <a href="../deploy/x.yaml" title="The Rollout" rel="noopener noreferrer">'
        "the rollout</a>, "
        '<a href="https://grafana.example.com/d/1" rel="noopener noreferrer">Grafana</a> and '
        '<a href="../deploy/x.yaml" title="The Rollout" rel="noopener noreferrer">ro</a>.</p>',
    )
    assert "[ro]:" not in out  # the definitions themselves are not shown


def test_setext_headings():
    out = md.render("Rollback runbook\n================\n\nTier 1\n------\n\ntext\n")
    same(
        out,
        '<h1 id="rollback-runbook">Rollback runbook</h1><h2 id="tier-1">Tier 1</h2><p>text</p>',
    )


def test_indented_code():
    out = md.render("Run:\n\n    kubectl argo rollouts abort x -n y\n    # <done>\n\nThen.\n")
    same(
        out,
        "<p>Run:</p><pre><code>kubectl argo rollouts abort x -n y\n# &lt;done&gt;\n</code></pre>"
        "<p>Then.</p>",
    )


@pytest.mark.parametrize("source", ["~~not this~~", "~not this~"])
def test_strikethrough(source):
    same(md.render(f"do {source} now"), "<p>do <s>not this</s> now</p>")


def test_images_are_links_to_the_image():
    # The page's CSP is img-src 'self' and rollbot serves no images: a link, not an <img>.
    out = md.render(
        "![the canary graph](https://grafana.example.com/img.png) ![](img/a.png)\n\n"
        "[![badge](https://ci.example.com/b.svg)](https://ci.example.com)\n"
    )
    same(
        out,
        '<p><a href="https://grafana.example.com/img.png" rel="noopener noreferrer">'
        'the canary graph</a> <a href="img/a.png" rel="noopener noreferrer">img/a.png</a></p>'
        '<p><a href="https://ci.example.com" rel="noopener noreferrer">badge</a></p>',
    )
    assert "<img" not in out


def test_third_level_lists_nest():
    out = md.render("- one\n  - two\n    - three\n      1. four\n- back\n")
    same(
        out,
        "<ul><li>one<ul><li>two<ul><li>three<ol><li>four</li></ol></li></ul></li></ul></li>"
        "<li>back</li></ul>",
    )
    nesting = re.findall(r"</?[uo]l>", out)
    assert nesting[:4] == ["<ul>", "<ul>", "<ul>", "<ol>"]


def test_bare_urls_link_as_on_github():
    out = md.render("Dashboards: https://grafana.example.com/d/1 and www.example.com.\n")
    same(
        out,
        '<p>Dashboards: <a href="https://grafana.example.com/d/1" rel="noopener noreferrer">'
        'https://grafana.example.com/d/1</a> and <a href="http://www.example.com" '
        'rel="noopener noreferrer">www.example.com</a>.</p>',
    )
    same(md.render("`https://not.a.link`"), "<p><code>https://not.a.link</code></p>")


def test_hard_line_breaks():
    same(md.render("one  \ntwo\\\nthree\nfour"), "<p>one<br>two<br>three\nfour</p>")


# ── inline ──────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("source", "html"),
    [
        ("`a < b`", "<code>a &lt; b</code>"),
        ("`` a `b` ``", "<code>a `b`</code>"),
        ("**bold** and *it* and __b2__ and _i2_", "<strong>bold</strong> and <em>it</em> "
         "and <strong>b2</strong> and <em>i2</em>"),
        ("snake_case_name and 2*3*4", "snake_case_name and 2<em>3</em>4"),  # as on GitHub
        ("\\*not italic\\*", "*not italic*"),
        ("[docs](https://example.com/a_b?x=1&y=2)",
         '<a href="https://example.com/a_b?x=1&amp;y=2" rel="noopener noreferrer">docs</a>'),
        ("[up](../deploy/x.yaml)", '<a href="../deploy/x.yaml" rel="noopener noreferrer">up</a>'),
        ("[tier](#tier-1)", '<a href="#tier-1" rel="noopener noreferrer">tier</a>'),
        ("[mail](mailto:oncall@example.com)",
         '<a href="mailto:oncall@example.com" rel="noopener noreferrer">mail</a>'),
        ('[t](https://e.com "title")',
         '<a href="https://e.com" title="title" rel="noopener noreferrer">t</a>'),
        ("<https://e.com/x>", '<a href="https://e.com/x" rel="noopener noreferrer">'
         "https://e.com/x</a>"),
        ("**[bold link](#x)**",
         '<strong><a href="#x" rel="noopener noreferrer">bold link</a></strong>'),
        ("[`code` link](#x)", '<a href="#x" rel="noopener noreferrer"><code>code</code> link</a>'),
        ("[empty]()", '<a href="" rel="noopener noreferrer">empty</a>'),
        ("a [b] c", "a [b] c"),
        ("unclosed `tick", "unclosed `tick"),
    ],
)  # fmt: skip
def test_inline(source, html):
    same(md.render(source), f"<p>{html}</p>")
    same(md.inline(source), html)


def test_a_refused_link_shows_as_its_text():
    same(md.render("[x](javascript:alert(1))"), "<p>[x](javascript:alert(1))</p>")


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
    doc = md.parse(RUNBOOK.read_text())
    assert doc.front_matter is not None and "payment-router" in doc.front_matter
    out = md.render(doc, heading_offset=1)
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
