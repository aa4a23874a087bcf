"""Text from params, data or errors made safe to render: the one place the report escapes it.

Ids are checked where they are declared (helpers/config/base.py), but group values, file names,
sources and error messages come from data and users: every such value goes through `md` inside
Markdown (notebook cells, the stitched report) or `html_text` inside raw HTML, so it shows as
text and can neither add markup (`<img onerror=...>`, `<script>`) nor break the page around it.
"""
from __future__ import annotations

import html
import re
from typing import Any

# Markdown punctuation that could start emphasis, code, links, headings or tables mid-line.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def html_text(value: Any) -> str:
    """A value as literal text inside HTML."""
    return html.escape(str(value))


def md(value: Any) -> str:
    """A value as literal text inside Markdown: its Markdown punctuation backslash-escaped, then
    HTML-escaped (Markdown passes raw HTML through)."""
    return html_text(MARKDOWN_SPECIAL.sub(r"\\\1", str(value)))
