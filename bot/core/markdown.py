"""A small, safe Markdown → HTML renderer for runbooks.

Runbooks are written by people with repository access and shown on pages that carry
buttons, so the renderer is an allow-list, not a sanitiser: every piece of text is
HTML-escaped, the only tags produced are the ones below, the only attributes are `id`
(headings), `href`/`rel` (links), `class` (code language, table alignment) and `start`
(ordered lists). Raw HTML in the source is shown as text. Links keep only http, https and
mailto URLs, relative paths and `#anchors`; anything else (javascript:, data:, vbscript:,
a URL with control characters or whitespace) is rendered as its text.

Supported, as runbooks use it:

- YAML front matter between `---` lines at the very top (`split_front_matter`);
- ATX headings `#`…`######` (ids from their text, unique per document);
- paragraphs; blockquotes (`>`, any block inside); horizontal rules (`---`, `***`, `___`);
- fenced code blocks (``` or ~~~, with a language), shown verbatim;
- unordered (`-`, `*`, `+`) and ordered (`1.`, `1)`) lists, with one level of nesting;
- GFM pipe tables, with `:--`/`:-:`/`--:` alignment and `\\|` in cells;
- inline: `code`, **bold**, *italic*, [links](url), <https://autolinks>, backslash escapes.

Pure: no I/O, standard library only.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

__all__ = ["render", "safe_href", "slug", "split_front_matter"]

# ── front matter ───────────────────────────────────────────────────────────────────────


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(front matter text or None, the body). Front matter is a block that starts on the
    very first line with `---` and ends at the next line that is `---` or `...`."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n").rstrip() != "---":
        return None, text
    for i in range(1, len(lines)):
        if lines[i].rstrip("\r\n").rstrip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1 :])
    return None, text  # never closed: not front matter


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


# ── inline ─────────────────────────────────────────────────────────────────────────────

# Placeholders for pre-rendered pieces: private-use characters removed from the input first.
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_ESCAPABLE = set("\\`*_{}[]()#+-.!|<>~\"'&")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^\s<>]+)>", re.IGNORECASE)
_STRONG = [
    re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"),
    re.compile(r"(?<![\w_])__(?=\S)(.+?)(?<=\S)__(?![\w_])"),
]
_EM = [
    re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"),
    re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"),
]


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


class _Inline:
    """Renders one run of inline text; collects pre-rendered pieces as placeholders."""

    def __init__(self, *, links: bool = True) -> None:
        self.pieces: list[str] = []
        self.links = links

    def _hold(self, rendered: str) -> str:
        self.pieces.append(rendered)
        return f"{_OPEN}{len(self.pieces) - 1}{_CLOSE}"

    def render(self, text: str) -> str:
        text = text.replace(_OPEN, "\ufffd").replace(_CLOSE, "\ufffd")
        out: list[str] = []
        i, n = 0, len(text)
        plain_start = 0

        def flush(upto: int) -> None:
            if upto > plain_start:
                out.append(_esc(text[plain_start:upto]))

        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n and text[i + 1] in _ESCAPABLE:
                flush(i)
                out.append(self._hold(_esc(text[i + 1])))
                i += 2
                plain_start = i
                continue
            if c == "`":
                end, code = self._code_span(text, i)
                if end is not None:
                    flush(i)
                    out.append(self._hold(f"<code>{_esc(code)}</code>"))
                    i = plain_start = end
                    continue
                run = len(text[i:]) - len(text[i:].lstrip("`"))
                i += max(run, 1)  # an unmatched run of backticks is literal text
                continue
            if c == "<":
                match = _AUTOLINK.match(text, i)
                if match is not None and self.links:
                    url = match.group(1)
                    href = safe_href(url)
                    if href is not None:
                        flush(i)
                        out.append(self._hold(_anchor(href, _esc(url))))
                        i = plain_start = match.end()
                        continue
            if c == "[" and self.links:
                parsed = self._link(text, i)
                if parsed is not None:
                    end, label, url = parsed
                    flush(i)
                    inner = _Inline(links=False)
                    label_html = inner.finish(inner.render(label))
                    href = safe_href(url)
                    if href is None:  # not a URL we link to: show what was written
                        out.append(self._hold(f"{label_html} ({_esc(url)})"))
                    else:
                        out.append(self._hold(_anchor(href, label_html)))
                    i = plain_start = end
                    continue
            i += 1
        flush(n)
        return _emphasis("".join(out))

    def finish(self, rendered: str) -> str:
        # Pieces can hold placeholders of earlier pieces only through nested _Inline
        # objects, which finish themselves; one pass suffices.
        return _PLACEHOLDER.sub(lambda m: self.pieces[int(m.group(1))], rendered)

    @staticmethod
    def _code_span(text: str, start: int) -> tuple[int | None, str]:
        run = len(text[start:]) - len(text[start:].lstrip("`"))
        fence = "`" * run
        j = start + run
        while True:
            k = text.find(fence, j)
            if k < 0:
                return None, ""
            after = k + run
            if after < len(text) and text[after] == "`":  # a longer run: not our closer
                j = after + len(text[after:]) - len(text[after:].lstrip("`"))
                continue
            code = text[start + run : k].replace("\n", " ")
            if len(code) > 2 and code[0] == " " and code[-1] == " " and code.strip():
                code = code[1:-1]
            return after, code

    @staticmethod
    def _link(text: str, start: int) -> tuple[int, str, str] | None:
        depth, j, n = 0, start, len(text)
        while j < n:
            ch = text[j]
            if ch == "\\":
                j += 2
                continue
            if ch == "`":  # brackets inside code spans do not count
                end, _ = _Inline._code_span(text, j)
                if end is not None:
                    j = end
                    continue
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        else:
            return None
        label = text[start + 1 : j]
        if j + 1 >= n or text[j + 1] != "(":
            return None
        k = j + 2
        parens = 0
        while k < n:
            ch = text[k]
            if ch == "\\":
                k += 2
                continue
            if ch == "(":
                parens += 1
            elif ch == ")":
                if parens == 0:
                    break
                parens -= 1
            k += 1
        else:
            return None
        target = text[j + 2 : k].strip()
        title = re.match(r'^(\S+)\s+(?:"[^"]*"|\'[^\']*\')$', target)
        url = title.group(1) if title else target
        if url.startswith("<") and url.endswith(">"):
            url = url[1:-1]
        return k + 1, label, url


def _anchor(href: str, label_html: str) -> str:
    external = href.lower().startswith(("http:", "https:", "//"))
    rel = ' rel="noopener noreferrer"' if external else ""
    return f'<a href="{_esc(href)}"{rel}>{label_html}</a>'


def _emphasis(escaped: str) -> str:
    """Bold and italic over already-escaped text (`*` and `_` are never escaped)."""
    for pattern in _STRONG:
        escaped = pattern.sub(r"<strong>\1</strong>", escaped)
    for pattern in _EM:
        escaped = pattern.sub(r"<em>\1</em>", escaped)
    return escaped


def inline(text: str) -> str:
    """One run of inline Markdown as safe HTML."""
    renderer = _Inline()
    return renderer.finish(renderer.render(text))


# ── blocks ─────────────────────────────────────────────────────────────────────────────

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$")
_HR = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")
_QUOTE = re.compile(r"^ {0,3}> ?(.*)$")
_BULLET = re.compile(r"^( *)([-*+])[ \t]+(.*)$")
_ORDERED = re.compile(r"^( *)(\d{1,9})([.)])[ \t]+(.*)$")
_TABLE_DELIM = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_LANG = re.compile(r"[^A-Za-z0-9_+\-]")


def slug(text: str) -> str:
    """A heading's id, GitHub style: lower case, punctuation dropped, spaces → hyphens."""
    plain = re.sub(r"[`*_\[\]()]", "", text).strip().lower()
    plain = re.sub(r"[^\w\- ]", "", plain)
    return re.sub(r" ", "-", plain) or "section"


@dataclass
class _Doc:
    heading_offset: int = 0
    ids: dict[str, int] = field(default_factory=dict)

    def unique(self, base: str) -> str:
        count = self.ids.get(base, 0)
        self.ids[base] = count + 1
        return base if count == 0 else f"{base}-{count}"


def _starts_block(line: str) -> bool:
    return bool(
        _HEADING.match(line)
        or _FENCE.match(line)
        or _HR.match(line)
        or _QUOTE.match(line)
        or _list_marker(line)
    )


def _list_marker(line: str) -> tuple[int, str, int | None, str] | None:
    """(indent, kind "ul"/"ol", start number, text) of a list item line, else None."""
    bullet = _BULLET.match(line)
    if bullet is not None and not _HR.match(line):
        return len(bullet.group(1)), "ul", None, bullet.group(3)
    ordered = _ORDERED.match(line)
    if ordered is not None:
        return len(ordered.group(1)), "ol", int(ordered.group(2)), ordered.group(4)
    return None


def _split_row(line: str) -> list[str]:
    row = line.strip()
    row = row.removeprefix("|")
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    cells, current, i = [], [], 0
    while i < len(row):
        ch = row[i]
        if ch == "\\" and i + 1 < len(row) and row[i + 1] == "|":
            current.append("|")
            i += 2
            continue
        if ch == "|":
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    cells.append("".join(current).strip())
    return cells


def _fenced(lines: list[str], i: int) -> tuple[str, int]:
    """The fenced code block opening at line `i`, and the index after its closing fence.
    The opening fence's indentation is removed from its lines (as in a list item)."""
    fence = _FENCE.match(lines[i].lstrip(" "))
    assert fence is not None
    marker, lang = fence.group(2), fence.group(3)
    indent = len(lines[i]) - len(lines[i].lstrip(" "))
    closer = re.compile(rf"^ *{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
    body: list[str] = []
    i += 1
    while i < len(lines) and not closer.match(lines[i]):
        text = lines[i]
        strip = min(indent, len(text) - len(text.lstrip(" ")))
        body.append(text[strip:])
        i += 1
    if i >= len(lines):  # never closed: it runs to the end, less the trailing blank lines
        while body and not body[-1].strip():
            body.pop()
    lang_cls = _LANG.sub("", lang)[:32]
    cls = f' class="language-{lang_cls}"' if lang_cls else ""
    code = _esc("\n".join(body) + ("\n" if body else ""))
    return f"<pre><code{cls}>{code}</code></pre>", i + 1  # past the closer (or the end)


def _render_blocks(lines: list[str], doc: _Doc) -> list[str]:
    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if _FENCE.match(line):
            code_html, i = _fenced(lines, i)
            out.append(code_html)
            continue
        heading = _HEADING.match(line)
        if heading is not None:
            level = min(6, len(heading.group(1)) + doc.heading_offset)
            text = (heading.group(2) or "").strip()
            hid = doc.unique(slug(text))
            out.append(f'<h{level} id="{_esc(hid)}">{inline(text)}</h{level}>')
            i += 1
            continue
        if _HR.match(line):
            out.append("<hr>")
            i += 1
            continue
        if _QUOTE.match(line):
            quoted: list[str] = []
            while i < n and lines[i].strip():
                match = _QUOTE.match(lines[i])
                quoted.append(match.group(1) if match is not None else lines[i])
                i += 1
            inner = "\n".join(_render_blocks(quoted, doc))
            out.append(f"<blockquote>\n{inner}\n</blockquote>")
            continue
        if "|" in line and i + 1 < n and _TABLE_DELIM.match(lines[i + 1]):
            header = _split_row(line)
            delims = _split_row(lines[i + 1])
            if len(delims) == len(header):
                i = _table(lines, i, header, delims, out)
                continue
        if _list_marker(line) is not None:
            i = _list(lines, i, out)
            continue
        para: list[str] = [line.strip()]
        i += 1
        while i < n and lines[i].strip() and not _starts_block(lines[i]):
            if "|" in lines[i] and i + 1 < n and _TABLE_DELIM.match(lines[i + 1]):
                break
            para.append(lines[i].strip())
            i += 1
        out.append(f"<p>{inline(chr(10).join(para))}</p>")
    return out


def _table(lines: list[str], i: int, header: list[str], delims: list[str], out: list[str]) -> int:
    aligns: list[str] = []
    for d in delims:
        d = d.strip()
        left, right = d.startswith(":"), d.endswith(":")
        aligns.append("center" if left and right else "right" if right else "left" if left else "")

    def cells(row: list[str], tag: str) -> str:
        row = (row + [""] * len(header))[: len(header)]
        parts = []
        for text, align in zip(row, aligns, strict=True):
            cls = f' class="align-{align}"' if align else ""
            parts.append(f"<{tag}{cls}>{inline(text)}</{tag}>")
        return "<tr>" + "".join(parts) + "</tr>"

    rows = [f"<thead>{cells(header, 'th')}</thead>"]
    body: list[str] = []
    i += 2
    while i < len(lines) and lines[i].strip() and "|" in lines[i]:
        body.append(cells(_split_row(lines[i]), "td"))
        i += 1
    if body:
        rows.append("<tbody>" + "".join(body) + "</tbody>")
    out.append("<table>" + "".join(rows) + "</table>")
    return i


@dataclass
class _Item:
    text: list[str]
    children: list[tuple[str, int | None, list[str]]] = field(default_factory=list)
    code: list[str] = field(default_factory=list)  # fenced blocks inside the item, rendered


def _list(lines: list[str], i: int, out: list[str]) -> int:
    first = _list_marker(lines[i])
    assert first is not None
    base_indent, kind, start, _ = first
    items: list[_Item] = []
    n = len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            # A blank line ends the list unless the next line continues it.
            j = i + 1
            while j < n and not lines[j].strip():
                j += 1
            nxt = _list_marker(lines[j]) if j < n else None
            indented = j < n and len(lines[j]) - len(lines[j].lstrip(" ")) > base_indent
            if nxt is not None and (nxt[0] > base_indent or nxt[1] == kind):
                i = j
                continue
            if indented and nxt is None and items:
                i = j
                continue
            break
        marker = _list_marker(line)
        indent = len(line) - len(line.lstrip(" "))
        if items and indent > base_indent and _FENCE.match(line.lstrip(" ")):
            code_html, i = _fenced(lines, i)
            items[-1].code.append(code_html)
            continue
        if marker is not None and marker[0] <= base_indent + 1:
            if marker[1] != kind:
                break  # another kind of list starts here
            items.append(_Item([marker[3]]))
            i += 1
            continue
        if marker is not None and items:  # nested (one level; deeper items flatten into it)
            sub = items[-1].children
            if not sub or sub[-1][0] != marker[1]:
                sub.append((marker[1], marker[2], []))
            sub[-1][2].append(marker[3])
            i += 1
            continue
        if items and (indent > base_indent or not _starts_block(line)):
            target = items[-1]
            if target.children and indent > base_indent + 1:
                target.children[-1][2][-1] += "\n" + line.strip()
            else:
                target.text.append(line.strip())
            i += 1
            continue
        break
    start_attr = f' start="{start}"' if kind == "ol" and start not in (None, 1) else ""
    parts = [f"<{kind}{start_attr}>"]
    for item in items:
        body = inline("\n".join(item.text))
        for sub_kind, sub_start, texts in item.children:
            sub_attr = (
                f' start="{sub_start}"' if sub_kind == "ol" and sub_start not in (None, 1) else ""
            )
            li = "".join(f"<li>{inline(t)}</li>" for t in texts)
            body += f"<{sub_kind}{sub_attr}>{li}</{sub_kind}>"
        body += "".join(item.code)
        parts.append(f"<li>{body}</li>")
    parts.append(f"</{kind}>")
    out.append("".join(parts))
    return i


def render(markdown: str, *, heading_offset: int = 0) -> str:
    """The Markdown body (no front matter: see `split_front_matter`) as safe HTML.

    `heading_offset` shifts heading levels down (1: `#` becomes `<h2>`), so the page
    around the runbook keeps its own `<h1>`."""
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").expandtabs(4).split("\n")
    doc = _Doc(heading_offset=max(0, heading_offset))
    return "\n".join(_render_blocks(lines, doc)) + "\n"
