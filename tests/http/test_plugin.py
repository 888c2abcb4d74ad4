"""The http plugin's registration: entry point, config section, built-in default."""

from __future__ import annotations

import subprocess
import sys

from gateway.app import Gateway
from gateway.cli import config_models
from gateway.config import config_from_mapping
from gateway.plugins import make_plugin_manager
from plugins.http.server import HttpServer
from plugins.http.settings import HttpSettings, default_config


def test_registered_as_a_builtin_with_its_section_and_default():
    pm, infos = make_plugin_manager()
    assert "http" in infos
    assert config_models(pm)["http"] is HttpSettings
    defaults = [d for d in pm.hook.gateway_default_config() if d and "http" in d]
    assert defaults == [{"http": {"listen_address": "127.0.0.1", "port": 8080}}]
    s = HttpSettings.model_validate(default_config())
    assert (str(s.listen_address), s.port, s.auth, s.tls) == ("127.0.0.1", 8080, None, None)


def test_an_enabled_section_registers_one_north_component():
    pm, _ = make_plugin_manager()
    config = config_from_mapping({"http": {"port": 0}}, config_models(pm))
    gw = Gateway(config, pm)
    servers = [c for c in gw.components["north"] if isinstance(c, HttpServer)]
    assert len(servers) == 1 and servers[0].name == "http"
    config = config_from_mapping({"modbus_tcp": {"port": 0}}, config_models(pm))
    assert not [c for c in Gateway(config, pm).components["north"]
                if isinstance(c, HttpServer)]  # installed is not enabled


def test_loading_the_plugins_imports_neither_aiohttp_nor_prometheus_client():
    code = ("import sys, gateway.plugins as gp; gp.make_plugin_manager(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('aiohttp', 'prometheus_client')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
