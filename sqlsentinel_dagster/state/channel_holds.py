"""Time intervals of one channel, as Alertmanager's ``mute_time_intervals`` on a route: a receiver (or a target
written in ``notify``) and the routes that reach it may name time intervals; while they hold, that channel's
notifications are recorded as muted and not sent, while the alert's other channels are told as usual.

A firing (or reminder) held for a channel is owed to it: the first evaluation after its mute ends, while the alert
still fires and nothing holds the alert itself, sends that channel the firing notification once. An alert that
resolves first sends the channel nothing (its resolved notice goes only to channels told that it fired), as an
alert that fired and resolved inside an alert's own mute. :func:`by_channel` applies this to a decision, purely.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from .decision import Decision
from .holds import Hold
from .model import StateSettings
from .silences import AlertLabels
from .time_intervals import TimeInterval, muted

__all__ = ["ChannelTimes", "by_channel", "holds_at", "with_channel_times"]

Times = tuple[tuple[TimeInterval, ...], tuple[TimeInterval, ...]]
"""``mute_time_intervals`` and ``active_time_intervals``, compiled."""


@dataclass(frozen=True)
class ChannelTimes:
    """When one channel holds an alert's notifications: by its own time intervals (the receiver's or target's),
    or when every route that reaches it for these labels holds it (a channel another route reaches unmuted is
    told)."""

    own: Times = ((), ())
    routes: tuple[Times, ...] = ()

    def hold(self, now: dt.datetime) -> Hold | None:
        """What holds the channel at ``now``, if anything."""
        own = muted(*self.own, now)
        if own is not None or not self.routes:
            return own
        holds = [muted(*times, now) for times in self.routes]
        return holds[0] if all(h is not None for h in holds) else None

    def __bool__(self) -> bool:
        return bool(self.own[0] or self.own[1] or self.routes)


def holds_at(times: Mapping[str, ChannelTimes], now: dt.datetime) -> dict[str, Hold]:
    """The channels of ``times`` held at ``now``, with what holds each."""
    held = {channel: t.hold(now) for channel, t in times.items() if t}
    return {channel: hold for channel, hold in held.items() if hold is not None}


def by_channel(decision: Decision, channels: Mapping[str, Collection[str]], holds: Mapping[str, Hold]) -> Decision:
    """``decision`` with each channel's time intervals applied: its event held (``Decision.held``) for the channels
    in ``holds`` and for those never told the episode fired (a resolved notice), the firing sent to owed channels
    whose mute ended (``Decision.released``), and the state's ``owed_channels`` kept up to date."""
    state = decision.state
    owed = {c for c in state.owed_channels if c in channels}
    if state.condition != "firing":
        untold = owed if decision.event == "resolved" else set()
        owed = set()
    else:
        untold = set()
    event = decision.event if decision.notify else None
    held: dict[str, str] = {}
    for channel, events in channels.items():
        if event is None or event not in events:
            continue
        if channel in untold:
            held[channel] = "never told it fired: its time intervals held the firing notification"
        elif channel in holds:
            held[channel] = holds[channel].describe()
            if event in ("firing", "reminder") and state.condition == "firing":
                owed.add(channel)
        elif event in ("firing", "reminder"):
            owed.discard(channel)
    released: Sequence[str] = ()
    if state.condition == "firing" and decision.suppressed_by is None and not state.episode_suppressed:
        told = {c for c, events in channels.items() if event is not None and event in events}
        ready = sorted(c for c in owed if c not in holds and c not in told and "firing" in channels[c])
        released, owed = tuple(ready), owed - set(ready)
    if not held and not released and set(state.owed_channels) == owed:
        return decision
    reason = decision.reason
    if held:
        reason += f"; held for {len(held)} channel{'s' if len(held) != 1 else ''} ({_why(held)})"
    if released:
        reason += f"; firing sent to {len(released)} channel{'s' if len(released) != 1 else ''} whose mute ended"
    code = "channel_mute_ended" if released and decision.event is None else decision.code
    return replace(
        decision,
        state=state.evolve(owed_channels=tuple(sorted(owed))),
        code=code,
        reason=reason,
        held=held,
        released=tuple(released),
    )


def _why(held: Mapping[str, str]) -> str:
    """The distinct reasons channels are held, in words."""
    return "; ".join(dict.fromkeys(held.values()))


def with_channel_times(
    decision: Decision,
    labels: AlertLabels,
    channels: Mapping[str, Collection[str]],
    settings: StateSettings,
    now: dt.datetime,
    memo: dict[int, tuple[Mapping[str, ChannelTimes], dict[str, Hold]]] | None = None,
) -> Decision:
    """:func:`by_channel` with the holds at ``now`` of the channels ``settings.channel_times`` gives for
    ``labels`` (``memo`` keeps them by mapping, for the many instances of one evaluation that share routes)."""
    times = settings.channel_times(labels) if settings.channel_times is not None else {}
    if not times and not decision.state.owed_channels:
        return decision
    if memo is None:
        return by_channel(decision, channels, holds_at(times, now))
    if id(times) not in memo:  # the mapping is kept with its holds, so its id is not reused meanwhile
        memo[id(times)] = (times, holds_at(times, now))
    return by_channel(decision, channels, memo[id(times)][1])
