"""Time intervals as Alertmanager writes them: parsed and refused when the file loads, matched against moments in
their location, and the alerts they mute recorded as muted then notified once the mute ends."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sqlsentinel_dagster import load_config
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.config.time_intervals import NamedTimeInterval
from sqlsentinel_dagster.state.time_intervals import muted

UTC = dt.UTC


def interval(**spec: Any) -> NamedTimeInterval:
    return NamedTimeInterval.model_validate({"name": "window", "time_intervals": [spec]})


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


class TestMatching:
    @pytest.mark.parametrize(
        ("spec", "moment", "inside"),
        [
            ({"times": [{"start_time": "01:00", "end_time": "03:00"}]}, "2026-12-07T01:00", True),
            ({"times": [{"start_time": "01:00", "end_time": "03:00"}]}, "2026-12-07T03:00", False),  # end excluded
            ({"times": [{"start_time": "22:00", "end_time": "24:00"}]}, "2026-12-07T23:59", True),
            ({"weekdays": ["monday:friday"]}, "2026-12-07T12:00", True),  # a Monday
            ({"weekdays": ["monday:friday"]}, "2026-12-06T12:00", False),  # a Sunday
            ({"weekdays": ["saturday", "sunday"]}, "2026-12-06T12:00", True),
            ({"days_of_month": ["-1"]}, "2026-02-28T12:00", True),  # the last day of February
            ({"days_of_month": ["-3:-1"]}, "2026-12-28T12:00", False),
            ({"days_of_month": ["1:7"]}, "2026-12-07T12:00", True),
            ({"months": ["december", "1:2"]}, "2026-01-15T12:00", True),
            ({"months": ["march:may"]}, "2026-12-15T12:00", False),
            ({"years": ["2026:2027"]}, "2028-01-01T00:00", False),
            # 01:30 in Berlin is 00:30 UTC in winter
            (
                {"times": [{"start_time": "01:00", "end_time": "02:00"}], "location": "Europe/Berlin"},
                "2026-12-07T00:30",
                True,
            ),
            (
                {"weekdays": ["monday"], "times": [{"start_time": "09:00", "end_time": "17:00"}]},
                "2026-12-07T18:00",
                False,
            ),
        ],
    )
    def test_a_moment_is_inside_when_every_part_set_contains_it(
        self, spec: dict[str, Any], moment: str, inside: bool
    ) -> None:
        """Each part (times, weekdays, days of month, months, years, location) narrows; an omitted one is any."""
        assert interval(**spec).compiled().contains(at(moment)) is inside

    def test_mute_holds_inside_and_active_holds_outside(self) -> None:
        """A mute interval holds while it contains now; active intervals hold while none does."""
        night = interval(times=[{"start_time": "00:00", "end_time": "06:00"}]).compiled()
        assert muted((night,), (), at("2026-12-07T05:00")) is not None
        assert muted((night,), (), at("2026-12-07T07:00")) is None
        outside = muted((), (night,), at("2026-12-07T07:00"))
        assert outside is not None and outside.describe() == "outside its active time intervals (window)"
        assert muted((), (night,), at("2026-12-07T05:00")) is None


class TestLoading:
    def test_every_mistake_is_located_and_says_what_is_allowed(self, tmp_path: Path) -> None:
        """Bad times, weekdays, days, months, locations, reversed ranges, twice-defined and unknown names."""
        path = tmp_path / "alerts.yaml"
        path.write_text(
            """database: {url: "sqlite:///w.db"}
time_intervals:
  - name: night
    time_intervals:
      - times: [{start_time: "25:00", end_time: "03:00"}]
        weekdays: [funday]
        days_of_month: ["32"]
        months: ["may:march"]
        location: Mars/Olympus
  - name: night
    time_intervals: [{}]
alerts:
  - {name: a, query: "SELECT 'OK' AS status", schedule: "@hourly", mute_time_intervals: [nigth]}
""",
            encoding="utf-8",
        )
        config = load_config(path, strict=False)
        problems = [f"{p.line} {p.message}" for p in config.problems]
        text = "\n".join(problems)
        assert "invalid time '25:00'; write HH:MM from 00:00 to 24:00" in text
        assert "invalid weekday 'funday'; allowed: monday to sunday, or 0 to 6" in text
        assert "day of month 32 is outside 1 to 31, or -1 to -31 from the end" in text
        assert "the month range 'may:march' ends before it starts" in text
        assert "unknown timezone 'Mars/Olympus'" in text
        assert "time interval 'night' is defined twice" in text
        assert "unknown time interval 'nigth'; defined: night; did you mean 'night'?" in text

    def test_a_broken_interval_takes_out_only_the_alerts_naming_it(self, tmp_path: Path) -> None:
        """Loaded leniently (as code servers do), a broken interval leaves out the alert muted by it, and the
        others, muted by a good interval or by none, load."""
        path = tmp_path / "alerts.yaml"
        path.write_text(
            """database: {url: "sqlite:///w.db"}
time_intervals:
  - {name: bad, time_intervals: [{weekdays: [funday]}]}
  - {name: good, time_intervals: [{weekdays: [sunday]}]}
alerts:
  - {name: a, query: "SELECT 'OK' AS status", schedule: "@hourly", mute_time_intervals: [bad]}
  - {name: b, query: "SELECT 'OK' AS status", schedule: "@hourly", mute_time_intervals: [good]}
  - {name: c, query: "SELECT 'OK' AS status", schedule: "@hourly"}
""",
            encoding="utf-8",
        )
        config = load_config(path, strict=False)
        assert config.alert_names == ["b", "c"]
        assert [i.name for i in config.file.time_intervals] == ["good"]


class TestMutedRuns:
    def test_a_muted_firing_is_recorded_then_sent_once_the_mute_is_gone(self, tmp_path: Path) -> None:
        """Inside an all-day mute the firing is recorded as muted and not sent; with the mute removed from the
        file, the next run sends it once, and the one after sends nothing."""
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE m (v REAL)")
            db.execute("INSERT INTO m VALUES (9)")
        path = tmp_path / "alerts.yaml"
        text = """database: {{url: "sqlite:///warehouse.db"}}
time_intervals:
  - {{name: always, time_intervals: [{{times: [{{start_time: "00:00", end_time: "24:00"}}]}}]}}
alerts:
  - {{name: a, query: "SELECT 'ALERT' AS status FROM m", schedule: "@hourly", notify: [{{channel: log}}]{mute}}}
"""
        state = f"sqlite:///{tmp_path / 'state.db'}"

        def run(mute: str) -> dict[str, Any]:
            path.write_text(text.format(mute=mute), encoding="utf-8")
            result = CliRunner().invoke(main, ["run", str(path), "--json", "--database-url", state])
            rows: list[dict[str, Any]] = json.loads(result.stdout)
            return rows[0]

        first = run(", mute_time_intervals: [always]")
        assert (first["decision"], first["notifications"]) == ("muted", [])
        assert first["reason"] == "muted firing: muted by time interval always"
        second = run("")
        assert second["decision"] == "silence_ended"
        assert [(n["event"], n["outcome"]) for n in second["notifications"]] == [("firing", "delivered")]
        assert run("")["notifications"] == []
