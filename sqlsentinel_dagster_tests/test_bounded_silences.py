"""Silences within bounds: regex matchers in linear time, limited length, matchers, authors and reasons."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sqlsentinel_dagster.durations import parse_duration
from sqlsentinel_dagster.state import admin
from sqlsentinel_dagster.state.schema import silences
from sqlsentinel_dagster.state.silences import (
    MAX_MATCHER_LENGTH,
    MAX_MATCHERS,
    AlertLabels,
    matcher_problems,
    parse_matcher,
)
from sqlsentinel_dagster.state.store import StateStore

from .conftest import alerts_yaml

CEILING = 10.0
"""Seconds an operation on a hostile silence may take; a backtracking regex engine would take hours."""
STARTUP = 60.0
"""Seconds a child process may take to start and import the package, on top of CEILING."""
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
HANGING = "a" * 40 + "!"
"""A name on which ``(a+)+$`` backtracks about 2**40 times in Python's ``re``."""


def store_silence(url: str, matcher: str, reason: str = "stored before the limits") -> str:
    """Insert a silence row directly, as an older version or a hand-made row would have; return its id."""
    store = StateStore.from_url(url)
    now = store.clock()
    silence_id = uuid.uuid4().hex[:12]
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(silences).values(
                id=silence_id,
                matchers=json.dumps([matcher]),
                starts_at=now - dt.timedelta(minutes=1),
                ends_at=now + dt.timedelta(hours=1),
                author="old",
                reason=reason,
                created_at=now,
            )
        )
    store.engine.dispose()
    return silence_id


def run_bounded(code: str, *args: str) -> dict[str, object]:
    """Run ``code`` in a child Python that prints one JSON line; fail (instead of hanging) past the ceiling."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            capture_output=True,
            text=True,
            timeout=STARTUP + CEILING,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {STARTUP + CEILING:.0f} s: matching is not bounded")
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


RECORD = """
    import json, sys, time
    from sqlsentinel_dagster.state.model import Outcome, StateSettings
    from sqlsentinel_dagster.state.silences import AlertLabels
    from sqlsentinel_dagster.state.store import StateStore

    store = StateStore.from_url(sys.argv[1])
    started = time.monotonic()
    labels = AlertLabels(sys.argv[2], tags={"text": sys.argv[2] * 1000})
    decision = store.record(labels, Outcome("ALERT"), StateSettings(), {"0:log": {"firing"}}, {}, None)
    print(json.dumps({"seconds": time.monotonic() - started, "code": decision.code, "notify": decision.notify}))
"""


class TestRegexMatchers:
    def test_a_backtracking_pattern_runs_in_linear_time(self) -> None:
        """``(a+)+$`` is accepted (RE2 has no backtracking) and decides at once on a text that hangs ``re``."""
        assert matcher_problems([parse_matcher("alert=~(a+)+$")]) == []
        result = run_bounded(
            """
            import json, time
            from sqlsentinel_dagster.state.silences import AlertLabels, parse_matcher

            started = time.monotonic()
            matcher = parse_matcher("alert=~(a+)+$")
            hostile = [matcher.matches(AlertLabels("a" * n + "!")) for n in (30, 40, 100_000)]
            print(json.dumps({"seconds": time.monotonic() - started, "hostile": hostile,
                              "plain": matcher.matches(AlertLabels("a" * 40))}))
            """
        )
        assert result == {"seconds": result["seconds"], "hostile": [False, False, False], "plain": True}
        assert isinstance(result["seconds"], float) and result["seconds"] < CEILING

    @pytest.mark.parametrize(
        "pattern",
        [r"(a+)+\1$", r"(?P<x>a)(?P=x)", r"(?=a)a", r"(?<!b)a", r"(?>a+)b", r"a\Z"],
        ids=["backreference", "named-backreference", "lookahead", "lookbehind", "atomic-group", "python-end"],
    )
    def test_patterns_re2_cannot_run_are_refused_at_creation_saying_why(self, tmp_path: Path, pattern: str) -> None:
        """Backreferences, lookarounds and other backtracking-only syntax: refused, naming the matcher and RE2's
        limits; nothing is stored."""
        store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
        matcher = parse_matcher(f"alert=~{pattern}")  # still parses: stored silences like it must load
        with pytest.raises(ValueError) as refused:
            admin.add_silence(store, [matcher], ends_at=store.clock() + dt.timedelta(hours=1), author="a", reason="r")
        message = str(refused.value)
        assert message.startswith(f"cannot silence: matcher 'alert=~{pattern}' cannot be used: RE2 cannot run")
        assert "linear time" in message and "no backreferences" in message and "lookarounds" in message
        assert admin.list_silences(store) == []

    def test_too_many_matchers_and_an_overlong_value_are_refused(self, tmp_path: Path) -> None:
        """More than MAX_MATCHERS matchers, or a value over MAX_MATCHER_LENGTH characters: each problem named."""
        store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
        many = [parse_matcher(f"tag:t{i}=x") for i in range(MAX_MATCHERS + 1)]
        long = parse_matcher("alert~" + "x" * (MAX_MATCHER_LENGTH + 1))
        with pytest.raises(ValueError) as refused:
            admin.add_silence(
                store, [*many, long], ends_at=store.clock() + dt.timedelta(hours=1), author="a", reason="r"
            )
        assert f"{MAX_MATCHERS + 2} matchers given; a silence takes at most {MAX_MATCHERS}" in str(refused.value)
        assert f"is {MAX_MATCHER_LENGTH + 1} characters long; at most {MAX_MATCHER_LENGTH}" in str(refused.value)
        ok = admin.add_silence(
            store, many[:MAX_MATCHERS], ends_at=store.clock() + dt.timedelta(hours=1), author="a", reason="r"
        )
        assert len(ok.matchers) == MAX_MATCHERS


class TestStoredHostileSilences:
    def test_a_stored_backtracking_pattern_does_not_stall_evaluation(self, state_url: str) -> None:
        """A stored ``(a+)+$`` silence: recording an alert whose name and tag would hang ``re`` takes no time,
        and the alert (which it does not match) is notified."""
        store_silence(state_url, "alert=~(a+)+$")
        result = run_bounded(RECORD, state_url, HANGING)
        assert (result["code"], result["notify"]) == ("first_notification", True)
        assert isinstance(result["seconds"], float) and result["seconds"] < CEILING

    @pytest.mark.parametrize("name", [HANGING, "a" * 40], ids=["hostile-name", "name-re-would-match"])
    def test_a_stored_pattern_re2_cannot_run_silences_nothing(self, state_url: str, name: str) -> None:
        """A stored ``(a+)+\\1$`` (a backreference: refused today, accepted by older versions) neither hangs nor
        crashes the evaluation, and silences nothing, even an alert Python's ``re`` would say it matches: a
        silence that cannot be evaluated must not swallow pages."""
        store_silence(state_url, r"alert=~(a+)+\1$")
        result = run_bounded(RECORD, state_url, name)
        assert (result["code"], result["notify"]) == ("first_notification", True)
        assert isinstance(result["seconds"], float) and result["seconds"] < CEILING

    def test_a_stored_unusable_silence_is_listed_with_its_problem(self, tmp_path: Path) -> None:
        """list_silences loads it, and says why it silences nothing."""
        url = f"sqlite:///{tmp_path / 'state.db'}"
        silence_id = store_silence(url, r"alert=~(?=x)x")
        [listed] = admin.list_silences(StateStore.from_url(url))
        assert listed.id == silence_id and not listed.matches(AlertLabels("x"))
        assert listed.problems() == [
            "'alert=~(?=x)x': RE2 cannot run this regular expression (invalid perl operator: (?=)"
        ]


class TestSilenceLength:
    def test_longer_than_30_days_is_refused_by_default_naming_the_limit_and_its_variable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without SQLSENTINEL_MAX_SILENCE a silence lasts 30 days at most; the error says how to change it."""
        monkeypatch.delenv("SQLSENTINEL_MAX_SILENCE", raising=False)
        store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}", clock=lambda: T0)
        matchers, now = [parse_matcher("alert=x")], T0
        with pytest.raises(ValueError) as refused:
            admin.add_silence(store, matchers, ends_at=now + dt.timedelta(days=30, hours=1), author="a", reason="r")
        assert str(refused.value) == (
            "cannot silence: 30d 1h is longer than the longest silence allowed, 30d "
            "(set SQLSENTINEL_MAX_SILENCE, e.g. SQLSENTINEL_MAX_SILENCE=90d, to change it)"
        )
        kept = admin.add_silence(store, matchers, ends_at=now + dt.timedelta(days=30), author="a", reason="r")
        assert kept.ends_at - kept.starts_at == dt.timedelta(days=30)

    def test_the_environment_variable_sets_another_limit(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """SQLSENTINEL_MAX_SILENCE=90d allows 60 days and refuses 91, naming 90d; a shorter limit applies too."""
        store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}", clock=lambda: T0)
        matchers, now = [parse_matcher("alert=x")], T0
        monkeypatch.setenv("SQLSENTINEL_MAX_SILENCE", "90d")
        assert admin.max_silence() == dt.timedelta(days=90)
        admin.add_silence(store, matchers, ends_at=now + dt.timedelta(days=60), author="a", reason="r")
        with pytest.raises(ValueError, match="91d is longer than the longest silence allowed, 90d"):
            admin.add_silence(store, matchers, ends_at=now + dt.timedelta(days=91), author="a", reason="r")
        monkeypatch.setenv("SQLSENTINEL_MAX_SILENCE", "2h")
        with pytest.raises(ValueError, match="3h is longer than the longest silence allowed, 2h"):
            admin.add_silence(store, matchers, ends_at=now + dt.timedelta(hours=3), author="a", reason="r")

    @pytest.mark.parametrize("value", ["soon", "0", "99999d"])
    def test_an_invalid_limit_is_an_error_naming_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        """A value that is no duration (or is out of range) names SQLSENTINEL_MAX_SILENCE rather than being ignored."""
        monkeypatch.setenv("SQLSENTINEL_MAX_SILENCE", value)
        with pytest.raises(ValueError, match=r"^SQLSENTINEL_MAX_SILENCE must be a duration such as 90d: "):
            admin.max_silence()

    def test_the_launchpad_silence_job_applies_the_same_limit(
        self, tmp_path: Path, sqlite_warehouse: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The sqlsentinel_silence job refuses 31 days by default and accepts them with SQLSENTINEL_MAX_SILENCE=60d."""
        from sqlsentinel_dagster import build_definitions

        path = tmp_path / "alerts.yaml"
        path.write_text(alerts_yaml("sqlite:///warehouse.db"))
        job = build_definitions(path).resolve_job_def("sqlsentinel_silence")
        config = {"alert": "error_rate", "duration": "31d", "author": "ana", "reason": "long migration"}
        run_config = {"ops": {"sqlsentinel_silence_op": {"config": config}}}
        monkeypatch.delenv("SQLSENTINEL_MAX_SILENCE", raising=False)
        with dg.instance_for_test() as instance:
            refused = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
            failure = refused.failure_data_for_node("sqlsentinel_silence_op")
            assert failure is not None and failure.error is not None
            assert "31d is longer than the longest silence allowed, 30d (set SQLSENTINEL_MAX_SILENCE" in (
                failure.error.message
            )
            monkeypatch.setenv("SQLSENTINEL_MAX_SILENCE", "60d")
            assert job.execute_in_process(instance=instance, run_config=run_config).success


class TestDurations:
    @pytest.mark.parametrize("text", ["3651d", "9999999d", "99999999999999999999s", 1e300])
    def test_durations_past_ten_years_are_refused_briefly(self, text: str | float) -> None:
        """Longer than 3650 days is an error saying the limit, quoting at most 40 characters of the input."""
        with pytest.raises(ValueError, match=r"is too long; at most 3650d \(10 years\)$") as refused:
            parse_duration(text)
        assert len(str(refused.value)) < 100
        assert parse_duration("3650d") == 3650 * 86400

    def test_prune_before_year_one_is_a_value_error(self, tmp_path: Path) -> None:
        """An age reaching before year 1 is a ValueError saying so, not an OverflowError."""
        store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
        with pytest.raises(ValueError, match=r"is before year 1$"):
            admin.prune_history(store, dt.timedelta(days=999_999_999))


class TestAuthorAndReason:
    def test_control_characters_are_stored_as_given(self, state_url: str) -> None:
        """Escape codes and newlines in an author or reason reach the table unchanged (printing escapes them)."""
        store = StateStore.from_url(state_url)
        reason, author = "deploy\x1b[2J\nforged: line\u202e", "ana\x07"
        created = admin.add_silence(
            store,
            [parse_matcher("alert=x")],
            ends_at=store.clock() + dt.timedelta(hours=1),
            author=author,
            reason=reason,
        )
        with store.engine.connect() as conn:
            row = conn.execute(sa.select(silences.c.author, silences.c.reason).where(silences.c.id == created.id)).one()
        assert tuple(row) == (author, reason)

    @pytest.mark.parametrize(
        ("author", "reason", "problem"),
        [
            ("a" * 256, "r", "the author is 256 characters long; at most 255 are allowed"),
            ("ana", "r" * 1001, "the reason is 1001 characters long; at most 1000 are allowed"),
            ("ana", "before\x00after", "the reason contains a NUL character (\\x00), which databases cannot store"),
            ("an\udcffa", "r", "the author is not valid UTF-8 text"),
        ],
        ids=["long-author", "long-reason", "nul", "not-utf8"],
    )
    def test_unstorable_authors_and_reasons_are_refused(
        self, state_url: str, author: str, reason: str, problem: str
    ) -> None:
        """Too long, a NUL (Postgres refuses it) or undecodable bytes: a ValueError naming the problem, on every
        database, before anything is written."""
        store = StateStore.from_url(state_url)
        with pytest.raises(ValueError) as refused:
            admin.add_silence(
                store,
                [parse_matcher("alert=x")],
                ends_at=store.clock() + dt.timedelta(hours=1),
                author=author,
                reason=reason,
            )
        assert str(refused.value).startswith("cannot silence: ") and problem in str(refused.value)
        assert admin.list_silences(store) == []
