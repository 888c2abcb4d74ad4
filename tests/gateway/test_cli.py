"""The command line: exit codes, plugin listing, and a real process shut down by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from gateway import __version__, cli


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bms-gateway {__version__}"


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["check-config"], ["run", "--bogus"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def test_plugins_lists_the_builtins(capsys):
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "VERSION", "ORIGIN", "STATE"]
    names = {line.split()[0]: line for line in out[1:]}
    for name in ("rs485_bms", "snmp_agent", "modbus_tcp", "alarms"):
        assert "built-in" in names[name]


def test_check_config_example_and_minimal(repo, capsys):
    for name in ("example.yaml", "minimal.yaml"):
        assert cli.main(["check-config", str(repo / "config" / name)]) == 0, capsys.readouterr()


def test_missing_config_file_is_a_config_error(tmp_path, capsys):
    assert cli.main(["run", "-c", str(tmp_path / "nope.yaml")]) == 78
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.e2e
def test_ctrl_c_stops_cleanly_with_exit_0(gateway_cmd, subprocess_env,
                                                           tmp_path, free_port):
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"gateway:\n  watchdog: false\nmodbus_tcp:\n  port: {free_port}\n")
    proc = subprocess.Popen(gateway_cmd + ["run", "-c", str(cfg)], env=subprocess_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # ends (and fails below) if the gateway dies first
            if " starting: " in line:
                break
        assert proc.poll() is None, "the gateway stopped before it started"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.e2e
def test_sigterm_stops_a_real_gateway_within_2s(gateway_cmd, subprocess_env):
    proc = subprocess.Popen(gateway_cmd + ["--log-level", "INFO", "run"], env=subprocess_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if " starting: " in line:
                break
        assert any(" starting: " in l for l in lines), "".join(lines)
        time.sleep(0.5)  # let the components bind and start polling
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)
        elapsed = time.monotonic() - t0
        rest = proc.stderr.read()
        assert code == 0, rest
        assert elapsed < 2.0
        assert "stopped" in rest
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.e2e
def test_systemd_notify_ready_watchdog_and_stopping(gateway_cmd, subprocess_env, tmp_path):
    """Type=notify: READY=1 at start, WATCHDOG=1 while the poller publishes, STOPPING=1."""
    import socket

    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    env = dict(subprocess_env, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="1000000")
    proc = subprocess.Popen(gateway_cmd + ["run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        seen = []
        while seen.count("WATCHDOG=1") < 2:
            seen.append(sock.recv(256).decode())
        assert seen[0] == "READY=1"
        proc.send_signal(signal.SIGTERM)
        while seen[-1] != "STOPPING=1":
            seen.append(sock.recv(256).decode())
        assert proc.wait(timeout=5) == 0
    finally:
        sock.close()
        proc.kill()
        proc.wait()


@pytest.mark.e2e
def test_watchdog_starves_when_nothing_is_polled(gateway_cmd, subprocess_env, tmp_path,
                                                 free_port):
    """No snapshot ever published (no south plugin): the watchdog is not fed beyond the
    start-up grace, so systemd would restart a gateway whose poller hangs."""
    import socket

    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"modbus_tcp:\n  port: {free_port}\n")
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    env = dict(subprocess_env, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="300000")
    proc = subprocess.Popen(gateway_cmd + ["run", "-c", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock.settimeout(20)  # start-up, however slow the machine
        assert sock.recv(256).decode() == "READY=1"
        sock.settimeout(0.2)
        seen = []
        deadline = time.monotonic() + 2  # more than six watchdog intervals after READY
        while time.monotonic() < deadline:
            try:
                seen.append(sock.recv(256).decode())
            except TimeoutError:
                pass
        assert seen.count("WATCHDOG=1") <= 1  # only within the first interval
    finally:
        sock.close()
        proc.terminate()
        proc.wait(timeout=5)


@pytest.mark.e2e
def test_sighup_validates_before_reloading(gateway_cmd, subprocess_env, tmp_path, free_port):
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"gateway:\n  watchdog: false\nmodbus_tcp:\n  port: {free_port}\n")
    proc = subprocess.Popen(gateway_cmd + ["run", "-c", str(cfg)], env=subprocess_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_for(text):
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not logged: {''.join(lines)}")
    try:
        wait_for(" starting: ")
        cfg.write_text(f"gateway:\n  watchdog: false\nmodbus_tcp:\n  port: {free_port}\n"
                       "  max_conections: 3\n")
        proc.send_signal(signal.SIGHUP)
        line = wait_for("reload refused")
        assert (f"keeping the running config: {cfg}:5: modbus_tcp.max_conections: unknown key; "
                "did you mean 'max_connections'?") in line
        cfg.write_text(f"gateway:\n  watchdog: false\nmodbus_tcp:\n  port: {free_port}\n"
                       "  max_connections: 3\n")
        proc.send_signal(signal.SIGHUP)
        # modbus_tcp has no live reload: the operator is told, not misled
        wait_for("reload: modbus_tcp settings changed; they take effect at the next restart")
        wait_for(f"configuration reloaded from {cfg}")
        assert proc.poll() is None  # still serving after both reloads
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.communicate()
