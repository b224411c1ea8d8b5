"""The state commands given hostile input: clear errors instead of tracebacks, hangs, tables or terminal codes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.state.model import Outcome, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels
from sqlsentinel_dagster.state.store import StateStore

from .test_bounded_silences import CEILING, HANGING, RECORD, STARTUP, run_bounded, store_silence

SQLSENTINEL = Path(sys.executable).parent / "sqlsentinel"
CREATE_NOTHING = [["status"], ["silences"], ["history"], ["unsilence", "orders_late"], ["prune", "--older-than", "30d"]]
EVERY = [*CREATE_NOTHING, ["silence", "orders_late", "--force", "--duration", "1h", "--reason", "deploy"]]
NO_TABLES = "no sqlsentinel state tables in this database (nothing recorded yet, or the wrong --database-url)"


def invoke(*args: str) -> Result:
    """Run ``sqlsentinel ARGS`` in-process; environment variables that would pick another database are cleared."""
    env = {"SQLSENTINEL_STATE_URL": None, "STATE_DB_URL": None, "SQLSENTINEL_MAX_SILENCE": None}
    return CliRunner().invoke(main, list(args), env=env)


def refused(result: Result) -> str:
    """The output of a command that ended in a click error (exit 1, no traceback); fail otherwise."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.output


def sqlsentinel_tables(url: str) -> list[str]:
    """The sqlsentinel_* tables in the database at ``url``."""
    engine = sa.create_engine(url)
    try:
        return [t for t in sa.inspect(engine).get_table_names() if t.startswith("sqlsentinel_")]
    finally:
        engine.dispose()


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A SQLite state database with the tables, and nothing in them."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore.from_url(url).engine.dispose()
    return url


class TestDurations:
    def test_a_huge_silence_duration_is_a_click_error(self, state: str) -> None:
        """``--duration 9999999d`` (past year 9999) says the limit instead of an OverflowError traceback."""
        output = refused(
            invoke("silence", "x", "--force", "--duration", "9999999d", "--reason", "r", "--database-url", state)
        )
        assert "Error: duration '9999999d' is too long; at most 3650d (10 years)" in output

    def test_a_huge_prune_age_is_a_click_error(self, state: str) -> None:
        """``--older-than 99999999d`` says the limit instead of an OverflowError traceback."""
        output = refused(invoke("prune", "--older-than", "99999999d", "--database-url", state))
        assert "Error: cannot prune: duration '99999999d' is too long; at most 3650d (10 years)" in output

    @pytest.mark.parametrize("until", ["9999-12-31T23:59:59", "9999-12-31T23:59:59+00:00"])
    def test_an_end_in_year_9999_is_refused_by_the_longest_silence(self, state: str, until: str) -> None:
        """``--until`` at the end of time is longer than the longest silence, not an overflow."""
        output = refused(invoke("silence", "x", "--force", "--until", until, "--reason", "r", "--database-url", state))
        assert "is longer than the longest silence allowed, 30d (set SQLSENTINEL_MAX_SILENCE" in output

    def test_an_unreadable_until_names_the_option(self, state: str) -> None:
        """``--until tomorrow`` says what an ISO time looks like."""
        output = refused(
            invoke("silence", "x", "--force", "--until", "tomorrow", "--reason", "r", "--database-url", state)
        )
        assert "Error: --until 'tomorrow' is not an ISO time such as 2026-12-01T09:00+01:00" in output


class TestLongestSilence:
    def test_31_days_are_refused_by_default_and_allowed_by_the_variable(self, state: str) -> None:
        """The default limit of 30 days, named with the variable that changes it; SQLSENTINEL_MAX_SILENCE=90d
        lets the same command through."""
        args = ["silence", "x", "--force", "--duration", "31d", "--reason", "migration", "--database-url", state]
        output = refused(invoke(*args))
        assert "Error: cannot silence: 31d is longer than the longest silence allowed, 30d" in output
        assert "(set SQLSENTINEL_MAX_SILENCE, e.g. SQLSENTINEL_MAX_SILENCE=90d, to change it)" in output
        allowed = CliRunner().invoke(main, args, env={"SQLSENTINEL_MAX_SILENCE": "90d"})
        assert allowed.exit_code == 0, allowed.output
        listed = json.loads(invoke("silences", "--json", "--database-url", state).output)
        [silence] = listed
        ends, starts = (dt.datetime.fromisoformat(silence[k]) for k in ("ends_at", "starts_at"))
        assert abs(ends - starts - dt.timedelta(days=31)) < dt.timedelta(seconds=2)

    def test_a_bad_variable_is_named(self, state: str) -> None:
        """SQLSENTINEL_MAX_SILENCE=soon is an error naming the variable, not a silent default."""
        args = ["silence", "x", "--force", "--duration", "1h", "--reason", "r", "--database-url", state]
        result = CliRunner().invoke(main, args, env={"SQLSENTINEL_MAX_SILENCE": "soon"})
        assert "Error: SQLSENTINEL_MAX_SILENCE must be a duration such as 90d: invalid duration 'soon'" in refused(
            result
        )


class TestHostileRegexSilences:
    def test_a_backtracking_matcher_is_accepted_and_one_re2_cannot_run_is_refused(self, state: str) -> None:
        """``alert=~(a+)+$`` is safe with RE2 and accepted; ``alert=~(a+)+\\1$`` needs backtracking: refused,
        saying why."""
        common = ["--duration", "1h", "--reason", "r", "--database-url", state]
        assert invoke("silence", "--match", "alert=~(a+)+$", *common).exit_code == 0
        output = refused(invoke("silence", "--match", r"alert=~(a+)+\1$", *common))
        assert r"Error: cannot silence: matcher 'alert=~(a+)+\1$' cannot be used: RE2 cannot run" in output
        assert "no backreferences" in output

    @pytest.mark.parametrize(
        "matcher", ["alert=~(a+)+$", r"alert=~(a+)+\1$"], ids=["backtracking-pattern", "backreference-stored-before"]
    )
    def test_status_and_unsilence_finish_with_a_stored_hostile_silence(self, state: str, matcher: str) -> None:
        """With a hostile silence in the table and an alert whose name would hang a backtracking engine, status
        and unsilence (as real processes) finish well within the ceiling; one RE2 cannot run is reported."""
        silence_id = store_silence(state, matcher)
        store_silence(state, "alert=other")  # ending it makes unsilence match the alert against the hostile one
        assert run_bounded(RECORD, state, HANGING)["notify"] is True  # in a child: a regression must not hang here
        for args in (["status"], ["unsilence", "other"], ["unsilence", silence_id]):
            started = time.monotonic()
            try:
                done = subprocess.run(
                    [str(SQLSENTINEL), *args, "--database-url", state],
                    capture_output=True,
                    text=True,
                    timeout=STARTUP + CEILING,
                )
            except subprocess.TimeoutExpired:
                pytest.fail(f"sqlsentinel {args[0]} still running after {STARTUP + CEILING:.0f} s")
            assert time.monotonic() - started < STARTUP + CEILING
            assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
            if args == ["status"]:
                assert f"{HANGING}: firing" in done.stdout
                assert ("silences nothing" in done.stdout) is matcher.endswith(r"\1$")
            else:
                assert f"ended silence {args[1] if args[1] != 'other' else ''}" in done.stdout


class TestEscapedOutput:
    REASON = "deploy\x1b[2J\x1b[31m\nfake_alert: inactive\u202e"
    AUTHOR = "ana\x1b]0;pwned\x07"

    @pytest.fixture
    def recorded(self, state: str) -> str:
        """A silence with escape codes, a newline and a bidi override in its reason and author, and a run of the
        alert it silences (whose recorded reason quotes them)."""
        args = ["silence", "orders_late", "--force", "--duration", "1h", "--database-url", state]
        created = invoke(*args, "--reason", self.REASON, "--author", self.AUTHOR)
        assert created.exit_code == 0, created.output
        assert "\x1b" not in created.output and "deploy\\x1b[2J" in created.output
        store = StateStore.from_url(state)
        store.record(AlertLabels("orders_late"), Outcome("ALERT"), StateSettings(), {"0:log": {"firing"}}, {}, None)
        store.engine.dispose()
        return state

    @pytest.mark.parametrize("command", [["silences"], ["status"], ["history"], ["history", "orders_late"]])
    def test_control_characters_are_shown_escaped(self, recorded: str, command: list[str]) -> None:
        """The stored text is printed with ``\\x1b``, ``\\n``, ``\\u202e`` spelled out: no escape code reaches the
        terminal and no extra line appears."""
        result = invoke(*command, "--database-url", recorded)
        assert result.exit_code == 0, result.output
        assert not any(c in result.output for c in "\x1b\x07\u202e")
        assert "deploy\\x1b[2J\\x1b[31m\\nfake_alert: inactive\\u202e" in result.output
        assert "fake_alert: inactive" not in result.output.splitlines()
        assert "ana\\x1b]0;pwned\\x07" in result.output

    def test_json_output_keeps_the_text_exactly_and_escaped(self, recorded: str) -> None:
        """--json is escaped by JSON itself and decodes to the reason as stored."""
        result = invoke("silences", "--json", "--database-url", recorded)
        assert "\x1b" not in result.output
        [row] = json.loads(result.output)
        assert (row["reason"], row["author"]) == (self.REASON, self.AUTHOR)


class TestReadOnlyCommandsCreateNothing:
    @pytest.mark.parametrize("command", CREATE_NOTHING, ids=lambda c: c[0])
    def test_on_sqlite_without_tables(self, tmp_path: Path, command: list[str]) -> None:
        """On an empty SQLite file: the error says there are no sqlsentinel tables there, and none is created."""
        path = tmp_path / "other.db"
        sa.create_engine(f"sqlite:///{path}").connect().close()  # an existing, empty database
        url = f"sqlite:///{path}"
        assert f"Error: {NO_TABLES}: {url}" in refused(invoke(*command, "--database-url", url))
        assert sqlsentinel_tables(url) == []

    @pytest.mark.parametrize("command", CREATE_NOTHING, ids=lambda c: c[0])
    def test_on_a_missing_sqlite_file(self, tmp_path: Path, command: list[str]) -> None:
        """A SQLite path that does not exist is not created."""
        url = f"sqlite:///{tmp_path / 'typo.db'}"
        assert f"Error: {NO_TABLES}: {url} does not exist" in refused(invoke(*command, "--database-url", url))
        assert not (tmp_path / "typo.db").exists()

    @pytest.mark.parametrize("command", CREATE_NOTHING, ids=lambda c: c[0])
    def test_on_postgres_without_tables(self, empty_postgres: str, command: list[str]) -> None:
        """On an empty Postgres database: the same error, and no table is created."""
        assert NO_TABLES in refused(invoke(*command, "--database-url", empty_postgres))
        assert sqlsentinel_tables(empty_postgres) == []

    def test_silence_still_creates_the_tables(self, empty_postgres: str) -> None:
        """silence writes, so it creates the tables; status then reads them."""
        assert invoke(*EVERY[-1], "--database-url", empty_postgres).exit_code == 0
        assert "sqlsentinel_silences" in sqlsentinel_tables(empty_postgres)
        assert invoke("silences", "--database-url", empty_postgres).output.count("alert=orders_late") == 1


class TestDatabaseUrls:
    @pytest.mark.parametrize("command", EVERY, ids=lambda c: c[0])
    def test_an_unreachable_server_is_named_without_the_password(self, command: list[str]) -> None:
        """Nothing listens on 127.0.0.1:1: the error names the host and port and the driver's reason, password
        hidden."""
        output = refused(invoke(*command, "--database-url", "postgresql://x:secretpw@127.0.0.1:1/db"))
        assert "Error: cannot use the state database postgresql://x:***@127.0.0.1:1/db: " in output
        assert 'connection to server at "127.0.0.1", port 1 failed: Connection refused' in output
        assert "secretpw" not in output

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("notaurl", "Error: notaurl is not a database URL; write e.g. postgresql://user:password@host:5432/dbname"),
            (
                "postgresql://u:secretpw@host:notaport/db",
                "Error: invalid database URL postgresql://u:***@host:notaport/db: the port is not a number",
            ),
            (
                "nosuchdb://u:secretpw@host/db",
                "Error: cannot open nosuchdb://u:***@host/db: SQLAlchemy knows no database",
            ),
        ],
        ids=["not-a-url", "port-not-a-number", "unknown-database"],
    )
    @pytest.mark.parametrize("command", EVERY, ids=lambda c: c[0])
    def test_a_malformed_url_is_named_without_the_password(self, command: list[str], url: str, message: str) -> None:
        """A URL that does not parse, or names no database SQLAlchemy knows, is a one-line error."""
        output = refused(invoke(*command, "--database-url", url))
        assert message in output and "secretpw" not in output


class TestRunCommand:
    def test_a_dry_run_creates_no_tables_and_escapes_what_the_query_returns(
        self, empty_postgres: str, tmp_path: Path
    ) -> None:
        """`sqlsentinel run --dry-run` on a database without state tables: first-evaluation decisions, nothing
        created; a value holding a terminal escape code and a newline is printed escaped."""
        alerts = tmp_path / "alerts.yaml"
        query = "SELECT 'ALERT' AS status, char(27) || '[2Jgone' || char(10) || 'forged' AS actual_value"
        alerts.write_text(
            f"""
databases: {{main: {{url: "sqlite:///{tmp_path / "w.db"}"}}}}
alerts:
  - {{name: escapes, query: "{query}", schedule: "@hourly"}}
"""
        )
        result = invoke("run", str(alerts), "--dry-run", "--database-url", empty_postgres)
        assert result.exit_code == 0, result.output
        assert sqlsentinel_tables(empty_postgres) == []
        assert "\x1b" not in result.output and "\\x1b[2Jgone\\nforged" in result.output
        assert "firing" in result.output
