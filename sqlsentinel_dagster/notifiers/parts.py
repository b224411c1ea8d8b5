"""Split messages into parts that each fit a channel's limits, and shorten a message too big on its own.

One function for every channel: the channel says how big a part would be (a ``measure``: named sizes such as
``{"blocks": 12, "bytes": 23_000}``) and how big it may be (``limits``, the same names), and
:func:`split_parts` returns the parts in order, each numbered (``part 2 of 5``). Parts are greedy and as large
as fit: each is found by doubling then halving its length, so a batch of ``n`` messages is measured
``O(n log n)`` in all. A message that does not fit even alone is shortened (:func:`shorten`): its longest texts
and lists are cut, each cut text ending in :data:`CUT`, and the paths cut are listed under its ``cut`` key.

A measure must grow with the part: a part's first ``k`` messages never measure more than the part.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CUT",
    "KEPT_WHOLE",
    "SHORTEN_WIDTHS",
    "Measure",
    "Part",
    "cut_text",
    "fit",
    "over_limits",
    "shorten",
    "split_parts",
]

CUT = "…cut"
"""The marker ending a text that was cut to fit a channel's limit."""

SHORTEN_WIDTHS = (4096, 1024, 256, 64, 16)
"""The widths tried in turn on a message too big on its own: texts cut to this many characters, lists to
a sixteenth as many items (at least one)."""

KEPT_WHOLE = frozenset({"idempotency_key", "run_id", "run_url", "event", "status", "severity", "timestamp"})
"""Keys of a message never cut: identities, links and the short words every channel shows."""


@dataclass(frozen=True)
class Part:
    """Some of the messages of one grouped send, as one channel message: ``number`` of ``total``."""

    messages: tuple[Mapping[str, Any], ...]
    positions: tuple[int, ...]
    """Where each message stands in the list that was split (a shortened message keeps its position)."""
    number: int = 1
    total: int = 1

    @property
    def label(self) -> str:
        """``part 2 of 5``, or empty when the messages fit in one part."""
        return f"part {self.number} of {self.total}" if self.total > 1 else ""

    def only(self, positions: Collection[int]) -> Part:
        """The part with only the messages at ``positions`` (e.g. those claimed), numbered as before."""
        wanted = set(positions)
        kept = [(m, p) for m, p in zip(self.messages, self.positions, strict=True) if p in wanted]
        return Part(tuple(m for m, _ in kept), tuple(p for _, p in kept), self.number, self.total)


Measure = Callable[[Part], Mapping[str, int]]
"""How big a part would be as the channel sends it, by limit name."""


def over_limits(sizes: Mapping[str, int], limits: Mapping[str, int]) -> list[str]:
    """The limits ``sizes`` exceed, as ``name size > limit``; empty when it fits."""
    return [f"{name} {sizes[name]:,} > {limit:,}" for name, limit in limits.items() if sizes.get(name, 0) > limit]


def split_parts(messages: Sequence[Mapping[str, Any]], measure: Measure, limits: Mapping[str, int]) -> list[Part]:
    """``messages`` in order, as parts that each fit ``limits`` by ``measure``; every message is in exactly one
    part, shortened when it does not fit even alone (it is then sent as short as :func:`shorten` gets it,
    even if still over: the channel's answer says so)."""
    items = list(messages)
    count = len(items)

    def fits(start: int, length: int) -> bool:
        # numbered as the last of as many parts as messages: the longest label a real part can have
        part = Part(tuple(items[start : start + length]), tuple(range(start, start + length)), count, count)
        return not over_limits(measure(part), limits)

    spans: list[tuple[int, int]] = []
    start = 0
    while start < count:
        if not fits(start, 1):
            items[start] = _shortest_fitting(items[start], start, count, measure, limits)
        good, bad = 1, None  # good messages fit; bad do not (None: not found yet)
        while bad is None and start + good < count:
            trial = min(good * 2, count - start)
            if fits(start, trial):
                good = trial
            else:
                bad = trial
        while bad is not None and bad - good > 1:
            middle = (good + bad) // 2
            good, bad = (middle, bad) if fits(start, middle) else (good, middle)
        spans.append((start, good))
        start += good
    return [
        Part(tuple(items[s : s + n]), tuple(range(s, s + n)), number, len(spans))
        for number, (s, n) in enumerate(spans, start=1)
    ]


def fit(message: Mapping[str, Any], measure: Measure, limits: Mapping[str, int]) -> Mapping[str, Any]:
    """``message``, shortened if it is over ``limits`` as one message of its own (e.g. for a channel's ``send``)."""
    return split_parts([message], measure, limits)[0].messages[0]


def shorten(message: Mapping[str, Any], width: int) -> dict[str, Any]:
    """``message`` with every text longer than ``width`` cut (ending in :data:`CUT`), every list cut to
    ``width // 16`` items (at least one) and mapping keys cut like texts; :data:`KEPT_WHOLE` keys stay whole. The
    paths cut are listed under ``cut`` (``context.note``, ``rows``, ``rows[].comment``)."""
    cut: dict[str, None] = {}
    items = max(1, width // 16)

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, str):
            if len(value) <= width:
                return value
            cut[path] = None
            return value[:width] + CUT
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, inner in value.items():
                name = walk(str(key), path) if len(str(key)) > width else str(key)
                while name in out:  # two keys alike once cut
                    name += "~"
                out[name] = walk(inner, f"{path}.{key}" if path else str(key))
            return out
        if isinstance(value, list | tuple):
            if len(value) > items:
                cut[path] = None
            return [walk(inner, f"{path}[]") for inner in value[:items]]
        return value

    shortened = {
        key: value if key in KEPT_WHOLE else walk(value, key) for key, value in message.items() if key != "cut"
    }
    paths = list(dict.fromkeys([*(str(p) for p in message.get("cut") or []), *cut]))
    if paths:
        shortened["cut"] = paths
    return shortened


def cut_text(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start ending in :data:`CUT`, ``limit`` in all."""
    return text if len(text) <= limit else text[: max(0, limit - len(CUT))] + CUT


def _shortest_fitting(
    message: Mapping[str, Any], position: int, count: int, measure: Measure, limits: Mapping[str, int]
) -> Mapping[str, Any]:
    """``message`` shortened at each of :data:`SHORTEN_WIDTHS` until it fits alone; the shortest when none does."""
    shortened: Mapping[str, Any] = message
    for width in SHORTEN_WIDTHS:
        shortened = shorten(message, width)
        if not over_limits(measure(Part((shortened,), (position,), count, count)), limits):
            break
    return shortened
