"""Fixtures of the mqtt tests: a real Mosquitto on a loopback port with its own config
(optionally TLS and a password file), a subscriber that records what the broker
delivers, certificates made here with ``cryptography``, and gateway subprocesses."""

from __future__ import annotations

import datetime
import ipaddress
import json
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ------------------------------------------------------------------ certificates ---

@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _cert(subject: str, key, issuer_name: x509.Name, issuer_key, *, ca: bool,
          server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path, name: str = "test") -> Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all PEM."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca_cert = _cert(f"{name} CA", ca_key, ca_name, ca_key, ca=True)
    pki = Pki(*(directory / f"{name}-{f}" for f in (
        "ca.pem", "server.pem", "server.key", "client.pem", "client.key")))
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for cert_path, key_path, subject, server in (
            (pki.server_cert, pki.server_key, "127.0.0.1", True),
            (pki.client_cert, pki.client_key, "gateway", False)):
        key = _key()
        cert = _cert(subject, key, ca_name, ca_key, ca=False, server=server)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
    return pki


# ------------------------------------------------------------------------ broker ---

class Broker:
    """A Mosquitto process with its own config on a loopback port; persistence on, so a
    stop and start keeps retained messages and the subscriber's session."""

    def __init__(self, directory: Path, *, pki: Pki | None = None,
                 users: dict[str, str] | None = None, require_certificate: bool = False):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.dir / "mosquitto.log"
        lines = ["user root", "per_listener_settings false",
                 "persistence true", f"persistence_location {self.dir}/",
                 "log_type all", f"log_dest file {self.log}",
                 f"listener {self.port} 127.0.0.1"]
        if pki is not None:
            lines += [f"cafile {pki.ca}", f"certfile {pki.server_cert}",
                      f"keyfile {pki.server_key}",
                      f"require_certificate {'true' if require_certificate else 'false'}"]
        if users:
            pw = self.dir / "passwd"
            pw.touch()
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password],
                               check=True, capture_output=True, timeout=30)
            lines += [f"password_file {pw}", "allow_anonymous false"]
        else:
            lines += ["allow_anonymous true"]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def listening() -> bool:
            assert self.proc.poll() is None, self.proc.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_for(listening, 20, f"mosquitto on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


@pytest.fixture
def broker_factory(tmp_path, require_tool):
    require_tool("mosquitto")
    require_tool("mosquitto_passwd")
    made: list[Broker] = []

    def make(name: str = "broker", **kwargs) -> Broker:
        b = Broker(tmp_path / name, **kwargs)
        b.start()
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


# -------------------------------------------------------------------- subscriber ---

@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self):
        return json.loads(self.payload)


class Collector:
    """A paho subscriber to ``#`` with a persistent session (clean_session off, QoS 1):
    across a broker restart it reconnects and the broker delivers what it queued."""

    def __init__(self, port: int, *, client_id: str = "test-collector", **connect) -> None:
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        if connect.get("username"):
            self.client.username_pw_set(connect["username"], connect.get("password"))
        if connect.get("ca"):
            self.client.tls_set(ca_certs=str(connect["ca"]),
                                certfile=connect.get("certfile"), keyfile=connect.get("keyfile"))
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.connected.wait(20), "the test subscriber could not connect"

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe("#", qos=1)
            self.connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain),
                                          msg.qos))

    def received(self, topic: str | None = None, prefix: str | None = None) -> list[Received]:
        with self.lock:
            msgs = list(self.messages)
        return [m for m in msgs if (topic is None or m.topic == topic)
                and (prefix is None or m.topic.startswith(prefix))]

    def last(self, topic: str) -> Received | None:
        got = self.received(topic)
        return got[-1] if got else None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def collectors():
    made: list[Collector] = []

    def make(port: int, **kwargs) -> Collector:
        c = Collector(port, **kwargs)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


# ----------------------------------------------------------------------- gateway ---

class GatewayProcess:
    """``bms-gateway run -c FILE`` with its log in a file the test reads."""

    def __init__(self, exe: str, config: Path, env: dict, log: Path) -> None:
        self.log_path = log
        self.log_file = log.open("ab")
        self.proc = subprocess.Popen([exe, "--log-level", "DEBUG", "run", "-c", str(config)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=self.log_file)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log_file.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log_file.closed:
            self.log_file.close()


@pytest.fixture
def gateways(gateway_cmd, subprocess_env, tmp_path):
    made: list[GatewayProcess] = []

    def start(config: dict, name: str = "gateway", env: dict | None = None
              ) -> GatewayProcess:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        gw = GatewayProcess(gateway_cmd[0], path, {**subprocess_env, **(env or {})},
                            tmp_path / f"{name}.log")
        made.append(gw)
        return gw
    yield start
    for gw in made:
        gw.stop()
