"""What holds an alert's notifications other than a silence: its time intervals (:mod:`.time_intervals`) or a
firing alert that inhibits it (:mod:`.inhibition`). The decision holds and releases them as it does silences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Hold"]


@dataclass(frozen=True)
class Hold:
    """Why notifications are held now other than by a silence: inside a mute interval, outside every active one, or
    inhibited by a firing alert (:mod:`.inhibition`)."""

    kind: Literal["mute", "inactive", "inhibited"]
    names: tuple[str, ...]

    def describe(self) -> str:
        """``muted by time interval nightly_maintenance``, ``outside its active time intervals (office_hours)``,
        ``inhibited by warehouse_down, which is firing`` (``... on upstream asset shop/raw_orders``)."""
        if self.kind == "mute":
            return f"muted by time interval {self.names[0]}"
        if self.kind == "inhibited" and len(self.names) > 1:
            return f"inhibited by {self.names[0]}, which is firing on upstream asset {self.names[1]}"
        if self.kind == "inhibited":
            return f"inhibited by {self.names[0]}, which is firing"
        return f"outside its active time intervals ({', '.join(self.names)})"

    @property
    def code(self) -> str:
        """The decision's name for what it holds: ``inhibited``, else ``muted``."""
        return "inhibited" if self.kind == "inhibited" else "muted"
