"""The hub processor: puts the live limits into every snapshot; thin glue, no I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gateway.model import BankSnapshot, Event

from plugins.charge_limits.limits import make_charge_limits
from plugins.charge_limits.settings import ChargeLimitsSettings


class ChargeLimitsProcessor:
    """Registered with the hub ahead of the alarm processor, so that the alarm rules see
    the limits of the snapshot they evaluate."""

    def __init__(self, settings: ChargeLimitsSettings) -> None:
        self.settings = settings

    def process(self, snapshot: BankSnapshot, now: float
                ) -> tuple[BankSnapshot, Sequence[Event]]:
        limits = make_charge_limits(snapshot, now, self.settings)
        return dataclasses.replace(snapshot, charge_limits=limits), ()

    def apply(self, settings: ChargeLimitsSettings) -> None:
        """New bank parameters (SIGHUP); the next snapshot is computed with them."""
        self.settings = settings
