"""The placeholders of template text, and template text shown highlighted.

A placeholder is a name in braces, ``{goal}``: what the assistant (or the
text-to-SQL app) fills in when it uses the template. Highlighted output is
escaped text with only our own markup: ``<mark>`` around placeholders, and
Pygments' spans (Pygments escapes the SQL) for SQL.
"""

import re

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import inherit
from pygments.lexers import SqlLexer
from pygments.token import Name

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The CSS class of highlighted SQL; static/css/sql-highlight.css styles it.
SQL_CSS_CLASS = "sql-highlight"


def placeholders(text):
    """The distinct placeholder names of ``text``, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text or "")))


def highlight_placeholders(text):
    """``text`` escaped, each placeholder wrapped in ``<mark class="placeholder">``."""
    text = text or ""
    pieces = []
    start = 0
    for match in PLACEHOLDER.finditer(text):
        pieces.append((text[start : match.start()], match.group(0)))
        start = match.end()
    marked = format_html_join("", '{}<mark class="placeholder">{}</mark>', pieces)
    return format_html("{}{}", marked, text[start:])


class TemplateSqlLexer(SqlLexer):
    """SQL whose ``{placeholders}`` are variables, not syntax errors."""

    tokens = {"root": [(PLACEHOLDER.pattern, Name.Variable), inherit]}


def highlight_sql(sql):
    """``sql`` as Pygments' HTML: escaped, in ``<div class="sql-highlight">``."""
    formatter = HtmlFormatter(cssclass=SQL_CSS_CLASS)
    # Pygments escapes every character of the source it emits.
    return mark_safe(highlight(sql or "", TemplateSqlLexer(), formatter))  # noqa: S308


def sql_style_defs():
    """The CSS of highlighted SQL's tokens, scoped to its class; generated
    into static/css/sql-highlight.css (``python -m core.template_text``)."""
    formatter = HtmlFormatter(style="default")
    selector = f".{SQL_CSS_CLASS}"
    return "\n".join(
        [
            *formatter.get_background_style_defs(selector),
            *formatter.get_token_style_defs(selector),
        ]
    )


if __name__ == "__main__":
    print(sql_style_defs())
