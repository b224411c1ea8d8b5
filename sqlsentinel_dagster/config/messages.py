"""Turn pydantic errors into messages that say where the problem is and what is allowed."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel

from .models import CHANNELS, AlertsFile
from .routes import SET_BY_LOADER
from .targets import RECEIVER_TAG

__all__ = ["describe_error", "display_location"]

_ROUTES_FORMS = ("by_severity", "list")
"""The tags of the two forms of ``routes:`` (see ``models.Routes``), which pydantic puts in error locations."""


def display_location(path: tuple[Any, ...], data: Any) -> str:
    """``alerts[2] (orders_late).notify[0].channel`` for ``('alerts', 2, 'notify', 0, 'channel')``."""
    text = ""
    node = data
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if text.startswith("alerts[") and text.count("[") == 1 and isinstance(node, dict):
                name = node.get("name")
                if isinstance(name, str) and name:
                    text += f" ({name})"
        else:
            key = str(part) if str(part).isidentifier() else f'"{part}"'
            text += f".{key}" if text else key
            node = node.get(part) if isinstance(node, dict) else None
    return text


def describe_error(error: Any) -> tuple[tuple[Any, ...], str]:
    """Return the data path of a pydantic error (discriminator tags removed) and a readable message."""
    loc = tuple(error["loc"])
    path = tuple(part for i, part in enumerate(loc) if not _is_union_tag(loc, i) and part != "[key]")
    tag = next((part for i, part in enumerate(loc) if _is_union_tag(loc, i)), None)
    kind, given = error["type"], error.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1], tag)
        key = str(path[-1])
        listing = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return path, f"unknown key '{key}'{listing}{_did_you_mean(key, allowed)}"
    if kind == "missing":
        return path, f"required key '{path[-1]}' is missing"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "")
        return (*path, "channel"), (
            f"unknown channel '{tag}'; allowed: {', '.join(CHANNELS)}{_did_you_mean(str(tag), list(CHANNELS))}"
        )
    if kind == "union_tag_not_found":
        return path, f"missing 'channel' (or write a receiver's name); channels: {', '.join(CHANNELS)}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return path, f"invalid value {given!r}; allowed: {expected}"
    if kind == "value_error":
        return path, str(error["msg"]).removeprefix("Value error, ")
    if kind in {
        "string_type",
        "bool_parsing",
        "bool_type",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
    }:
        expected = {
            "string_type": "a string",
            "bool_parsing": "true or false",
            "bool_type": "true or false",
            "list_type": "a list",
            "dict_type": "a mapping",
        }.get(kind, "a mapping")
        hint = (
            " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote the value)"
            if (kind == "string_type" and isinstance(given, bool))
            else ""
        )
        return path, f"expected {expected}, got {type(given).__name__} {given!r}{hint}"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = error.get("ctx", {}).get("ge", error.get("ctx", {}).get("le"))
        word = "at least" if kind == "greater_than_equal" else "at most"
        return path, f"must be {word} {bound}, got {given!r}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return path, f"expected a whole number, got {given!r}"
    if kind in ("too_short", "string_too_short"):
        return path, "must not be empty"
    if kind == "too_long":
        limit = error.get("ctx", {}).get("max_length")
        return path, f"at most {limit} items, got {len(given) if isinstance(given, list) else given!r}"
    if kind == "string_too_long":
        limit = error.get("ctx", {}).get("max_length")
        return path, f"at most {limit} characters (the alert state stores names up to that), got {len(given)}"
    return path, str(error["msg"])


def _is_union_tag(loc: tuple[Any, ...], index: int) -> bool:
    """Pydantic puts the chosen union member's tag in the location (``notify.0.slack.url``, ``routes.list.0``):
    not a data key."""
    if index == 1 and loc[0] == "routes" and loc[index] in _ROUTES_FORMS:
        return True
    in_list = any(key in loc[:index] for key in ("notify", "fallback", "receivers"))
    tags = (*CHANNELS, RECEIVER_TAG)
    return index > 0 and isinstance(loc[index - 1], int) and loc[index] in tags and in_list


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _allowed_keys(path: tuple[Any, ...], channel: str | None) -> list[str]:
    """The keys allowed at ``path``, found by walking the model types (``channel`` picks a notify target)."""
    current: Any = AlertsFile
    for part in path:
        current = _step(current, part, channel)
        if current is None:
            return []
    current = _unwrap(current, channel)
    if isinstance(current, type) and issubclass(current, BaseModel):
        fields = current.model_fields.items()
        return sorted(info.alias or name for name, info in fields if name not in SET_BY_LOADER)
    return []


def _step(tp: Any, part: Any, channel: str | None) -> Any:
    tp = _unwrap(tp, channel)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = next((f for n, f in tp.model_fields.items() if (f.alias or n) == str(part)), None)
        return field.annotation if field is not None else None
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # e.g. routes: a mapping or a list
        wanted = list if isinstance(part, int) else dict
        tp = next((_strip(a) for a in typing.get_args(tp) if typing.get_origin(_strip(a)) is wanted), None)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list and isinstance(part, int):
        return args[0]
    if origin is dict:
        return args[1]
    return None


def _unwrap(tp: Any, channel: str | None) -> Any:
    """Strip ``Annotated`` and ``Optional``; pick the notify target whose ``channel`` is ``channel``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [_strip(a) for a in typing.get_args(tp) if a is not type(None)]
            if len(options) > 1:
                options = [a for a in options if _channel_of(a) == channel]
            if len(options) != 1:
                return tp
            tp = options[0]
        else:
            return tp


def _strip(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp


def _channel_of(tp: Any) -> Any:
    field = tp.model_fields.get("channel") if isinstance(tp, type) and issubclass(tp, BaseModel) else None
    return typing.get_args(field.annotation)[0] if field is not None else None
