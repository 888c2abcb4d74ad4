"""bms-gateway core: the data model, the hub, config, plugins and the runtime.

The core knows nothing of BMS vendors, SNMP or Modbus; those live in plugins.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bms-gateway")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    __version__ = "0+unknown"
