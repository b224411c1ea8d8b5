"""Values from queries are data in every channel: each channel's escaping, in one place.

What a message holds comes from three places: the alerts file (names, descriptions, templates: config), this
package (event words, counts, links to runs) and the warehouse or Dagster (values, context, rows, column
names, errors, a watched check's description: data). Every channel shows data as data:

- Slack (mrkdwn, :func:`mrkdwn`): ``&``, ``<`` and ``>`` become ``&amp;``, ``&lt;`` and ``&gt;`` (so no
  ``<!channel>``, ``<@user>`` or ``<http://x|disguised link>`` can form), and a backtick becomes U+02CB MODIFIER
  LETTER GRAVE ACCENT (which looks alike) so data can neither open nor close a code span or block.
  Every value of the message is escaped, alert names and descriptions included: in watch mode they carry asset
  keys and check descriptions from Dagster, and a ``text:`` template's own text stays live mrkdwn for a team
  that wants formatting. ``*``, ``_`` and ``~`` in data may still make it bold, italic or struck through: they
  cannot hide, link or mention anything.
- Microsoft Teams (Adaptive Card markdown, :func:`teams_markdown`): a WORD JOINER (U+2060, invisible) follows
  every ``]``, so no link, image or link definition (``[text](url)``, ``![x](y)``, ``[x]: url``) can form.
  Backslash escapes are not used: several Teams clients show the backslashes. Emphasis and list markers are
  left alone, as in Slack.
- Email: the HTML part escapes every value (``html.escape``); the plain-text part and the subject are plain text
  (the subject on one line). CSV attachments (:func:`csv_cell`) follow OWASP's advice on CSV injection: a text
  cell starting with ``=``, ``+``, ``-``, ``@`` or a control character (tab, CR, LF, ...) gets a leading ``'``,
  so no spreadsheet reads it as a formula; numbers stay numbers, and so does text that is exactly a decimal
  number (``-5``, ``+3.2``, ``1e-3``): a spreadsheet reads it as that number and nothing else.
- Webhook: the default body is JSON made by ``json.dumps`` (nothing to escape); a ``body:`` template that is
  JSON (it renders as JSON with sample values) gets data escaped for a JSON string (:func:`json_string`), so a
  value cannot end its string and add keys. Output of ``tojson`` and other escaping filters is left as it is.
- PagerDuty: the event is JSON made by ``json.dumps``; ``custom_details`` hold data as JSON values.
- Log: data cannot start a line of its own (:func:`log_line`): line breaks and other control characters are
  shown as ``\\n``, ``\\r``, ``\\x1b``.

``${VAR}`` values in templates are config (an operator sets them), never escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["csv_cell", "escape_values", "json_string", "log_line", "mrkdwn", "teams_markdown"]

_MRKDWN = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "\N{MODIFIER LETTER GRAVE ACCENT}"})
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_FORMULA_START = ("=", "+", "-", "@")
_CONTROL = {c: repr(chr(c))[1:-1] for c in (*range(32), 127) if c != 9}
"""Control characters (tab excepted) as their Python escapes: ``\\n``, ``\\x1b``."""


def mrkdwn(text: str) -> str:
    """``text`` shown as itself in Slack mrkdwn: ``&<>`` as entities, backticks as U+02CB (alike)."""
    return text.translate(_MRKDWN)


def teams_markdown(text: str) -> str:
    """``text`` that cannot form a link in Teams' Adaptive Card markdown: a WORD JOINER after every ``]``."""
    return text.replace("]", "]\N{WORD JOINER}")


def csv_cell(value: Any) -> Any:
    """A CSV cell no spreadsheet reads as a formula (OWASP): text starting with ``= + - @`` or a control
    character gets a leading ``'``, unless it is exactly a decimal number; other values are kept."""
    if not isinstance(value, str) or not value or _NUMBER.fullmatch(value):
        return value
    if value.startswith(_FORMULA_START) or ord(value[0]) < 32 or value[0] == "\x7f":
        return "'" + value
    return value


def json_string(text: str) -> str:
    """``text`` escaped for the inside of a JSON string (quotes, backslashes and control characters)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def log_line(text: str) -> str:
    """``text`` on one line: line breaks and other control characters (tab excepted) as ``\\n``, ``\\x1b``."""
    return text.translate(_CONTROL)


def escape_values(value: Any, escape: Callable[[str], str]) -> Any:
    """``value`` (a message, or anything in it) with every text, and every mapping key, passed through
    ``escape``; numbers, booleans and None are kept; tuples become lists."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, Mapping):
        return {escape(str(k)): escape_values(v, escape) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_values(v, escape) for v in value]
    return value
