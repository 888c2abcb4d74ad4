"""Python's cyclic garbage collector, kept off the request path.

A full collection walks every object the collector tracks. After start-up that is the
imports, the validated settings and the north plugins' compiled tables: about 60 000
objects at 2 buses x 15 modules, and 30-65 ms of the event loop, taken in front of
whatever SNMP or Modbus request is queued, every few seconds while the bus is polled
(each snapshot's objects reach the old generation before they are replaced, and the
collector runs a full pass each time that generation has grown by a quarter).

Almost nothing the gateway keeps for long is garbage in waiting: snapshots, readings and
encoded tables are freed by reference counting the moment they are replaced. So:

* once the start-up is over (:data:`SETTLE_S` after the first snapshot: the first
  poll cycle has found the modules and the tables are compiled), one full collection,
  then ``gc.freeze()``: everything alive moves to the permanent generation, which no
  collection walks again. Later full collections walk only what was made since, a
  few thousand objects. :data:`SECOND_S` later the same again, for a slow bus whose
  first cycle took longer (15 modules at 9600 Bd, identities read: about 10 s);
* then every :data:`REFREEZE_S` the same again (``gc.unfreeze()`` first), so that a
  cycle that became garbage among the frozen objects (a closed connection's transport
  and protocol, say) is still freed, once an hour, and the generation the regular
  collections walk stays small.

Each of the two costs one full pass (about as long as one of the regular passes it
saves; DEBUG logs its length). The policy is pure apart from the ``gc`` module and the
sleep it is given, so tests drive it with neither.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

SETTLE_S = 10.0  #: after the first snapshot: module discovery and table compiling done
SECOND_S = 300.0  #: after the first freeze, the second
REFREEZE_S = 3600.0  #: how often frozen objects are looked at again


class _Collector(Protocol):
    def collect(self, generation: int = 2) -> int: ...
    def freeze(self) -> None: ...
    def unfreeze(self) -> None: ...
    def get_freeze_count(self) -> int: ...


def refreeze(collector: _Collector = gc, clock: Callable[[], float] = time.perf_counter) -> None:
    """Unfreeze, collect everything, freeze what is alive."""
    started = clock()
    collector.unfreeze()
    found = collector.collect()
    collector.freeze()
    log.debug("garbage collector: %d unreachable objects freed, %d objects frozen, in "
              "%.1f ms", found, collector.get_freeze_count(), (clock() - started) * 1000)


async def keep_collector(has_snapshot: Callable[[], bool], *,
                         sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                         collector: _Collector = gc, poll_s: float = 1.0,
                         settle_s: float = SETTLE_S, second_s: float = SECOND_S,
                         every_s: float = REFREEZE_S) -> None:
    """Run the policy above until cancelled; ``has_snapshot()`` tells whether the hub
    has published yet."""
    while not has_snapshot():
        await sleep(poll_s)
    await sleep(settle_s)
    try:
        refreeze(collector)
        await sleep(second_s)
        while True:
            refreeze(collector)
            await sleep(every_s)
    finally:  # stopped: a gateway run in-process leaves nothing frozen behind
        collector.unfreeze()
