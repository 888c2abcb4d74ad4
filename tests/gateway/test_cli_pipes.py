"""Every command's output piped into a reader that quits early (``| head -n1``): the
command ends quietly, with exit 1 and no traceback, never a BrokenPipeError.

Each test runs the installed ``bms-gateway`` with its stdout (for ``run``: its log on
stderr) on a real pipe whose reading end the test closes, either before the command
writes anything or after reading its first line, as ``head -n1`` does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.e2e

#: a PACE analog-values request (module 1), from tests/rs485_bms/test_decode_command.py
FRAME = "~25014642E00201FD35"


def run_into_closed_pipe(argv, env, *, read_lines=0, stdin=None, timeout=20):
    """Run ``argv`` with stdout on a pipe that is closed after ``read_lines`` lines.
    Returns (exit code, the lines read, stderr)."""
    r, w = os.pipe()
    with open(stdin or os.devnull, "rb") as source:
        proc = subprocess.Popen(argv, env=env, stdout=w, stderr=subprocess.PIPE,
                                stdin=source)
    os.close(w)
    lines = []
    with os.fdopen(r, "rb") as reader:
        while len(lines) < read_lines:
            line = reader.readline()
            if not line:
                break
            lines.append(line.decode())
    # the reader is gone now: whatever the command writes from here on meets EPIPE
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{argv} did not end after its output pipe closed") from None
    return proc.returncode, lines, err.decode()


def assert_quiet_failure(code, err):
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Broken pipe" not in err, err
    assert "Exception ignored" not in err, err
    assert code == 1, err


def test_check_config_print_into_a_closed_pipe(gateway_cmd, subprocess_env, repo):
    code, _, err = run_into_closed_pipe(
        gateway_cmd + ["check-config", str(repo / "config" / "example.yaml"), "--print"],
        subprocess_env)
    assert_quiet_failure(code, err)
    assert err == ""


def test_plugins_into_a_closed_pipe(gateway_cmd, subprocess_env):
    code, _, err = run_into_closed_pipe(gateway_cmd + ["plugins"], subprocess_env)
    assert_quiet_failure(code, err)
    assert err == ""


def test_decode_into_head(gateway_cmd, subprocess_env, tmp_path):
    """A long log on stdin: the reader takes the first line and quits, decode is still
    writing (far more than a pipe holds)."""
    log = tmp_path / "bus.log"
    log.write_text("".join(f"12:00:{i % 60:02d}.000 TX: {FRAME}\n" for i in range(3000)))
    code, lines, err = run_into_closed_pipe(gateway_cmd + ["decode"], subprocess_env,
                                            read_lines=1, stdin=log)
    assert lines and lines[0].strip()
    assert_quiet_failure(code, err)
    assert err == ""


def test_decode_into_a_closed_pipe(gateway_cmd, subprocess_env):
    code, _, err = run_into_closed_pipe(gateway_cmd + ["decode", "--json", FRAME],
                                        subprocess_env)
    assert_quiet_failure(code, err)
    assert err == ""


def test_simulate_into_a_closed_pipe(gateway_cmd, subprocess_env):
    """simulate prints where it listens: that line meets the closed pipe, and the
    simulator ends rather than serving with nobody told where."""
    code, _, err = run_into_closed_pipe(
        gateway_cmd + ["simulate", "--listen", "tcp://127.0.0.1:0", "--packs", "2"],
        subprocess_env)
    assert_quiet_failure(code, err)


def test_scan_into_head(gateway_cmd, subprocess_env):
    """scan prints its first line, the reader quits, the findings meet the closed pipe."""
    sim = subprocess.Popen(gateway_cmd + ["simulate", "--listen", "tcp://127.0.0.1:0",
                                          "--packs", "2"],
                           env=subprocess_env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        url = sim.stdout.readline().strip()
        assert url.startswith("tcp://127.0.0.1:"), url
        port = url.rpartition(":")[2]
        code, lines, err = run_into_closed_pipe(
            gateway_cmd + ["scan", "--port", f"socket://127.0.0.1:{port}",
                           "--addresses", "1-3", "--listen-s", "0.2", "--timeout-ms", "300"],
            subprocess_env, read_lines=1)
        assert lines and lines[0].startswith("scanning "), lines
        assert_quiet_failure(code, err)
        assert err == ""
    finally:
        sim.terminate()
        sim.communicate(timeout=5)


def test_run_stops_in_order_when_its_log_pipe_closes(gateway_cmd, subprocess_env, tmp_path,
                                                      free_port):
    """``bms-gateway run 2>&1 | head``: the log's reader goes away; the gateway stops as
    on SIGTERM (ports closed) and exits 1, instead of serving on with a dead log."""
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"gateway:\n  watchdog: false\nmodbus_tcp:\n  port: {free_port}\n")
    proc = subprocess.Popen(gateway_cmd + ["run", "-c", str(cfg)], env=subprocess_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in proc.stderr:  # SIGHUP is handled from here on
            if b" starting: " in line:
                break
        assert proc.poll() is None, "the gateway stopped before it started"
        proc.stderr.close()  # the reader quits, as head does after its lines
        # this gateway (no poller) has nothing more to log: it notices all the same
        t0 = time.monotonic()
        assert proc.wait(timeout=10) == 1
        assert time.monotonic() - t0 < 5
        assert proc.stdout.read() == b""  # nothing went astray to stdout either
        with socket.socket() as s:  # the Modbus port was closed, as in an orderly stop
            s.bind(("127.0.0.1", free_port))
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
