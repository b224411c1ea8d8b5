"""The compiled-alerts cache trusts only data its own user wrote, and anything wrong with it is a cache miss.

Real files, real owners and modes: the tests run as root (here and in CI) so they can hand files to another
user (uid 65534, ``nobody``) and act as that user.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import pickle
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sqlsentinel_dagster.config import cache_files, compiled, load_config
from sqlsentinel_dagster.config.compiled import CompiledConfig, load_compiled, save_compiled
from sqlsentinel_dagster.definitions.resources import cached_config

NOBODY = 65534
ALERTS = (
    'database: {url: "sqlite:///warehouse.db"}\n'
    'defaults: {schedule: "${SX_CACHE_CRON:-*/5 * * * *}"}\n'
    "receivers: {ops: {channel: log}}\n"
    "watch:\n"
    "  - {name: shop_checks, checks: ['shop/*', 'billing/invoices:not_null_id'], notify: [ops]}\n"
    "alerts:\n"
    "  - {name: first, query: \"SELECT 'OK' AS status\"}\n"
    "  - {name: second, query: \"SELECT 'ALERT' AS status, 42 AS actual_value\", notify: [ops], for: 2}\n"
    "  - {name: third, query: \"SELECT 'OK' AS status\", tags: {team: data}}\n"
)
FIXTURES = [
    *sorted(Path(__file__).parent.glob("fixtures/valid/*.yaml")),
    Path(__file__).parents[1] / "examples/alerts.yaml",
]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="handing files to another user needs root")


@pytest.fixture
def alerts(tmp_path: Path) -> Path:
    """An alerts file with three alerts, a receiver and a watch rule."""
    path = tmp_path / "alerts.yaml"
    path.write_text(ALERTS)
    return path.resolve()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test (not created yet)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SQLSENTINEL_CACHE_DIR", str(folder))
    return folder


def save(path: Path) -> None:
    """What a code server does: parse the file, then save its compiled form."""
    save_compiled(load_config(path, environ={}, strict=False), path.read_bytes())


def load(path: Path) -> CompiledConfig | None:
    """What a run worker does first: look for the compiled form of the file's current bytes."""
    return load_compiled(path, path.read_bytes(), {})


def entry_of(path: Path) -> Path:
    """Where the compiled form of ``path``'s current bytes is kept."""
    return compiled._entry_path(path, path.read_bytes())


def flip(data: bytes, at: int) -> bytes:
    """``data`` with one bit changed at ``at``."""
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings logged so far."""
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


class Plant:
    """An object whose unpickling creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return builtins.open, (str(self.marker), "w")


@contextlib.contextmanager
def acting_as(uid: int) -> Iterator[None]:
    """Run the block with ``uid`` as the effective user (file permissions apply, even to root)."""
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)


class TestFolder:
    def test_a_folder_it_creates_is_0700_and_its_entries_0600_whatever_the_umask(
        self, alerts: Path, cache: Path
    ) -> None:
        """With umask 000, the cache folder it creates is still 0700 and each entry 0600."""
        previous = os.umask(0)
        try:
            save(alerts)
        finally:
            os.umask(previous)
        assert stat.S_IMODE(cache.stat().st_mode) == 0o700
        assert stat.S_IMODE(entry_of(alerts).stat().st_mode) == 0o600
        assert [p.name for p in cache.iterdir()] == [entry_of(alerts).name]  # no temporary file left behind

    def test_a_world_writable_folder_is_refused_with_one_warning_and_the_file_parsed(
        self, alerts: Path, cache: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 0777 folder is neither read nor written nor fixed, warned about once, and runs still get the alerts."""
        save(alerts)  # a valid entry, written while the folder was private
        cache.chmod(0o777)
        caplog.set_level(logging.WARNING, logger="sqlsentinel")
        assert load(alerts) is None
        assert load(alerts) is None
        config = cached_config(alerts, compiled=True)
        assert not isinstance(config, CompiledConfig)
        assert config.alert_names == ["first", "second", "third"]
        [warning] = warnings(caplog)
        assert str(cache) in warning and "writable by group or others (mode 0777)" in warning
        assert stat.S_IMODE(cache.stat().st_mode) == 0o777

    def test_a_symbolic_link_in_place_of_the_folder_is_not_followed(
        self, alerts: Path, cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A link planted where the cache folder goes (to a private folder of the user) is neither used nor
        written through: another folder never becomes the cache, nor is it pruned."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        cache.symlink_to(elsewhere)
        caplog.set_level(logging.WARNING, logger="sqlsentinel")
        save(alerts)
        assert load(alerts) is None
        assert list(elsewhere.iterdir()) == []
        assert any(str(cache) in warning for warning in warnings(caplog))

    def test_a_group_writable_folder_is_refused_too(self, alerts: Path, cache: Path) -> None:
        """A 0770 folder (a shared group can plant files) is not used."""
        save(alerts)
        cache.chmod(0o770)
        assert load(alerts) is None

    @as_root
    def test_a_folder_owned_by_another_user_is_refused(
        self, alerts: Path, cache: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A private folder that belongs to someone else is not trusted, whatever it holds."""
        save(alerts)
        os.chown(cache, NOBODY, NOBODY)
        caplog.set_level(logging.WARNING, logger="sqlsentinel")
        assert load(alerts) is None
        save(alerts)  # and nothing is written there
        assert [warning for warning in warnings(caplog) if f"owned by uid {NOBODY}" in warning]
        assert len(list(cache.iterdir())) == 1

    def test_a_folder_that_cannot_be_created_is_a_miss(
        self, alerts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A regular file where the folder should be: saving does nothing and loading finds nothing."""
        (tmp_path / "in_the_way").write_text("")
        monkeypatch.setenv("SQLSENTINEL_CACHE_DIR", str(tmp_path / "in_the_way" / "cache"))
        save(alerts)
        assert load(alerts) is None
        assert cached_config(alerts, compiled=True).alert_names == ["first", "second", "third"]

    @as_root
    def test_a_read_only_cache_folder_means_no_cache_and_no_failure(
        self, alerts: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A user whose cache folder is read-only (0500) saves nothing, loads nothing, and raises nothing."""
        base = Path(tempfile.mkdtemp(prefix="sx_readonly_"))
        try:
            base.chmod(0o755)
            folder = base / "cache"
            folder.mkdir(mode=0o500)
            os.chown(folder, NOBODY, NOBODY)
            monkeypatch.setenv("SQLSENTINEL_CACHE_DIR", str(folder))
            config, content = load_config(alerts, environ={}), alerts.read_bytes()
            with acting_as(NOBODY):
                save_compiled(config, content)
                found = load_compiled(alerts, content, {})
            assert found is None
            assert list(folder.iterdir()) == []
        finally:
            shutil.rmtree(base)

    def test_a_full_disk_leaves_no_entry_and_no_temporary_file(self, alerts: Path, cache: Path) -> None:
        """When a write fails midway (here: the file-size limit), nothing is left and the next save works."""
        save(alerts)
        entry = entry_of(alerts)
        entry.unlink()
        limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, (64, limits[1]))
            save(alerts)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
            signal.signal(signal.SIGXFSZ, handler)
        assert list(cache.iterdir()) == []
        assert load(alerts) is None
        save(alerts)
        assert isinstance(load(alerts), CompiledConfig)


class TestEntry:
    @pytest.mark.parametrize(
        "layout",
        [
            pytest.param(lambda key, blob: struct.pack(">Q", len(blob)) + blob, id="previous-pickle-format"),
            pytest.param(lambda key, blob: blob, id="bare-pickle"),
            pytest.param(
                lambda key, blob: (
                    cache_files.PREFIX.pack(cache_files.MAGIC, key, cache_files.checksum(blob), len(blob), 0) + blob
                ),
                id="pickle-behind-a-valid-prefix",
            ),
        ],
    )
    def test_a_planted_pickle_at_the_entry_name_is_never_executed(
        self, alerts: Path, cache: Path, tmp_path: Path, layout: Callable[[bytes, bytes], bytes]
    ) -> None:
        """A pickle that would create a marker file, at the exact entry name, is never unpickled; runs parse."""
        marker = tmp_path / "executed"
        cache.mkdir(mode=0o700)
        entry = entry_of(alerts)
        entry.write_bytes(layout(compiled._key(alerts, alerts.read_bytes()), pickle.dumps(Plant(marker))))
        entry.chmod(0o600)
        assert load(alerts) is None
        config = cached_config(alerts, compiled=True)
        assert config.alert("second").query == "SELECT 'ALERT' AS status, 42 AS actual_value"
        assert not marker.exists()
        assert isinstance(load(alerts), CompiledConfig)  # the planted file was replaced by a real entry
        assert "pickle" not in vars(compiled)

    @as_root
    def test_an_entry_owned_by_another_user_is_refused_with_a_warning_then_replaced(
        self, alerts: Path, cache: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An entry that someone else owns is not read; the next save puts one of ours in its place."""
        save(alerts)
        entry = entry_of(alerts)
        os.chown(entry, NOBODY, NOBODY)
        caplog.set_level(logging.WARNING, logger="sqlsentinel")
        assert load(alerts) is None
        assert any(f"{entry} is owned by uid {NOBODY}" in warning for warning in warnings(caplog))
        save(alerts)
        assert entry.stat().st_uid == os.geteuid()
        assert isinstance(load(alerts), CompiledConfig)

    def test_an_entry_writable_by_others_is_refused(
        self, alerts: Path, cache: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 0666 entry could have been rewritten by anyone: it is not read."""
        save(alerts)
        entry_of(alerts).chmod(0o666)
        caplog.set_level(logging.WARNING, logger="sqlsentinel")
        assert load(alerts) is None
        assert any("writable by group or others (mode 0666)" in warning for warning in warnings(caplog))

    def test_a_symlink_at_the_entry_path_is_not_followed_for_reading_or_writing(
        self, alerts: Path, cache: Path, tmp_path: Path
    ) -> None:
        """A link to a valid entry is not read, and a save replaces the link instead of writing through it."""
        save(alerts)
        entry, elsewhere = entry_of(alerts), tmp_path / "elsewhere.compiled"
        entry.rename(elsewhere)
        entry.symlink_to(elsewhere)
        assert load(alerts) is None
        elsewhere.write_bytes(b"not to be written")
        save(alerts)
        assert not entry.is_symlink()
        assert elsewhere.read_bytes() == b"not to be written"
        assert isinstance(load(alerts), CompiledConfig)

    def test_a_fifo_at_the_entry_path_is_a_miss_without_hanging(self, alerts: Path, cache: Path) -> None:
        """Opening a planted FIFO for reading would wait for a writer forever; it is refused at once."""
        cache.mkdir(mode=0o700)
        os.mkfifo(entry_of(alerts), 0o600)
        assert load(alerts) is None

    @pytest.mark.parametrize(
        "damage",
        [
            pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
            pytest.param(lambda data: b"", id="empty"),
            pytest.param(lambda data: os.urandom(len(data)), id="garbage"),
            pytest.param(lambda data: data.replace(b"format 2", b"format 9", 1), id="wrong-version"),
            pytest.param(lambda data: flip(data, cache_files.PREFIX.size + 20), id="flipped-header-byte"),
            pytest.param(lambda data: flip(data, len(cache_files.MAGIC) + 5), id="flipped-key-byte"),
            pytest.param(lambda data: data + b"\0", id="trailing-byte"),
        ],
    )
    def test_a_damaged_entry_is_a_miss(self, alerts: Path, cache: Path, damage: Callable[[bytes], bytes]) -> None:
        """Truncated, empty, garbage, other-version or altered entries are misses, and runs still get the alerts."""
        save(alerts)
        entry = entry_of(alerts)
        entry.write_bytes(damage(entry.read_bytes()))
        assert load(alerts) is None
        assert cached_config(alerts, compiled=True).alert("third").tags == {"team": "data"}

    def test_the_entry_of_another_file_copied_to_this_name_is_a_miss(
        self, alerts: Path, cache: Path, tmp_path: Path
    ) -> None:
        """An entry carries its full key: a valid entry under the wrong name is not used."""
        other = tmp_path / "other.yaml"
        other.write_text(ALERTS.replace("third", "fourth"))
        save(other)
        cache.joinpath(entry_of(alerts).name).write_bytes(entry_of(other.resolve()).read_bytes())
        assert load(alerts) is None

    def test_an_alert_damaged_after_its_header_was_read_comes_from_a_parse(self, alerts: Path, cache: Path) -> None:
        """The header is fine but an alert's bytes no longer match their digest: that alert is parsed, not failed."""
        save(alerts)
        config = load(alerts)
        assert isinstance(config, CompiledConfig)
        offset, length = config.offsets[1]
        entry = entry_of(alerts)
        data = bytearray(entry.read_bytes())
        data[offset + length - 3] ^= 1
        entry.write_bytes(bytes(data))
        assert config.alert("second") == load_config(alerts, environ={}).alert("second")

    def test_an_entry_removed_after_its_header_was_read_means_the_alerts_are_parsed(
        self, alerts: Path, cache: Path
    ) -> None:
        """A code server pruning the entry under a running worker does not fail the run."""
        save(alerts)
        config = load(alerts)
        assert isinstance(config, CompiledConfig)
        entry_of(alerts).unlink()
        assert config.alerts == load_config(alerts, environ={}).alerts


class TestValidity:
    def test_other_bytes_another_path_a_changed_variable_or_other_code_are_misses(
        self, alerts: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An entry is used only for the same path, bytes, config code and substituted variables."""
        content = alerts.read_bytes()
        save_compiled(load_config(alerts, environ={"SX_CACHE_CRON": "@hourly"}), content)
        assert load_compiled(alerts, content, {"SX_CACHE_CRON": "@hourly"}) is not None
        assert load_compiled(alerts, content, {"SX_CACHE_CRON": "@daily"}) is None
        assert load_compiled(alerts, content + b"\n", {"SX_CACHE_CRON": "@hourly"}) is None
        assert load_compiled(tmp_path / "copy.yaml", content, {"SX_CACHE_CRON": "@hourly"}) is None
        monkeypatch.setattr(compiled, "_code_digest", lambda: b"another version of the models")
        assert load_compiled(alerts, content, {"SX_CACHE_CRON": "@hourly"}) is None

    def test_the_code_digest_covers_the_whole_package(self, tmp_path: Path) -> None:
        """An upgrade that changes any module validation uses, not only config/, makes every entry a miss: a copy
        of the package has the same digest until its durations.py is edited."""
        package = Path(compiled.__file__).resolve().parent.parent
        copy = tmp_path / "sqlsentinel_dagster"
        shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
        assert compiled.code_digest(copy) == compiled.code_digest(package)
        durations = copy / "durations.py"
        durations.write_text(durations.read_text() + "\n# an upgrade\n")
        assert compiled.code_digest(copy) != compiled.code_digest(package)

    @pytest.mark.parametrize(
        "fixture",
        FIXTURES,
        ids=lambda path: f"{path.parent.name}/{path.name}",
    )
    def test_every_valid_fixture_reads_back_equal_to_its_parse(
        self, fixture: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A cache hit gives exactly what parsing gives: alerts, settings, watch rules, notes and variables."""
        monkeypatch.setenv("DATABASE_URL", "sqlite:///warehouse.db")
        monkeypatch.setenv("ALERT_TZ", "UTC")
        parsed = load_config(fixture, strict=False)
        save_compiled(parsed, fixture.read_bytes())
        found = load_compiled(parsed.path, fixture.read_bytes(), os.environ)
        assert isinstance(found, CompiledConfig)
        assert found.alerts == parsed.alerts
        assert found.file.model_copy(update={"alerts": []}) == parsed.file.model_copy(update={"alerts": []})
        assert (found.notes, found.environment, found.path) == (parsed.notes, parsed.environment, parsed.path)

    def test_an_entry_is_json_data(self, alerts: Path, cache: Path) -> None:
        """After its fixed prefix an entry is a JSON header then one JSON document per alert."""
        save(alerts)
        data = entry_of(alerts).read_bytes()
        *_, header_length, _ = cache_files.PREFIX.unpack(data[: cache_files.PREFIX.size])
        header = json.loads(data[cache_files.PREFIX.size : cache_files.PREFIX.size + header_length])
        body = data[cache_files.PREFIX.size + header_length :]
        names = [json.loads(body[offset : offset + length])["name"] for _, offset, length, _ in header["alerts"]]
        assert names == ["first", "second", "third"]
        assert header["file"]["watch"][0]["checks"] == ["shop/*", "billing/invoices:not_null_id"]

    def test_a_file_that_loads_no_alert_is_not_cached(self, tmp_path: Path, cache: Path) -> None:
        """Runs must parse an unusable file themselves, so that its last valid version runs."""
        broken = tmp_path / "broken.yaml"
        broken.write_text("alerts: [{name: x}]\n")
        save(broken.resolve())
        assert not cache.exists() or list(cache.iterdir()) == []


WORKER = """
import json, sys
import dagster as dg
import sqlsentinel_dagster.definitions.resources as resources
from dagster._core.definitions.reconstruct import ReconstructableRepository  # as Dagster's run worker does
from dagster._core.execution.api import execute_run

def no_parsing(*args, **kwargs):
    raise AssertionError("the run worker parsed the alerts file")

if sys.argv[2] == "cached":
    resources.load_config = no_parsing
with dg.DagsterInstance.get() as instance:
    recon = ReconstructableRepository.for_file("defs.py", "defs").get_reconstructable_job(sys.argv[1])
    run = instance.create_run_for_job(job_def=recon.get_definition(), job_code_origin=recon.get_python_origin())
    result = execute_run(recon, run, instance)
    status = instance.get_run_by_id(run.run_id).tags.get("sqlsentinel/status")
print(json.dumps({"success": result.success, "status": status}))
"""


class TestRunWorker:
    @pytest.fixture
    def location(self, tmp_path: Path, sqlite_warehouse: Path) -> dict[str, str]:
        """A code location over the three alerts, its DAGSTER_HOME and cache folder; returns the environment."""
        (tmp_path / "alerts.yaml").write_text(ALERTS.replace("sqlite:///warehouse.db", f"sqlite:///{sqlite_warehouse}"))
        (tmp_path / "defs.py").write_text(
            "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml')\n"
        )
        (tmp_path / "home").mkdir()
        return {
            **os.environ,
            "DAGSTER_HOME": str(tmp_path / "home"),
            "SQLSENTINEL_CACHE_DIR": str(tmp_path / "cache"),
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }

    @staticmethod
    def run(args: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
        """Run ``args``; the last line of its output, as JSON (or {} for a command that prints none)."""
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        lines = done.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}

    def test_a_run_worker_reads_the_entry_the_code_server_wrote(self, tmp_path: Path, location: dict[str, str]) -> None:
        """The code server's load writes a private entry; a run then uses it without parsing and leaves it as is."""
        validate = [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-f", "defs.py"]
        self.run(validate, tmp_path, location)
        cache = Path(location["SQLSENTINEL_CACHE_DIR"])
        [entry] = cache.glob("*.compiled")
        before = entry.stat()
        assert (stat.S_IMODE(cache.stat().st_mode), stat.S_IMODE(before.st_mode)) == (0o700, 0o600)
        outcome = self.run([sys.executable, "-c", WORKER, "sqlsentinel__second", "cached"], tmp_path, location)
        assert outcome == {"success": True, "status": "ALERT"}
        assert (entry.stat().st_ino, entry.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    @as_root
    def test_a_run_worker_parses_past_a_foreign_entry_and_replaces_it(
        self, tmp_path: Path, location: dict[str, str]
    ) -> None:
        """An entry handed to another user is not read by the run, which parses, succeeds and saves its own."""
        validate = [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-f", "defs.py"]
        self.run(validate, tmp_path, location)
        [entry] = Path(location["SQLSENTINEL_CACHE_DIR"]).glob("*.compiled")
        os.chown(entry, NOBODY, NOBODY)
        outcome = self.run([sys.executable, "-c", WORKER, "sqlsentinel__second", "parse"], tmp_path, location)
        assert outcome == {"success": True, "status": "ALERT"}
        assert entry.stat().st_uid == os.geteuid()
