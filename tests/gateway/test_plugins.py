"""Plugins: built-ins and a real third-party distribution load through the same entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from gateway.hookspecs import hookimpl
from gateway.plugins import PluginLoadError, make_plugin_manager

BUILTINS = {"rs485_bms", "snmp_agent", "modbus_tcp", "alarms"}


def test_builtins_are_entry_points_of_our_distribution():
    _, infos = make_plugin_manager()
    assert BUILTINS <= set(infos)
    assert all(infos[n].builtin and infos[n].distribution == "bms-gateway" for n in BUILTINS)


def test_misspelt_hookimpl_fails_loudly_and_names_the_plugin():
    class Broken:
        @hookimpl
        def gateway_register_confg(self, register):  # typo: no such hook
            pass

    with pytest.raises(PluginLoadError, match=r"plugin 'broken'.*gateway_register_confg"):
        make_plugin_manager(load_entrypoints=False, extra=(("broken", Broken()),))


class _Dist:
    metadata = {"Name": "acme-bms-extras"}
    version = "0.9.1"


class _FailingEntryPoint:
    name = "acme"
    dist = _Dist()

    def load(self):
        raise ImportError("No module named 'acme_missing_dependency'")


def test_a_plugin_that_fails_to_import_is_named_with_its_distribution_and_version(
        monkeypatch):
    real = __import__("importlib.metadata").metadata.entry_points

    def entry_points(*, group):
        return [*real(group=group), _FailingEntryPoint()]

    monkeypatch.setattr("gateway.plugins.importlib.metadata.entry_points", entry_points)
    with pytest.raises(PluginLoadError) as info:
        make_plugin_manager()
    assert str(info.value) == ("plugin 'acme' (acme-bms-extras 0.9.1) failed to load: "
                               "ImportError: No module named 'acme_missing_dependency'")


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory, repo):
    """The demo plugin built and installed (pip, as a user would) into its own site dir."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(repo / "tests/data/thirdparty_plugin")],
        check=True, capture_output=True, cwd=site)
    return site


@pytest.fixture
def demo_env(demo_site, subprocess_env):
    env = dict(subprocess_env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(demo_site), env.get("PYTHONPATH")]))
    return env


@pytest.mark.e2e
def test_third_party_plugin_listed_and_its_command_runs(gateway_cmd, demo_env, tmp_path):
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"demo_plugin:\n  marker: {tmp_path / 'm'}\n")
    out = subprocess.run(gateway_cmd + ["plugins", "-c", str(cfg)], env=demo_env,
                         capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("demo_plugin"))
    assert "2.3.4" in line and "third-party (bms-gateway-demo-plugin)" in line
    assert line.rstrip().endswith("enabled")
    for name in BUILTINS:
        assert any(l.startswith(name) and "built-in" in l for l in out.splitlines())
    said = subprocess.run(gateway_cmd + ["demo", "hi"], env=demo_env, capture_output=True,
                          text=True, check=True).stdout
    assert said == "demo says hi\n"


@pytest.mark.e2e
def test_third_party_plugin_config_validated_and_component_runs(gateway_cmd, demo_env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("demo_plugin:\n  marker: /x\n  greting: hi\n")
    res = subprocess.run(gateway_cmd + ["check-config", str(bad)], env=demo_env,
                         capture_output=True, text=True)
    assert res.returncode == 78
    assert f"{bad}:3: demo_plugin.greting: unknown key; did you mean 'greeting'?" in res.stderr

    marker = tmp_path / "m"
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"gateway:\n  watchdog: false\ndemo_plugin:\n  marker: {marker}\n")
    proc = subprocess.Popen(gateway_cmd + ["run", "-c", str(cfg)], env=demo_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        # the file may exist a moment before its text is in it
        while (not marker.exists() or marker.read_text() != "hello") \
                and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.read_text() == "hello"
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        assert marker.read_text() == "hello bye"  # released in finally on shutdown
    finally:
        proc.kill()
        proc.communicate()
