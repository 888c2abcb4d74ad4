"""The `snmp_agent` plugin (registers nothing yet)."""
