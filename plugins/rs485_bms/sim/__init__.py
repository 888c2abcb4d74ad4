"""The simulator: a bank of packs on the device side of a bus, for tests and demos.

Owns the packs' behaviour (:mod:`.physics`), fault-injection scenarios (:mod:`.scenario`,
which also checks itself against a family and the bank's addresses, so the config can
validate one without the simulator), the answers a pack sends (:mod:`.encoder`) and the
bank on a pty or TCP port with the ``simulate`` command (:mod:`.simulator`).

May import: ``gateway``'s public surface (config loading) and
:mod:`plugins.rs485_bms.protocol`. Never the poller, the settings or the tools: the
simulator speaks only what goes over the wire.
"""
