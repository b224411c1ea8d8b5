"""``inhibit:`` in the file, as Alertmanager's ``inhibit_rules``: while an alert matching ``source`` fires, the
alerts matching ``target`` with the same values of the ``equal`` labels hold their notifications.

.. code-block:: yaml

    inhibit:
      - source: ["alert=warehouse_down"]
        target: ["tag:domain=~.*"]         # matchers as silences write them
        equal: [region]                    # labels (tags, instance label columns) whose values must be the same
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..state.inhibition import InhibitRule
from ..state.silences import MAX_MATCHERS
from .routes import matcher_text, parsed_matcher

__all__ = ["InhibitRuleSpec"]

MatcherText = Annotated[str, AfterValidator(matcher_text)]


class InhibitRuleSpec(BaseModel):
    """One inhibition rule: a firing ``source`` holds the ``target`` alerts that share the ``equal`` labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: list[MatcherText] = Field(
        min_length=1, max_length=MAX_MATCHERS, description="Matchers of the alerts whose firing holds the targets"
    )
    target: list[MatcherText] = Field(
        min_length=1, max_length=MAX_MATCHERS, description="Matchers of the alerts held while a source fires"
    )
    equal: list[str] = Field(
        default_factory=list, max_length=20, description="Labels whose values source and target must share"
    )

    def compiled(self) -> InhibitRule:
        """As the state's decision reads it."""
        return InhibitRule(
            tuple(parsed_matcher(t) for t in self.source),
            tuple(parsed_matcher(t) for t in self.target),
            tuple(self.equal),
        )
