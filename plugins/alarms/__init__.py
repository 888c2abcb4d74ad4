"""The `alarms` plugin (registers nothing yet)."""
