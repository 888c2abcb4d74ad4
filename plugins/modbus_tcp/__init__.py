"""The `modbus_tcp` plugin (registers nothing yet)."""
