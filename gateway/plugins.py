"""Loading plugins: built-ins and third-party ones come through the same entry points."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import pluggy

from gateway import hookspecs

ENTRY_POINT_GROUP = "bms_gateway.plugins"
OWN_DISTRIBUTION = "bms-gateway"


class PluginLoadError(Exception):
    """A plugin could not be loaded; the message names the plugin and its version."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginInfo:
    name: str
    version: str
    distribution: str
    builtin: bool


def _normalize(dist_name: str) -> str:
    return dist_name.lower().replace("_", "-")


def make_plugin_manager(
    *, load_entrypoints: bool = True, extra: tuple[tuple[str, object], ...] = ()
) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Make a plugin manager with every installed plugin registered.

    Installed is not enabled: which plugins *run* is decided by the config. ``extra``
    registers in-process plugins (tests). Raises :class:`PluginLoadError` listing every
    plugin that failed to import or declared a hook that does not exist.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    problems: list[str] = []
    if load_entrypoints:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            label = f"plugin {ep.name!r} ({dist_name} {version})"
            if ep.name in infos:
                problems.append(f"{label}: a plugin named {ep.name!r} is already installed")
                continue
            try:
                module = ep.load()
                pm.register(module, name=ep.name)
            except Exception as exc:  # any import-time failure of foreign code
                problems.append(f"{label} failed to load: {type(exc).__name__}: {exc}")
                continue
            infos[ep.name] = PluginInfo(
                name=ep.name,
                version=version,
                distribution=dist_name,
                builtin=_normalize(dist_name) == OWN_DISTRIBUTION,
            )
    for name, obj in extra:
        pm.register(obj, name=name)
        infos[name] = PluginInfo(name=name, version="-", distribution="-", builtin=False)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        plugin = exc.plugin
        pname = pm.get_name(plugin) or repr(plugin)
        info = infos.get(pname)
        ver = f" ({info.distribution} {info.version})" if info else ""
        problems.append(f"plugin {pname!r}{ver}: {exc}")
    if problems:
        raise PluginLoadError("\n".join(problems))
    return pm, infos
