"""The command-line tools for people at a bus: ``decode`` (:mod:`.decode`) and ``scan``
(:mod:`.scan`).

May import every lower layer: :mod:`plugins.rs485_bms.protocol`,
:mod:`plugins.rs485_bms.settings` and :mod:`plugins.rs485_bms.poller` (scan runs real
poll transactions). Nothing imports the tools but the plugin's glue
(:mod:`plugins.rs485_bms.commands`).
"""
