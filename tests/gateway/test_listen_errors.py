"""Clean errors for what a user gets wrong at start, no traceback (issue 13): a listen
port taken by another program, a port below 1024 without the privilege, an address this
host does not have, and a config file that enables nothing. Real ``bms-gateway``
processes on real loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

EXIT_FAILURE, EXIT_CONFIG = 1, 78


def _run(gateway_cmd, env, config: Path, *, prefix: tuple[str, ...] = (),
         command: str = "run") -> subprocess.CompletedProcess:
    args = ["-c", str(config)] if command == "run" else [str(config)]
    return subprocess.run([*prefix, *gateway_cmd, command, *args], env=env,
                          capture_output=True, text=True, timeout=60)


def _config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"gateway": {"watchdog": False}, **data}))
    return path


def _last_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


SIM = {"buses": [{"name": "sim", "simulate": {"packs": 2}}]}


def test_an_snmp_port_in_use_is_one_line_naming_the_plugin_and_address(
        tmp_path, gateway_cmd, subprocess_env):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = _config(tmp_path, {"rs485_bms": SIM, "snmp_agent": {
            "listen_address": "127.0.0.1", "port": port}})
        proc = _run(gateway_cmd, subprocess_env, config)
    assert proc.returncode == EXIT_FAILURE, proc.stderr
    assert _last_line(proc) == (f"bms-gateway: snmp_agent: cannot listen on udp "
                                f"127.0.0.1:{port}: address already in use (another program "
                                "has this port)")


def test_a_modbus_port_in_use_is_one_line_naming_the_plugin_and_address(
        tmp_path, gateway_cmd, subprocess_env):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = _config(tmp_path, {"rs485_bms": SIM, "modbus_tcp": {
            "listen_address": "127.0.0.1", "port": port}})
        proc = _run(gateway_cmd, subprocess_env, config)
    assert proc.returncode == EXIT_FAILURE, proc.stderr
    assert _last_line(proc) == (f"bms-gateway: modbus_tcp: cannot listen on tcp "
                                f"127.0.0.1:{port}: address already in use (another program "
                                "has this port)")


def _unprivileged() -> tuple[str, ...]:
    """A command prefix that runs without CAP_NET_BIND_SERVICE (root has it)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to drop CAP_NET_BIND_SERVICE as root")
    return (setpriv, "--bounding-set", "-net_bind_service", "--")


@pytest.mark.parametrize("plugin, proto", [("snmp_agent", "udp"), ("modbus_tcp", "tcp")])
def test_a_port_below_1024_without_the_privilege_is_a_config_error(
        tmp_path, gateway_cmd, subprocess_env, plugin, proto):
    start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    assert start > 1, "this host lets anyone bind any port: nothing to test"
    port = min(start, 1024) - 1
    config = _config(tmp_path, {"rs485_bms": SIM, plugin: {
        "listen_address": "127.0.0.1", "port": port}})
    proc = _run(gateway_cmd, subprocess_env, config, prefix=_unprivileged())
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert _last_line(proc) == (f"bms-gateway: {plugin}: cannot listen on {proto} "
                                f"127.0.0.1:{port}: permission denied (ports below 1024 need "
                                "root or CAP_NET_BIND_SERVICE)")


def test_an_address_this_host_does_not_have_is_a_config_error(
        tmp_path, gateway_cmd, subprocess_env):
    config = _config(tmp_path, {"rs485_bms": SIM, "modbus_tcp": {
        "listen_address": "192.0.2.1", "port": 1502}})  # TEST-NET-1: on no interface
    proc = _run(gateway_cmd, subprocess_env, config)
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert _last_line(proc) == ("bms-gateway: modbus_tcp: cannot listen on tcp "
                                "192.0.2.1:1502: address not available (no interface of this "
                                "host has it)")


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_an_empty_config_file_is_refused_and_names_the_sections(
        tmp_path, gateway_cmd, subprocess_env, command):
    config = tmp_path / "empty.yaml"
    config.write_text("")
    proc = _run(gateway_cmd, subprocess_env, config, command=command)
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"{config}: the configuration is empty: no plugin is enabled, "
                            "nothing would run; add a section for each plugin to run "
                            "(installed: alarms, "), first
    for section in ("modbus_tcp", "rs485_bms", "snmp_agent", "'gateway'"):
        assert section in first
