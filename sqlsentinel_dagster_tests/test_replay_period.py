"""How far back a replay goes: ``--days`` and ``--since`` (and the Launchpad job's ``days``) name a zero, negative
or too-long duration for what it is, instead of calling it "neither a duration nor an ISO date"."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.replay import parse_period
from sqlsentinel_dagster.state.store import StateStore

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
TOO_LONG = "longer than the history that can be kept; at most 3650d (10 years)"
ZERO_SINCE = "a zero duration replays nothing; give a positive duration such as 7d"
NEGATIVE_SINCE = "a negative duration; give how far back as a positive duration such as 7d"
ZERO_DAYS = "zero days replay nothing; give a positive number of days such as 7"
NEGATIVE_DAYS = "a negative number of days; give a positive one such as 7"
FILE = """
database: {url: "sqlite:///warehouse.db"}
alerts:
  - {name: orders_late, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *"}
"""


class TestParsePeriod:
    @pytest.mark.parametrize(
        ("since", "days"),
        [
            ("7d", 7),
            ("7 d", 7),
            ("+7d", 7),
            ("36h", 1.5),
            ("3650d", 3650),
            ("864000", 10),
            ("0.5d", 0.5),
        ],
        ids=["days", "space_before_the_unit", "plus_sign", "hours", "the_longest", "seconds", "fraction"],
    )
    def test_a_positive_duration_back(self, since: str, days: float) -> None:
        """A duration up to the bound durations have (3650d) goes that far back."""
        assert parse_period(NOW, since=since) == NOW - dt.timedelta(days=days)

    @pytest.mark.parametrize(
        ("since", "message"),
        [
            ("0d", f"--since 0d: {ZERO_SINCE}"),
            ("0", f"--since 0: {ZERO_SINCE}"),
            ("0.0h", f"--since 0.0h: {ZERO_SINCE}"),
            ("-0d", f"--since -0d: {ZERO_SINCE}"),
            ("-7d", f"--since -7d: {NEGATIVE_SINCE}"),
            ("3651d", f"--since 3651d: {TOO_LONG}"),
            ("99999999d", f"--since 99999999d: {TOO_LONG}"),
            ("9" * 400 + "ms", f"--since {'9' * 40}...: {TOO_LONG}"),
            ("last week", "--since 'last week' is neither a duration such as 7d nor an ISO date such as 2026-11-01"),
            ("7 days", "--since '7 days' is neither a duration such as 7d nor an ISO date such as 2026-11-01"),
            ("2027-01-01T00:00+00:00", "--since 2027-01-01T00:00:00+00:00 is not in the past"),
        ],
        ids=[
            "zero_days",
            "zero_seconds",
            "zero_with_decimals",
            "negative_zero",
            "negative",
            "a_day_past_the_bound",
            "far_past_the_bound",
            "past_any_float",
            "words",
            "unknown_unit",
            "future_date",
        ],
    )
    def test_since_says_what_is_wrong(self, since: str, message: str) -> None:
        """Zero, negative and too long durations are named as such; other text is neither a duration nor a date."""
        with pytest.raises(ValueError) as refused:
            parse_period(NOW, since=since)
        assert str(refused.value) == message

    @pytest.mark.parametrize(
        ("days", "message"),
        [
            (0, f"--days 0: {ZERO_DAYS}"),
            (-3, f"--days -3: {NEGATIVE_DAYS}"),
            (3651, f"--days 3651: {TOO_LONG}"),
            (99999999, f"--days 99999999: {TOO_LONG}"),
            (10**400, f"--days (a number of over 40 digits): {TOO_LONG}"),
        ],
        ids=["zero", "negative", "a_day_past_the_bound", "far_past_the_bound", "past_any_float"],
    )
    def test_days_says_what_is_wrong(self, days: int, message: str) -> None:
        """--days counts whole days from 1 to the bound durations have; the others are named."""
        with pytest.raises(ValueError) as refused:
            parse_period(NOW, days=days)
        assert str(refused.value) == message

    def test_days_within_the_bound(self) -> None:
        """1 and 3650 days are the shortest and the longest."""
        assert parse_period(NOW, days=1) == NOW - dt.timedelta(days=1)
        assert parse_period(NOW, days=3650) == NOW - dt.timedelta(days=3650)

    def test_the_option_is_named_as_the_caller_names_it(self) -> None:
        """The Launchpad job's config has `days`, not `--days`: the message names it so."""
        with pytest.raises(ValueError, match=rf"^days 0: {ZERO_DAYS}$"):
            parse_period(NOW, days=0, option="")
        with pytest.raises(ValueError, match=r"^give days or since, not both$"):
            parse_period(NOW, days=1, since="1d", option="")


def _state(tmp_path: Path) -> str:
    """An empty state database with the sqlsentinel tables (replay never creates them)."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore.from_url(url)
    return url


class TestReplayCommand:
    @pytest.mark.parametrize(
        ("option", "value", "message"),
        [
            ("--since", "0d", f"--since 0d: {ZERO_SINCE}"),
            ("--since", "99999999d", f"--since 99999999d: {TOO_LONG}"),
            ("--since", "-7d", f"--since -7d: {NEGATIVE_SINCE}"),
            ("--days", "0", f"--days 0: {ZERO_DAYS}"),
            ("--days", "-3", f"--days -3: {NEGATIVE_DAYS}"),
            ("--days", "99999999", f"--days 99999999: {TOO_LONG}"),
            ("--days", "9" * 60, f"--days (a number of over 40 digits): {TOO_LONG}"),
        ],
        ids=["since_zero", "since_too_long", "since_negative", "days_zero", "days_negative", "days_too_long", "huge"],
    )
    def test_the_cli_names_the_problem(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, value: str, message: str
    ) -> None:
        """`sqlsentinel replay NAME --since 0d` (and the others) exit 1 with the message, nothing replayed."""
        monkeypatch.chdir(tmp_path)
        (tmp_path / "alerts.yaml").write_text(FILE)
        result = CliRunner().invoke(main, ["replay", "orders_late", option, value, "--database-url", _state(tmp_path)])
        assert result.exit_code == 1, result.output
        assert result.output == f"Error: {message}\n"

    def test_the_cli_replays_a_positive_duration(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The longest period there is, 3650 days, replays (nothing recorded: an empty replay, and it says so)."""
        monkeypatch.chdir(tmp_path)
        (tmp_path / "alerts.yaml").write_text(FILE)
        result = CliRunner().invoke(
            main, ["replay", "orders_late", "--days", "3650", "--database-url", _state(tmp_path)]
        )
        assert result.exit_code == 0, result.output
        assert "no evaluation of 'orders_late' is recorded" in result.output


class TestLaunchpadJob:
    @pytest.mark.parametrize(
        ("days", "message"),
        [(0, f"days 0: {ZERO_DAYS}"), (-3, f"days -3: {NEGATIVE_DAYS}"), (99999999, f"days 99999999: {TOO_LONG}")],
        ids=["zero", "negative", "too_long"],
    )
    def test_the_job_fails_naming_the_problem(self, tmp_path: Path, days: int, message: str) -> None:
        """sqlsentinel_replay with `days: 0` (or negative, or too many) fails the run with the same message."""
        path = tmp_path / "alerts.yaml"
        path.write_text(FILE)
        with dg.instance_for_test() as instance:
            result = (
                build_definitions(path)
                .resolve_job_def("sqlsentinel_replay")
                .execute_in_process(
                    instance=instance,
                    run_config={"ops": {"sqlsentinel_replay_op": {"config": {"alert": "orders_late", "days": days}}}},
                    raise_on_error=False,
                )
            )
        failure = result.failure_data_for_node("sqlsentinel_replay_op")
        assert failure is not None and failure.error is not None
        assert f"cannot replay: {message}" in failure.error.message
