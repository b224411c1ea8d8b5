"""Keep secrets out of messages: redact passwords in URLs and any known secret values."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["redact_text", "redact_url"]

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)(?P<tail>@)")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***\g<tail>", url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Redact URL passwords in ``text`` and every occurrence of each non-empty string in ``secrets``."""
    text = redact_url(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
