"""Built-in plugins of bms-gateway; each is loaded only through its entry point."""
