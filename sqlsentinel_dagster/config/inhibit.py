"""``inhibit:`` in the file, as Alertmanager's ``inhibit_rules``: while an alert matching ``source`` fires, the
alerts matching ``target`` with the same values of the ``equal`` labels hold their notifications.

.. code-block:: yaml

    inhibit:
      - source: ["alert=warehouse_down"]
        target: ["tag:domain=~.*"]         # matchers as silences write them
        equal: [region]                    # labels (tags, instance label columns) whose values must be the same
      - upstream: true                     # an alert on an upstream asset (the deployment's lineage) holds it
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..state.inhibition import InhibitRule
from ..state.silences import MAX_MATCHERS
from .routes import matcher_text, parsed_matcher

__all__ = ["InhibitRuleSpec"]

MatcherText = Annotated[str, AfterValidator(matcher_text)]


class InhibitRuleSpec(BaseModel):
    """One inhibition rule: a firing ``source`` holds the ``target`` alerts that share the ``equal`` labels; with
    ``upstream: true``, a firing alert on an asset upstream of the target's asset holds it (``source`` and
    ``target`` then narrow which alerts take part, and may be left out)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream: bool = Field(
        default=False,
        description="Sources are the alerts on assets upstream of the target's asset, in the deployment's lineage "
        "(from any code location)",
    )
    source: list[MatcherText] = Field(
        default_factory=list,
        max_length=MAX_MATCHERS,
        validate_default=True,
        description="Matchers of the alerts whose firing holds the targets (optional with upstream: true)",
    )
    target: list[MatcherText] = Field(
        default_factory=list,
        max_length=MAX_MATCHERS,
        validate_default=True,
        description="Matchers of the alerts held while a source fires (optional with upstream: true)",
    )
    equal: list[str] = Field(
        default_factory=list, max_length=20, description="Labels whose values source and target must share"
    )

    @field_validator("source", "target")
    @classmethod
    def _needed_unless_upstream(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if not value and not info.data.get("upstream"):
            raise ValueError(
                'give at least one matcher (e.g. ["alert=warehouse_down"]), or write upstream: true to hold '
                "alerts while an alert on an upstream asset fires"
            )
        return value

    def compiled(self) -> InhibitRule:
        """As the state's decision reads it."""
        return InhibitRule(
            tuple(parsed_matcher(t) for t in self.source),
            tuple(parsed_matcher(t) for t in self.target),
            tuple(self.equal),
            self.upstream,
        )
