"""A hostile alerts file ends in a located problem within seconds, never a hang, a traceback or gigabytes of
memory: aliases that expand to billions of values, deep nesting, a huge file, text that is not UTF-8.

The hostile files load in one child process with a deadline, so a regression fails these tests instead of
hanging the suite."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sqlsentinel_dagster import ConfigError, load_config
from sqlsentinel_dagster._yaml import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES

from .conftest import FIXTURES

HEAD = "database: {url: 'sqlite:///warehouse.db'}\nalerts:\n"
ALERT = "  - name: orders\n    query: SELECT 'OK' AS status\n    schedule: '*/5 * * * *'\n"
TOO_MANY = (
    f"the file holds or expands to more than {MAX_VALUES:,} values (YAML aliases repeating large anchors?); "
    f"at most {MAX_VALUES:,} are allowed"
)
TOO_DEEP = f"values nest more than {MAX_DEPTH} levels deep; at most {MAX_DEPTH} are allowed"
NOT_TEXT = "YAML syntax error: the character U+{:04X} is not allowed (is this a text file?)"


E_ACUTE = "\u00e9".encode("latin-1")
LATIN1 = (HEAD + ALERT.replace("orders", "commandes_\u00e9t\u00e9")).encode("latin-1")


def _nested_mappings(levels: int) -> bytes:
    return ("".join("  " * i + f"k{i}:\n" for i in range(levels)) + "  " * levels + "v\n").encode()


# Each case: the file's bytes and the one problem expected, as "<line>: <message>" (line 0: the whole file).
CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "billion_laughs": (
        lambda: (FIXTURES / "hostile" / "billion_laughs.yaml").read_bytes(),
        f"8: {TOO_MANY}",  # g: the first anchor whose aliases pass the limit
    ),
    "alias_of_a_large_anchor_as_a_key": (
        lambda: b"big: &big [1, 2, 3]\n? *big\n: value\n",
        "3: a key must be a plain value (text or a number)",  # the line of its value: the alias has no node
    ),
    "a_million_values_without_aliases": (
        lambda: ("alerts: [" + "1," * MAX_VALUES + "1]\n").encode(),
        f"1: {TOO_MANY}",
    ),
    "ten_thousand_brackets": (lambda: ("alerts: " + "[" * 10_000 + "]" * 10_000).encode(), f"1: {TOO_DEEP}"),
    "five_hundred_brackets": (lambda: ("alerts: " + "[" * 500 + "]" * 500).encode(), f"1: {TOO_DEEP}"),
    "mappings_nested_150_deep": (lambda: _nested_mappings(150), f"{MAX_DEPTH + 1}: {TOO_DEEP}"),
    "mappings_nested_1200_deep": (lambda: _nested_mappings(1200), f"{MAX_DEPTH + 1}: {TOO_DEEP}"),  # > libyaml's cap
    "integer_of_5000_digits": (
        lambda: (HEAD + ALERT + "x: " + "1" * 5000 + "\n").encode(),
        "6: YAML error: cannot read this int (Exceeds the limit (4300 digits) for integer string conversion: value "
        "has 5000 digits); quote it to keep it as text",
    ),
    "impossible_timestamp": (
        lambda: (HEAD + ALERT + "x: !!timestamp 2020-13-45\n").encode(),
        "6: YAML error: cannot read this timestamp (month must be in 1..12); quote it to keep it as text",
    ),
    "larger_than_the_limit": (
        lambda: b"# " + b"x" * MAX_FILE_BYTES + b"\n",
        f"0: cannot read the file: the file is {MAX_FILE_BYTES + 3:,} bytes long; at most {MAX_FILE_BYTES:,} "
        "bytes (10 MiB) are allowed",
    ),
    "utf16_with_byte_order_mark": (
        lambda: (HEAD + ALERT).encode("utf-16"),
        "0: cannot read the file: it is UTF-16 text (it starts with a byte order mark); save it as UTF-8",
    ),
    "utf32_with_byte_order_mark": (
        lambda: (HEAD + ALERT).encode("utf-32"),
        "0: cannot read the file: it is UTF-32 text (it starts with a byte order mark); save it as UTF-8",
    ),
    "latin1": (
        lambda: LATIN1,
        f"3: cannot read the file: it is not UTF-8 text (invalid continuation byte at byte {LATIN1.index(E_ACUTE)}); "
        "save it as UTF-8",
    ),
    "binary": (
        lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "1: cannot read the file: it is not UTF-8 text (invalid start byte at byte 0); save it as UTF-8",
    ),
    "nul_byte": (lambda: (HEAD + ALERT).replace("orders", "ord\x00ers").encode(), "3: " + NOT_TEXT.format(0)),
    "control_character": (lambda: (HEAD + ALERT).replace("OK", "O\x07K").encode(), "4: " + NOT_TEXT.format(7)),
    "noncharacter": (lambda: (HEAD + "# \ufffe\n" + ALERT).encode(), "3: " + NOT_TEXT.format(0xFFFE)),
}

CHILD = """
import json, resource, sys, time
from sqlsentinel_dagster import load_config

results = {}
for path in sys.argv[1:]:
    start = time.monotonic()
    config = load_config(path, environ={}, strict=False)
    results[path] = {
        "problems": [f"{p.line}: {p.message}" for p in config.problems],
        "alerts": len(config.alerts),
        "seconds": time.monotonic() - start,
    }
results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(results))
"""


pytestmark = pytest.mark.xdist_group("bounded_yaml")  # one xdist worker: the module-scoped fixture below is made once


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case loaded with ``load_config(strict=False)`` in one child process, given two minutes in all."""
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name, (content, _) in CASES.items():
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_bytes(content())
    try:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, *map(str, paths.values())], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("loading the hostile files took more than 2 minutes (a limit no longer holds)")
    assert child.returncode == 0, child.stderr[-3000:]
    results = json.loads(child.stdout)
    return {"peak_rss_mb": results.pop("peak_rss_mb"), **{name: results[str(p)] for name, p in paths.items()}}


class TestHostileFiles:
    @pytest.mark.parametrize("name", list(CASES))
    def test_is_one_located_problem_within_seconds(self, name: str, loaded: dict[str, Any]) -> None:
        """The file loads no alert and lists exactly the expected problem with its line, in under 10 s."""
        result = loaded[name]
        assert result["problems"] == [CASES[name][1]]
        assert result["alerts"] == 0
        assert result["seconds"] < 10

    def test_memory_stays_bounded(self, loaded: dict[str, Any]) -> None:
        """Loading all of them (a billion laughs took over 20 GB) peaks under 1 GB, Dagster's import included."""
        assert loaded["peak_rss_mb"] < 1024


class TestProblemPath:
    def test_strict_raises_a_config_error_listing_the_problem(self, tmp_path: Path) -> None:
        """strict=True (the default) raises ConfigError whose text names the file, the line and the limit."""
        path = tmp_path / "alerts.yaml"
        path.write_text(HEAD + "    " + "[" * 200 + "]" * 200 + "\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_config(path, environ={})
        assert str(caught.value).splitlines() == [f"{path}: 1 problem found", f"  {path}:3: {TOO_DEEP}"]

    def test_text_given_by_the_caller_is_bounded_too(self, tmp_path: Path) -> None:
        """``text=`` (the config cache passes what it read) is held to the same size limit as a file."""
        config = load_config(tmp_path / "alerts.yaml", text="#" * (MAX_FILE_BYTES + 1), strict=False)
        assert [p.message for p in config.problems] == [
            f"the file is {MAX_FILE_BYTES + 1:,} characters long; at most {MAX_FILE_BYTES:,} bytes (10 MiB) are allowed"
        ]
        assert config.alerts == []


class TestFilesThatStillLoad:
    def test_utf8_with_byte_order_mark(self, tmp_path: Path) -> None:
        """A UTF-8 byte order mark (as some Windows editors write) is not a problem."""
        path = tmp_path / "alerts.yaml"
        path.write_bytes(b"\xef\xbb\xbf" + (HEAD + ALERT).encode())
        assert load_config(path, environ={}).alert_names == ["orders"]

    def test_aliases_repeating_a_small_anchor_in_many_alerts(self, tmp_path: Path) -> None:
        """Anchors and aliases used as intended (one notify list for 2,000 alerts) load as before."""
        alerts = "".join(f"  - {{name: a{i}, query: SELECT 'OK' AS status, notify: *team}}\n" for i in range(2000))
        text = textwrap.dedent(
            """\
            database: {url: 'sqlite:///warehouse.db'}
            defaults:
              schedule: '*/5 * * * *'
              notify: &team [{channel: log}, {channel: webhook, url: 'http://127.0.0.1:9/hook'}]
            alerts:
            """
        )
        path = tmp_path / "alerts.yaml"
        path.write_text(text + alerts, encoding="utf-8")
        config = load_config(path, environ={}, strict=False)
        assert len(config.alerts) == 2000
        assert [t.channel for t in config.targets(config.alerts[-1])] == ["log", "webhook"]

    def test_nesting_up_to_the_limit(self, tmp_path: Path) -> None:
        """Exactly MAX_DEPTH levels parse (the file is then refused for what it holds, not for its depth)."""
        config = load_config(tmp_path / "x.yaml", text=_nested_mappings(MAX_DEPTH).decode(), strict=False)
        assert all(TOO_DEEP not in p.message for p in config.problems)
