"""The gateway's own health: counters and gauges of its parts, read at answer time.

A plugin's component registers a function that returns its current figures
(:meth:`Health.register`); a north plugin that serves health (``/metrics``, an MQTT
health topic, ...) calls :meth:`Health.read` when it answers. Nothing is copied or
updated per request: the figures stay in the component that counts them, and no plugin
imports another to read them. Bus and module counters are not here: they travel in the
snapshot (:class:`~gateway.model.BusStatus`, :class:`~gateway.model.LinkCounters`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """One health figure. ``name`` is snake_case with its unit, Prometheus style
    (``requests_total`` for a counter, ``queue_depth`` or ``rss_bytes`` for a gauge)."""

    name: str
    value: float
    kind: Literal["counter", "gauge"]
    help: str
    labels: tuple[tuple[str, str], ...] = ()


Reader = Callable[[], Iterable[Figure]]


class Health:
    """Figures by source (the registering plugin's name), in registration order."""

    def __init__(self) -> None:
        self._readers: dict[str, list[Reader]] = {}

    def register(self, source: str, read: Reader) -> None:
        self._readers.setdefault(source, []).append(read)

    def read(self) -> dict[str, list[Figure]]:
        """Every source's figures now. A reader that raises is a bug in its plugin: it is
        logged and its source left out, so one broken part cannot hide the others."""
        out: dict[str, list[Figure]] = {}
        for source, readers in self._readers.items():
            figures: list[Figure] = []
            try:
                for read in readers:
                    figures.extend(read())
            except Exception:
                log.exception("health figures of %s could not be read", source)
                continue
            out[source] = figures
        return out
