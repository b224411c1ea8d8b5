"""The order of a batch under ``inhibit: [{upstream: true}]``: an alert on an asset is evaluated after the alerts of
the batch on its upstream assets, so that a late load's alert is recorded as firing before the alerts downstream of
it decide, and they are held rather than paged in the same tick."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import AlertConfig, LoadedConfig
from .delivery import Lineage

__all__ = ["lineage_waves"]


def lineage_waves(
    alerts: Sequence[AlertConfig], config: LoadedConfig, lineage: Lineage | None
) -> list[list[AlertConfig]]:
    """``alerts`` in waves to evaluate one after another (each wave's alerts together): every alert comes after
    those of ``alerts`` on assets upstream of its own. One wave when no rule inhibits along the lineage; alerts
    whose lineage loops go together in the last wave."""
    if lineage is None or not any(rule.upstream for rule in config.file.inhibit):
        return [list(alerts)]
    on_asset: dict[tuple[str, ...], list[str]] = {}
    for alert in alerts:
        if alert.asset is not None:
            on_asset.setdefault(alert.asset, []).append(alert.name)
    after = {
        alert.name: {name for key in lineage(alert.asset) for name in on_asset.get(key, ()) if name != alert.name}
        for alert in alerts
        if alert.asset is not None
    }
    waves: list[list[AlertConfig]] = []
    done: set[str] = set()
    left = list(alerts)
    while left:
        wave = [alert for alert in left if after.get(alert.name, set()) <= done] or left
        waves.append(wave)
        done |= {alert.name for alert in wave}
        left = [alert for alert in left if alert.name not in done]
    return waves
