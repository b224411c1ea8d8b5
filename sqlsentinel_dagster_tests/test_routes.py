"""Routing by labels: `routes:` as a list of matchers and receivers, walked at load and again per notification, and
`recipients_from`, an email target whose recipients come from each instance's row."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sqlsentinel_dagster import ConfigError, load_config
from sqlsentinel_dagster.config import LoadedConfig, RoutedBy, recipients_of
from sqlsentinel_dagster.config.compiled import CompiledConfig, load_compiled, save_compiled
from sqlsentinel_dagster.state.instance_model import InstanceLabels
from sqlsentinel_dagster.state.silences import AlertLabels

WriteAlerts = Callable[..., Path]

HEAD = """
database: {url: "sqlite:///warehouse.db"}
receivers:
  oncall: {channel: pagerduty}
  chat: {channel: slack, webhook_url: "https://hooks.example.com/chat"}
  orders_team: [{channel: slack, webhook_url: "https://hooks.example.com/orders"}, {channel: log}]
  data_team: {channel: webhook, url: "https://hooks.example.com/data"}
  audit: {channel: log}
"""


def _load(write_alerts: WriteAlerts, body: str, **kwargs: Any) -> LoadedConfig:
    return load_config(write_alerts(HEAD + body), environ={}, **kwargs)


def _alert(name: str, extra: str = "") -> str:
    return f'  - {{name: {name}, query: "SELECT \'OK\' AS status", schedule: "@hourly"{extra}}}\n'


def _instances(name: str, extra: str = "") -> str:
    query = "SELECT '/orders' AS endpoint, 'OK' AS status"
    return f'  - {{name: {name}, query: "{query}", schedule: "@hourly", instances: {{by: [endpoint]}}{extra}}}\n'


def _notify(config: LoadedConfig) -> dict[str, list[Any]]:
    return {alert.name: alert.notify for alert in config.alerts}


def _instance(config: LoadedConfig, alert: str, tags: dict[str, str] | None = None, **labels: str) -> InstanceLabels:
    """The labels of one instance of ``alert``, as the run builds them."""
    found = config.alert(alert)
    return InstanceLabels(
        f"{alert}{{...}}", found.severity, found.owners, tags or found.tags, alert_name=alert, labels=labels
    )


def _problems(write_alerts: WriteAlerts, body: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(write_alerts, body)
    return [f"{p.location}: {p.message}" for p in caught.value.problems]


class TestRoutesBySeverity:
    def test_the_mapping_form_still_routes_by_severity_and_records_no_routes(self, write_alerts: WriteAlerts) -> None:
        """`routes: {severity: [receivers]}` gives alerts without notify their severity's receivers, as before."""
        config = _load(
            write_alerts,
            "routes: {critical: [oncall, chat], warning: [chat]}\ndefaults: {notify: [audit]}\nalerts:\n"
            + _alert("pager", ", severity: critical")
            + _alert("warned")
            + _alert("informed", ", severity: info"),
        )
        assert _notify(config) == {"pager": ["oncall", "chat"], "warned": ["chat"], "informed": ["audit"]}
        assert all(alert.routed_by is None for alert in config.alerts)
        assert config.routed_positions(config.alert("pager"), AlertLabels("pager", "critical")) is None


class TestRouteList:
    def test_the_first_matching_route_wins(self, write_alerts: WriteAlerts) -> None:
        """Each alert takes the receivers of the first route whose matchers all match it, and no later route's."""
        config = _load(
            write_alerts,
            """
routes:
  - match: ["severity=critical"]
    receivers: [oncall]
  - match: ["severity=~critical|error"]
    receivers: [chat]
  - receivers: [audit]
alerts:
"""
            + _alert("pager", ", severity: critical")
            + _alert("erring", ", severity: error")
            + _alert("informed", ", severity: info"),
        )
        assert _notify(config) == {"pager": ["oncall"], "erring": ["chat"], "informed": ["audit"]}
        assert config.alert("pager").routed_by == RoutedBy(routes=[0], fallthrough=False)
        assert config.alert("erring").routed_by == RoutedBy(routes=[1], fallthrough=False)

    def test_continue_also_tries_the_routes_below(self, write_alerts: WriteAlerts) -> None:
        """A matching route with `continue: true` adds its receivers and lets the next matching route add its own."""
        config = _load(
            write_alerts,
            """
routes:
  - match: ["severity=critical"]
    receivers: [oncall, chat]
    continue: true
  - match: ["team=data"]
    receivers: [chat, data_team]
  - receivers: [audit]
alerts:
"""
            + _alert("both", ", severity: critical, tags: {team: data}")
            + _alert("critical_only", ", severity: critical"),
        )
        assert _notify(config) == {
            "both": ["oncall", "chat", "data_team"],
            "critical_only": ["oncall", "chat", "audit"],
        }
        assert config.alert("critical_only").routed_by == RoutedBy(routes=[0, 2], fallthrough=False)

    def test_a_route_without_match_catches_every_alert(self, write_alerts: WriteAlerts) -> None:
        """A route with no `match` (or an empty one) matches every alert that reaches it."""
        config = _load(
            write_alerts,
            "routes:\n  - {match: [], receivers: [data_team]}\n  - {receivers: [audit]}\nalerts:\n"
            + _alert("one", ", severity: info")
            + _alert("two", ", owners: [a@example.com]"),
        )
        assert _notify(config) == {"one": ["data_team"], "two": ["data_team"]}

    @pytest.mark.parametrize(
        ("matcher", "routed"),
        [
            ("team=data", {"tagged"}),
            ("tag:team=data", {"tagged"}),
            ("tier~gold*", {"tagged"}),
            ("severity=~error|critical", {"tagged", "orders_late"}),
            ("owner=ops@example.com", {"owned"}),
            ("owners~team:*", {"orders_late"}),
            ("alert=orders_late", {"orders_late"}),
            ("name~own*", {"owned"}),
        ],
    )
    def test_matchers_on_tags_severity_owners_and_the_alert_name(
        self, write_alerts: WriteAlerts, matcher: str, routed: set[str]
    ) -> None:
        """Route matchers match what silence matchers match: tags (by name or tag:name), severity, owners, name."""
        config = _load(
            write_alerts,
            f'routes:\n  - {{match: ["{matcher}"], receivers: [oncall]}}\n  - {{receivers: [audit]}}\nalerts:\n'
            + _alert("tagged", ", severity: error, tags: {team: data, tier: gold-1}")
            + _alert("owned", ", severity: info, owners: [ops@example.com]")
            + _alert("orders_late", ", severity: critical, owners: ['team:orders']"),
        )
        assert {alert.name for alert in config.alerts if alert.notify == ["oncall"]} == routed
        assert {alert.name for alert in config.alerts if alert.notify == ["audit"]} == {
            "tagged",
            "owned",
            "orders_late",
        } - routed

    def test_an_instance_alert_gets_every_route_its_instances_may_match(self, write_alerts: WriteAlerts) -> None:
        """A matcher on an instance's label column is undecided at load: its route's receivers are added and the
        walk goes on, while an alert without instances is not routed by it."""
        config = _load(
            write_alerts,
            """
routes:
  - match: ["endpoint=/orders"]
    receivers: [orders_team]
  - match: ["team=data", "instance=~.*users.*"]
    receivers: [chat]
  - match: ["team=finance"]
    receivers: [oncall]
  - receivers: [data_team]
alerts:
"""
            + _instances("by_endpoint", ", tags: {team: data}")
            + _alert("whole", ", tags: {team: data}"),
        )
        assert _notify(config) == {"by_endpoint": ["orders_team", "chat", "data_team"], "whole": ["data_team"]}
        assert config.alert("by_endpoint").routed_by == RoutedBy(routes=[0, 1, 3], fallthrough=False)

    def test_an_alert_name_pattern_may_match_an_instance_name(self, write_alerts: WriteAlerts) -> None:
        """For an instance alert, `alert=` another alert's exact name does not match, a pattern it fails may match
        an instance's name, and its own name matches for sure."""
        config = _load(
            write_alerts,
            """
routes:
  - {match: ["alert=other_alert"], receivers: [oncall]}
  - {match: ["alert=~.*orders.*"], receivers: [orders_team]}
  - {match: ["alert=by_endpoint"], receivers: [chat]}
  - {receivers: [audit]}
alerts:
"""
            + _instances("by_endpoint"),
        )
        assert _notify(config) == {"by_endpoint": ["orders_team", "chat"]}


class TestRoutedPositions:
    BODY = """
routes:
  - match: ["endpoint=/orders"]
    receivers: [orders_team]
  - match: ["endpoint=~/pay.*", "severity=warning"]
    receivers: [chat, audit]
    continue: true
  - receivers: [data_team]
alerts:
"""

    def test_each_label_set_selects_the_positions_of_its_routes_targets(self, write_alerts: WriteAlerts) -> None:
        """Walking again per instance: a receiver of two targets gives both positions, `continue` adds the next
        route's, and an instance no specific route matches gets the catch-all's."""
        config = _load(write_alerts, self.BODY + _instances("by_endpoint"))
        alert = config.alert("by_endpoint")
        assert alert.notify == ["orders_team", "chat", "audit", "data_team"]
        assert [t.channel for t in config.targets(alert)] == ["slack", "log", "slack", "log", "webhook"]
        assert config.routed_positions(alert, _instance(config, "by_endpoint", endpoint="/orders")) == [0, 1]
        assert config.routed_positions(alert, _instance(config, "by_endpoint", endpoint="/payments")) == [2, 3, 4]
        assert config.routed_positions(alert, _instance(config, "by_endpoint", endpoint="/users")) == [4]

    def test_the_alert_s_own_labels_select_only_the_routes_without_instance_matchers(
        self, write_alerts: WriteAlerts
    ) -> None:
        """A notification about the alert as a whole (no label columns) matches no instance matcher."""
        config = _load(write_alerts, self.BODY + _instances("by_endpoint"))
        alert = config.alert("by_endpoint")
        assert config.routed_positions(alert, AlertLabels("by_endpoint", "warning")) == [4]

    def test_the_result_is_the_same_on_every_call(self, write_alerts: WriteAlerts) -> None:
        """The precomputed routes answer many calls alike, whatever order the label sets come in."""
        config = _load(write_alerts, self.BODY + _instances("by_endpoint"))
        alert = config.alert("by_endpoint")
        endpoints = ["/orders", "/payments", "/users"] * 1000
        found = [config.routed_positions(alert, _instance(config, "by_endpoint", endpoint=e)) for e in endpoints]
        assert found[:3] == [[0, 1], [2, 3, 4], [4]] and found[-3:] == found[:3] and len(found) == 3000

    def test_defaults_notify_is_told_when_no_route_matches(self, write_alerts: WriteAlerts) -> None:
        """When the walk may end without a match, defaults.notify is added and is what a non-matching instance
        gets; `fallthrough` records it."""
        config = _load(
            write_alerts,
            "routes:\n  - {match: [endpoint=/orders], receivers: [orders_team]}\ndefaults: {notify: [audit]}\n"
            "alerts:\n" + _instances("by_endpoint"),
        )
        alert = config.alert("by_endpoint")
        assert alert.notify == ["orders_team", "audit"]
        assert alert.routed_by == RoutedBy(routes=[0], fallthrough=True)
        assert config.routed_positions(alert, _instance(config, "by_endpoint", endpoint="/users")) == [2]
        assert config.routed_positions(alert, _instance(config, "by_endpoint", endpoint="/orders")) == [0, 1]

    def test_no_route_may_match_falls_back_to_defaults_notify_for_every_target(self, write_alerts: WriteAlerts) -> None:
        """An alert no route may match takes defaults.notify as before, and every target applies (None)."""
        config = _load(
            write_alerts,
            "routes:\n  - {match: [severity=critical], receivers: [oncall]}\ndefaults: {notify: [audit]}\n"
            "alerts:\n" + _alert("quiet"),
        )
        alert = config.alert("quiet")
        assert (alert.notify, alert.routed_by) == (["audit"], None)
        assert config.routed_positions(alert, AlertLabels("quiet", "warning")) is None

    def test_an_alert_with_its_own_notify_ignores_the_routes(self, write_alerts: WriteAlerts) -> None:
        """Own notify wins: routes are not walked, and every target applies."""
        config = _load(write_alerts, self.BODY + _instances("by_endpoint", ", notify: [oncall, chat]"))
        alert = config.alert("by_endpoint")
        assert (alert.notify, alert.routed_by) == (["oncall", "chat"], None)
        assert config.routed_positions(alert, _instance(config, "by_endpoint", endpoint="/orders")) is None

    def test_a_watch_rule_is_routed_by_its_severity(self, write_alerts: WriteAlerts) -> None:
        """A watch rule without notify walks the routes as an alert named like the rule, of severity error when it
        watches ERROR failures, else warning."""
        config = _load(
            write_alerts,
            """
routes:
  - {match: ["severity=error"], receivers: [oncall]}
  - {match: ["alert=lenient"], receivers: [chat]}
  - {receivers: [audit]}
alerts: []
watch:
  - {name: strict, checks: "*"}
  - {name: lenient, checks: "*", severity: [WARN]}
  - {name: other, checks: "*", severity: [WARN]}
""",
        )
        channels = {rule.name: [t.channel for t in config.watch_targets(rule)] for rule in config.watch_rules}
        assert channels == {"strict": ["pagerduty"], "lenient": ["slack"], "other": ["log"]}


class TestProblems:
    def test_a_broken_route_takes_out_only_the_alerts_it_routes(self, write_alerts: WriteAlerts) -> None:
        """Loaded leniently, a route with a problem is left out with the alerts it may route; the others keep
        their routes, renumbered, and resolve as before."""
        config = _load(
            write_alerts,
            """
routes:
  - {match: ["severity=critical"], receivers: [oncall]}
  - {match: ["team=~(broken"], receivers: [chat]}
  - {receivers: [data_team]}
alerts:
"""
            + _alert("pager", ", severity: critical")
            + _alert("reaches_the_broken_route"),
            strict=False,
        )
        assert config.alert_names == ["pager"]
        assert [p.location for p in config.problems] == ["routes[1].match[0]"]
        assert len(config.file.routes) == 2
        alert = config.alert("pager")
        assert config.routed_positions(alert, AlertLabels("pager", "critical")) == [0]

    def test_writing_routed_by_is_refused(self, write_alerts: WriteAlerts) -> None:
        """`routed_by` is the loader's record: an alert that writes it is told so."""
        problems = _problems(write_alerts, "alerts:\n" + _alert("sly", ", routed_by: {routes: [0], fallthrough: no}"))
        assert problems == [
            "alerts[0] (sly).routed_by: unknown key 'routed_by': the loader sets it on alerts that take notify "
            "from routes:; do not write it"
        ]

    def test_recipients_from_needs_an_instance_alert_at_each_use(self, write_alerts: WriteAlerts) -> None:
        """A receiver with recipients_from is accepted where an instance alert uses it and refused, at the use,
        where an alert without instances does (here through a route)."""
        body = """
  per_row: {channel: email, recipients_from: owner_email}
routes:
  - {match: ["team=data"], receivers: [per_row]}
alerts:
"""
        problems = _problems(
            write_alerts,
            body + _instances("per_endpoint", ", tags: {team: data}") + _alert("plain", ", tags: {team: data}"),
        )
        assert problems == [
            "alerts[1] (plain): receiver 'per_row' (notify from routes[0]): recipients_from reads a column of each "
            "instance's row; the alert has no instances:"
        ]

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("''", "recipients_from is empty; name the column of each row that holds its recipients"),
            ("x" * 201, "recipients_from is 201 characters long; a column name has at most 200"),
            ('"a\\x07b"', "recipients_from 'a\\x07b' has control characters; name a column of the query's result"),
        ],
    )
    def test_recipients_from_must_be_a_plausible_column_name(
        self, write_alerts: WriteAlerts, value: str, message: str
    ) -> None:
        """An empty, overlong or control-character column name is refused at the key, saying what is allowed."""
        body = "alerts:\n" + _instances("a", f", notify: [{{channel: email, recipients_from: {value}}}]")
        assert _problems(write_alerts, body) == [f"alerts[0] (a).notify[0].recipients_from: {message}"]

    def test_recipients_from_makes_recipients_optional_and_both_may_be_given(self, write_alerts: WriteAlerts) -> None:
        """With recipients_from, recipients may be left out; without either the target is refused."""
        both = ", notify: [{channel: email, recipients: [a@example.com], recipients_from: owner}]"
        config = _load(
            write_alerts,
            "alerts:\n"
            + _instances("a", both)
            + _instances("b", ", notify: [{channel: email, recipients_from: owner}]"),
        )
        assert [(t.recipients, t.recipients_from) for a in config.alerts for t in a.notify] == [  # type: ignore[union-attr]
            (["a@example.com"], "owner"),
            ([], "owner"),
        ]
        problems = _problems(write_alerts, "alerts:\n" + _instances("c", ", notify: [{channel: email}]"))
        assert problems == [
            "alerts[0] (c).notify[0]: required key 'recipients' is missing; give recipients (email addresses), "
            "recipients_from (the column of each instance's row that holds its recipients), or both"
        ]


class TestRecipientsOf:
    @pytest.mark.parametrize(
        ("value", "valid", "invalid"),
        [
            ("a@example.com", ["a@example.com"], []),
            (" a@example.com, b@example.com;c@example.com ", ["a@example.com", "b@example.com", "c@example.com"], []),
            ("a@example.com;;a@example.com,", ["a@example.com"], []),
            ("a@example.com, not an address, x@y", ["a@example.com"], ["not an address", "x@y"]),
            (["a@example.com", "b@example.com; c@"], ["a@example.com", "b@example.com"], ["c@"]),
            (b"a@example.com", ["a@example.com"], []),
            (None, [], []),
            ("", [], []),
            (42, [], ["42"]),
        ],
    )
    def test_a_column_value_splits_into_addresses_and_what_is_not_one(
        self, value: Any, valid: list[str], invalid: list[str]
    ) -> None:
        """One address or several separated by ',' or ';': valid ones in order without repeats, the rest apart."""
        assert recipients_of(value) == (valid, invalid)

    def test_an_address_with_a_control_character_is_not_valid(self) -> None:
        """A part that would smuggle a control character into a mail header is reported, not used."""
        assert recipients_of("a\x00b@example.com") == ([], ["a\x00b@example.com"])


def test_routing_survives_the_compiled_cache(
    write_alerts: WriteAlerts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run reading the compiled form resolves an instance's targets exactly as the parse did."""
    monkeypatch.setenv("SQLSENTINEL_CACHE_DIR", str(tmp_path / "cache"))
    path = write_alerts(HEAD + TestRoutedPositions.BODY + _instances("by_endpoint"))
    parsed = load_config(path, environ={})
    save_compiled(parsed, path.read_bytes())
    found = load_compiled(parsed.path, path.read_bytes(), os.environ)
    assert isinstance(found, CompiledConfig)
    alert = found.alert("by_endpoint")
    assert alert.routed_by == RoutedBy(routes=[0, 1, 2], fallthrough=False)
    assert found.routed_positions(alert, _instance(found, "by_endpoint", endpoint="/payments")) == [2, 3, 4]
