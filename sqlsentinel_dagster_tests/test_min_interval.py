"""``min_interval`` (SQL Sentinel's): a new firing notification is held while the last one sent is younger than it.
Real SQLite warehouse and state through ``sqlsentinel run``; the timing itself is proved in test_decision.py."""

from __future__ import annotations

from pathlib import Path

from .test_no_data import Alert, events


class TestMinInterval:
    def test_a_flapping_alerts_second_firing_is_held_across_runs(self, tmp_path: Path) -> None:
        """Fire, resolve, fire again within min_interval: the second firing is held (recorded, not sent), its
        reason says until when; the resolved notice of the first still went out."""
        alert = Alert(tmp_path, None)
        path = tmp_path / "alerts.yaml"
        path.write_text(path.read_text().replace("notify:", "min_interval: 1h, notify:"), encoding="utf-8")
        alert.rows(9)
        assert events(alert.run()) == ["firing"]
        alert.rows(1)
        assert events(alert.run()) == ["resolved"]
        alert.rows(9)
        run = alert.run()
        assert (run["status"], run["decision"], events(run)) == ("ALERT", "held_min_interval", [])
        assert "younger than min_interval; sent at" in run["reason"]
        again = alert.run()
        assert (again["decision"], events(again)) == ("still_held", [])
