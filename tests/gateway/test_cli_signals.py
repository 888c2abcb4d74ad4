"""The long-running commands (``run``, ``simulate``) stop cleanly, exit 0, on SIGINT and
on SIGTERM, also when a shell started them in the background.

A non-interactive shell starts ``cmd &`` with SIGINT (and SIGQUIT) ignored (POSIX, job
control off); a program that relies on Python's default Ctrl-C handling then never sees
SIGINT. Here a real ``bash -c 'cmd & wait $!'`` starts each command: bash prints the
background pid, the test signals that pid, and ``wait`` hands back its exit code.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e


def background(argv, env):
    """Start ``argv`` as ``bash -c 'argv &'`` does; (the bash process, the job's pid).
    bash waits for the job, so its exit code is the job's."""
    r, w = os.pipe()
    # the job does not keep the pid pipe open; bash closes it once it has written
    script = f'{shlex.join(argv)} {w}>&- & echo "$!" >&{w}; exec {w}>&-; wait $!'
    proc = subprocess.Popen(["bash", "-c", script], env=env, pass_fds=(w,),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(w)
    with os.fdopen(r) as f:
        pid = int(f.readline())
    return proc, pid


def test_a_shell_starts_background_jobs_with_sigint_ignored(subprocess_env):
    """The premise of the tests below, checked on the bash of this machine."""
    proc, _ = background([sys.executable, "-c", "import signal; "
                          "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"],
                         subprocess_env)
    out, err = proc.communicate(timeout=20)
    assert (out.strip(), proc.returncode) == ("True", 0), err


def stop_with(sig, proc, pid, *, ready):
    """Wait for ``ready`` on the job's output, send ``sig`` to the job; (exit code,
    seconds it took, the rest of the output)."""
    stream = proc.stdout if ready[0] == "stdout" else proc.stderr
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if ready[1] in line:
            break
    assert any(ready[1] in line for line in seen), "".join(seen)
    t0 = time.monotonic()
    os.kill(pid, sig)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, time.monotonic() - t0, out + err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_simulate_started_in_the_background_stops(sig, gateway_cmd, subprocess_env):
    proc, pid = background(gateway_cmd + ["simulate", "--listen", "tcp://127.0.0.1:0",
                                          "--packs", "2"], subprocess_env)
    try:
        code, took, rest = stop_with(sig, proc, pid, ready=("stdout", "tcp://127.0.0.1:"))
        assert code == 0, rest
        assert took < 3.0
        assert "Traceback" not in rest, rest
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_started_in_the_background_stops(sig, gateway_cmd, subprocess_env, tmp_path,
                                             free_port):
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"gateway:\n  watchdog: false\nmodbus_tcp:\n  port: {free_port}\n")
    proc, pid = background(gateway_cmd + ["run", "-c", str(cfg)], subprocess_env)
    try:
        code, took, rest = stop_with(sig, proc, pid, ready=("stderr", " starting: "))
        assert code == 0, rest
        assert took < 3.0
        assert "stopped" in rest and "Traceback" not in rest, rest
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()
