"""The poller: the gateway's side of an RS485 bus.

Owns the port (:mod:`.transport`, the only module that imports pyserial), one
:class:`~.link.ModuleLink` per module (status envelope and counters), the family's
requests and answer decoding (:mod:`.dialect`, :mod:`.normalize`: vendor layouts to the
core's vendor-neutral model) and the poll loop (:mod:`.source`: cycles, discovery,
master mode, snapshots to the hub).

May import: ``gateway``'s public surface, :mod:`plugins.rs485_bms.protocol` and the
plugin's :mod:`~plugins.rs485_bms.settings`. Never the simulator or the tools.
"""
