"""A third-party plugin: it registers a config section, a command and a component."""

import asyncio
from pathlib import Path

from gateway.config import Section
from gateway.hookspecs import hookimpl


class DemoSettings(Section):
    marker: Path
    greeting: str = "hello"


class Marker:
    name = "demo-marker"

    def __init__(self, settings):
        self.settings = settings

    async def run(self):
        self.settings.marker.write_text(self.settings.greeting)
        try:
            await asyncio.Event().wait()
        finally:
            self.settings.marker.write_text(self.settings.greeting + " bye")


@hookimpl
def gateway_register_config(register):
    register("demo_plugin", DemoSettings)


@hookimpl
def gateway_register_commands(register):
    def add_arguments(parser):
        parser.add_argument("word")

    def run(args):
        print(f"demo says {args.word}")
        return 0

    register("demo", help="say a word", add_arguments=add_arguments, run=run)


@hookimpl
def gateway_register_components(context, register):
    register(Marker(context.section("demo_plugin")), role="north")
