"""chats.rendering: message markdown → sanitised HTML, and the cache in front.

Also home of ``parse_html``, a small tree builder over ``html.parser`` that the
other page tests use to assert on the markup a browser would build (escaped
text stays text; only real tags become elements).
"""

from html.parser import HTMLParser

import pytest
from django.core.cache import cache
from django.utils.safestring import SafeString

from chats import rendering
from chats.rendering import render_many, render_markdown, sanitise

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
# Elements that run script, load a document or carry an executable payload.
DANGEROUS_TAGS = {"script", "iframe", "frame", "object", "embed", "svg", "math", "style", "form"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "srcset", "background"}


class Element:
    def __init__(self, tag, attrs, parent=None):
        self.tag = tag
        self.attr_list = list(attrs)  # every attribute, duplicates kept
        self.attrs = dict(attrs)
        self.parent = parent
        self.children = []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag=None, cls=None, **attrs):
        return [
            el
            for el in self.iter()
            if el is not self
            and (tag is None or el.tag == tag)
            and (cls is None or cls in el.classes)
            and all(el.attrs.get(name) == value for name, value in attrs.items())
        ]

    def find(self, tag=None, cls=None, **attrs):
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag or '*'}> class={cls!r} {attrs} in <{self.tag}>"
        return found[0]

    def by_id(self, id_):
        return self.find(id=id_)

    @property
    def text(self):
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def squashed(self):
        """The text with runs of whitespace made one space."""
        return " ".join(self.text.split())


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Element("#document", [])

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs, self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, attrs, self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse_html(html):
    """The element tree of ``html`` (bytes or text)."""
    if isinstance(html, bytes):
        html = html.decode()
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def unsafe_markup(root):
    """Every way ``root``'s subtree could run script: [(what, detail)]."""
    problems = []
    for element in root.iter():
        if element is root:
            continue
        if element.tag in DANGEROUS_TAGS:
            problems.append(("tag", element.tag))
        for name, value in element.attr_list:
            if name.startswith("on"):
                problems.append(("handler", f"{element.tag} {name}"))
            squeezed = "".join((value or "").split()).lower()
            if name in URL_ATTRIBUTES and squeezed.startswith(
                ("javascript:", "vbscript:", "data:")
            ):
                problems.append(("url", f"{element.tag} {name}={value}"))
            if name == "style":
                problems.append(("style", element.tag))
    return problems


XSS = (
    "<script>alert(1)</script>\n\n"
    "<img src=x onerror=alert(1)>\n\n"
    "[click](javascript:alert(1))\n\n"
    '<a href="javascript:alert(1)">x</a>\n\n'
    "<svg onload=alert(1)>\n\n"
    '<iframe src="https://evil.example/frame"></iframe>\n\n'
    "[upper](JaVaScRiPt:alert(1)) [entity](jav&#x61;script:alert(1)) "
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) "
    "![img](javascript:alert(1)) [vb](vbscript:msgbox(1))"
)


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


# markdown ------------------------------------------------------------------


def test_bold_table_and_code_block_render():
    text = (
        "Sales were **up 12%**.\n\n"
        "| region | total |\n|---|---:|\n| North | 1,200 |\n| South | 800 |\n\n"
        "```python\nprint(df[df.total < 1000])\n```\n"
    )

    root = parse_html(render_markdown(text))

    assert root.find("strong").text == "up 12%"
    table = root.find("table")
    assert [th.text for th in table.find_all("th")] == ["region", "total"]
    assert [[td.text for td in tr.find_all("td")] for tr in table.find("tbody").find_all("tr")] == [
        ["North", "1,200"],
        ["South", "800"],
    ]
    code = root.find("pre").find("code")
    assert code.attrs == {"class": "language-python"}
    assert code.text == "print(df[df.total < 1000])\n"


def test_output_is_marked_safe_and_markup_in_text_is_escaped():
    html = render_markdown("1 < 2 & <b>bold?</b>")

    assert isinstance(html, SafeString)
    assert html == "<p>1 &lt; 2 &amp; &lt;b&gt;bold?&lt;/b&gt;</p>\n"


def test_empty_and_none_render_empty():
    assert render_markdown("") == ""
    assert render_markdown(None) == ""


def test_http_links_kept_with_rel_and_external_images_without_source():
    root = parse_html(
        render_markdown("[docs](https://example.com/a?b=1) ![chart](https://x.org/c.png)")
    )

    link = root.find("a")
    assert link.attrs == {
        "href": "https://example.com/a?b=1",
        "rel": "noopener noreferrer nofollow",
    }
    # The image stays (its alt text shows) but is never fetched from x.org.
    assert root.find("img").attrs == {"alt": "chart"}


def test_markdown_with_every_payload_renders_inert():
    html = render_markdown(XSS)
    root = parse_html(html)

    assert unsafe_markup(root) == []
    assert root.find_all("a") == []  # none of the links had an allowed scheme
    assert root.find_all("img") == []
    # Raw HTML in a message is shown as text, not dropped: a reviewer sees it.
    assert "<script>alert(1)</script>" in root.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


# sanitise ------------------------------------------------------------------


@pytest.mark.parametrize(
    "dirty, clean",
    [
        ("<script>alert(1)</script><p>ok</p>", "<p>ok</p>"),
        ('<img src=x onerror="alert(1)">', '<img src="x">'),
        (
            '<a href="javascript:alert(1)" onclick="alert(2)">x</a>',
            '<a rel="noopener noreferrer nofollow">x</a>',
        ),
        (
            '<a href="  JaVaScRiPt:alert(1)">x</a>',
            '<a rel="noopener noreferrer nofollow">x</a>',
        ),
        ('<a href="jav&#x61;script:alert(1)">x</a>', '<a rel="noopener noreferrer nofollow">x</a>'),
        ("<svg onload=alert(1)><circle r=1></circle></svg>", ""),
        ('<iframe src="https://evil.example/"></iframe>after', "after"),
        ('<p style="background:url(javascript:alert(1))" class="x">p</p>', "<p>p</p>"),
        ("<object data=x.swf></object><embed src=x.swf>", ""),
        ('<form action="https://evil.example/"><input name=a></form>', ""),
        ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "<img>"),
        (
            '<a href="mailto:team@example.com" target="_blank">mail</a>',
            '<a href="mailto:team@example.com" rel="noopener noreferrer nofollow">mail</a>',
        ),
    ],
)
def test_sanitise(dirty, clean):
    assert sanitise(dirty) == clean


def test_sanitise_keeps_the_markdown_vocabulary():
    html = (
        "<h2>T</h2><p><strong>b</strong> <em>i</em> <del>d</del> <code>c</code><br></p>"
        "<blockquote><ul><li>x</li></ul><ol><li>y</li></ol></blockquote><hr>"
        "<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>d</td></tr></tbody></table>"
    )

    assert sanitise(html) == html


# render_many and its cache ------------------------------------------------------


def test_render_many_maps_each_text_to_its_html():
    result = render_many({"**a**", "_b_", ""})

    assert result == {"**a**": "<p><strong>a</strong></p>\n", "_b_": "<p><em>b</em></p>\n", "": ""}
    assert all(isinstance(html, SafeString) for html in result.values())


def test_render_many_renders_each_text_once_then_from_the_cache(monkeypatch):
    calls = []
    real = rendering._markdown.render

    def counting(text):
        calls.append(text)
        return real(text)

    monkeypatch.setattr(rendering._markdown, "render", counting)

    first = render_many({"one", "two"})
    second = render_many({"one", "two", "three"})

    assert sorted(calls) == ["one", "three", "two"]
    assert second["one"] == first["one"] == "<p>one</p>\n"
    assert second["three"] == "<p>three</p>\n"


def test_cached_html_is_still_the_sanitised_html():
    render_many({XSS})

    cached = render_many({XSS})[XSS]

    assert unsafe_markup(parse_html(cached)) == []
    assert cached == render_markdown(XSS)


def test_cache_keys_change_with_the_sanitiser_rules(monkeypatch):
    key = rendering._key("hello")
    assert key.startswith(rendering._config_prefix())
    assert key == rendering._key("hello") != rendering._key("hello!")

    monkeypatch.setattr(rendering, "TAGS", rendering.TAGS - {"img"})

    # HTML cached before an allow-list change is not served after it.
    assert rendering._config_prefix() != rendering._PREFIX


def test_render_many_uses_the_cache_under_its_keys():
    from_cache = "<p>served from the cache</p>"
    cache.set(rendering._key("cached text"), from_cache)

    assert render_many({"cached text"}) == {"cached text": from_cache}


# External images (#17.11) ------------------------------------------------------


@pytest.mark.parametrize(
    "src",
    [
        "https://evil.example/pixel.png",
        "http://evil.example/pixel.png",
        "HTTPS://evil.example/pixel.png",
        "  https://evil.example/pixel.png",
        "h\tttps://evil.example/pixel.png",
        "&#x68;ttps://evil.example/pixel.png",
        "//evil.example/pixel.png",
        "/\\evil.example/pixel.png",
        "\\\\evil.example/pixel.png",
        "/&#x5c;evil.example/pixel.png",
        "data:image/png;base64,iVBORw0KGgo=",
    ],
)
def test_an_external_image_loses_its_source_in_report_html(src):
    html = sanitise(f'<p>chart <img src="{src}" alt="chart"></p>')

    assert html == '<p>chart <img alt="chart"></p>'
    assert "evil.example" not in html


@pytest.mark.parametrize("src", ["x.png", "/static/figures/chart.png", "figures/a.png?v=2"])
def test_an_image_on_this_site_keeps_its_source(src):
    assert sanitise(f'<img src="{src}" alt="a">') == f'<img src="{src}" alt="a">'


def test_an_external_image_in_markdown_loses_its_source():
    html = render_markdown(
        "![pixel](https://evil.example/p.png) ![proto](//evil.example/q.png) ![ok](/static/x.png)"
    )
    root = parse_html(html)

    assert [img.attrs.get("src") for img in root.find_all("img")] == [None, None, "/static/x.png"]
    assert "evil.example" not in html
    # Links to other sites stay links: only fetching on view is refused.
    assert 'href="https://evil.example/"' in render_markdown("[site](https://evil.example/)")
