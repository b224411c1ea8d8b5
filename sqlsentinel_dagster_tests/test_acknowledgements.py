"""Acknowledgements (``sqlsentinel ack``, the ``sqlsentinel_ack`` job): an acknowledged alert or instance sends no
reminders until it resolves, its resolved notice names who acknowledged it, the next firing notifies as usual, and
a PagerDuty incident gets the acknowledge event. Real SQLite state, an injected clock, a loopback PagerDuty."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.definitions.resources import NotificationsResource
from sqlsentinel_dagster.state.acks import acknowledge
from sqlsentinel_dagster.state.admin import alert_statuses
from sqlsentinel_dagster.state.store import StateStore

from . import test_instances
from .loopback import Receiver
from .test_instances import THREE_REGIONS, SetupFactory, named

_server, receiver, make_setup = test_instances._server, test_instances.receiver, test_instances.make_setup

PAGERDUTY = "/v2/enqueue"


def _incident_events(receiver: Receiver) -> list[tuple[str, str]]:
    return [(r.body["event_action"], r.body["dedup_key"]) for r in receiver.delivered() if r.path == PAGERDUTY]


class TestAcknowledge:
    def test_an_acknowledged_instance_stops_reminding_and_names_who_when_it_resolves(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """us and eu fire (hourly reminders); ana acknowledges us: PagerDuty gets acknowledge for us, reminders go
        on for eu only, us's resolved notice says who acknowledged it, and us firing again notifies as usual."""
        resource = NotificationsResource(
            pagerduty_events_url=f"{receiver.url}{PAGERDUTY}", retry_base_delay_seconds=0.01
        )
        setup = make_setup(
            "[{channel: pagerduty, routing_key: R0UTING}]",
            notifications_resource=resource,
            rows=THREE_REGIONS,
            extra="    repeat_interval: 1h",
        )
        setup.run()
        assert acknowledge(setup.store, named("us"), author="ana", reason="fixing the load") == [named("us")]
        setup.clock.advance(minutes=5)
        setup.run()
        assert _incident_events(receiver)[2:] == [("acknowledge", f"sqlsentinel/{named('us')}")]
        setup.clock.advance(hours=1)
        setup.run()
        assert _incident_events(receiver)[3:] == [("trigger", f"sqlsentinel/{named('eu')}")]  # eu's reminder only
        statuses = {s.alert: s for s in alert_statuses(setup.store)}
        assert statuses[named("us")].acknowledged == "ana: fixing the load"
        setup.set_rows([("us", 1.0), ("eu", 7.0), ("ap", 1.0)])
        setup.clock.advance(minutes=5)
        cycle = setup.run()
        assert _incident_events(receiver)[4:] == [("resolve", f"sqlsentinel/{named('us')}")]
        assert setup.decisions(named("us"))[-1] == "resolved"
        assert cycle.instances is not None
        [us] = [d for d in cycle.instances.instances if d.name == named("us")]
        assert us.decision.reason == "resolved (acknowledged by ana)"
        setup.set_rows(THREE_REGIONS)
        setup.clock.advance(minutes=5)
        setup.run()
        assert _incident_events(receiver)[5:] == [("trigger", f"sqlsentinel/{named('us')}")]

    def test_only_a_firing_alert_can_be_acknowledged_and_the_author_and_reason_are_bounded(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """ap is OK: nothing to acknowledge; an empty reason, a 300-character author or one with ': ' (the
        history's separator) is refused; the alert's name acknowledges every firing instance of it."""
        setup = make_setup("[{channel: log}]", rows=THREE_REGIONS)
        setup.run()
        with pytest.raises(ValueError, match="is not firing: there is nothing to acknowledge"):
            acknowledge(setup.store, named("ap"), author="ana", reason="x")
        with pytest.raises(ValueError, match=r"author is 300 characters long; at most 255 are allowed; a reason is"):
            acknowledge(setup.store, named("us"), author="a" * 300, reason=" ")
        with pytest.raises(ValueError, match="author: ': ' is not allowed in a name"):
            acknowledge(setup.store, named("us"), author="ana: lead", reason="x")
        names = acknowledge(setup.store, "error_rate_by_region", author="ana", reason="all of them")
        assert names == [named("eu"), named("us")]


class TestFromTheCommandLineAndTheLaunchpad:
    def test_sqlsentinel_ack_and_the_ack_job_acknowledge(
        self, make_setup: SetupFactory, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """`sqlsentinel ack NAME --reason` acknowledges on the state database; the sqlsentinel_ack job does on the
        Dagster instance's; status shows both."""
        setup = make_setup("[{channel: log}]", rows=THREE_REGIONS)
        setup.run()
        result = CliRunner().invoke(
            main, ["ack", named("us"), "--reason", "on it", "--author", "li", "--database-url", setup.state_url]
        )
        assert result.exit_code == 0 and f"acknowledged {named('us')}" in result.output
        status = CliRunner().invoke(main, ["status", "--database-url", setup.state_url]).output
        assert "[acknowledged by li: on it]" in status

        defs = build_definitions(setup.path)
        store = StateStore.from_url(instance_state_url(instance))
        defs.resolve_job_def("sqlsentinel__error_rate_by_region").execute_in_process(instance=instance)
        config = {"alert": named("eu"), "author": "ana", "reason": "looking"}
        done = defs.resolve_job_def("sqlsentinel_ack").execute_in_process(
            instance=instance, run_config={"ops": {"sqlsentinel_ack_op": {"config": config}}}
        )
        assert done.success
        assert {s.alert: s.acknowledged for s in alert_statuses(store)}[named("eu")] == "ana: looking"
        refused = defs.resolve_job_def("sqlsentinel_ack").execute_in_process(
            instance=instance,
            run_config={"ops": {"sqlsentinel_ack_op": {"config": {**config, "alert": named("ap")}}}},
            raise_on_error=False,
        )
        failure = refused.failure_data_for_node("sqlsentinel_ack_op")
        assert failure is not None and failure.error is not None and "nothing to acknowledge" in failure.error.message
        store.engine.dispose()
