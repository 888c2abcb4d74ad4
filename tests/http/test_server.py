"""The aiohttp application (plugins/http/server.py) through aiohttp's test client, and
the component on a real socket (TLS included)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import re
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.config import load_config
from gateway.health import Figure, Health
from gateway.plugins import make_plugin_manager
from plugins.http.server import STATIC, HttpServer, make_app
from plugins.http.settings import HttpSettings

STATIC_DIR = Path(__file__).resolve().parents[2] / "plugins" / "http" / "static"


def run_client(hub, clock, settings=None, *, health=None, state_dir=None):
    """Decorator: run ``fn(client)`` against the app in a fresh event loop."""
    settings = settings or HttpSettings()

    def wrap(fn):
        async def main():
            app = make_app(hub, settings, clock=clock, health=health or dict,
                           state_dir=state_dir, name="site-7", version="1.2.3")
            async with TestClient(TestServer(app)) as client:
                return await fn(client)
        return asyncio.run(main())
    return wrap


def test_bank_module_alarm_and_event_endpoints(hub, clock, tmp_path):
    (tmp_path / "alarms.jsonl").write_text(json.dumps({"event": "raised", "seq": 7}) + "\n")

    @run_client(hub, clock, state_dir=tmp_path)
    async def check(client):
        r = await client.get("/api/v1/bank")
        assert r.status == 200 and r.content_type == "application/json"
        assert r.headers["Cache-Control"] == "no-store"
        bank = await r.json()
        assert bank["gateway"] == {"name": "site-7", "version": "1.2.3", "refresh_s": 2.0}
        assert len(bank["modules"]) == 12 and bank["modules"][2]["leds"]["fault_codes"] == [6]
        r = await client.get("/api/v1/modules/3")
        assert (await r.json())["leds"]["err"] == "steady"
        assert (await client.get("/api/v1/modules")).status == 200
        r = await client.get("/api/v1/modules/40")
        assert r.status == 404 and "no module at position 40" in (await r.json())["error"]
        assert (await client.get("/api/v1/modules/x")).status == 404
        alarms = await (await client.get("/api/v1/alarms")).json()
        assert [a["seq"] for a in alarms["alarms"]] == [7, 9]
        events = await (await client.get("/api/v1/events")).json()
        assert events == {"schema": 1, "available": True, "events": [{"event": "raised",
                                                                      "seq": 7}]}
        assert (await client.get("/api/v1/events?limit=999")).status == 400
        assert (await client.get("/api/v1/events?limit=x")).status == 400


def test_metrics_endpoint_reads_the_hub_and_the_health_at_scrape_time(hub, clock):
    health = Health()
    count = {"n": 0}

    def figures():
        count["n"] += 1
        return [Figure(name="modbus_requests_total", value=count["n"], kind="counter",
                       help="requests")]
    health.register("modbus_tcp", figures)

    @run_client(hub, clock, health=health.read)
    async def check(client):
        r = await client.get("/metrics")
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
        assert "bms_gateway_modbus_requests_total 1.0" in text
        assert re.search(r"^process_resident_memory_bytes \d", text, re.M)
        assert re.search(r'^bms_cell_voltage_volts\{address="1",bus="rack-a",cell="1"\} '
                         r'3\.\d+$', text, re.M)
        text = await (await client.get("/metrics")).text()
        assert "bms_gateway_modbus_requests_total 2.0" in text  # read again, not cached


def test_the_page_and_its_files_are_served_and_load_nothing_remote(hub, clock):
    @run_client(hub, clock)
    async def check(client):
        r = await client.get("/")
        assert r.status == 200 and r.content_type == "text/html" and r.charset == "utf-8"
        html = await r.text()
        assert 'src="static/app.js"' in html and 'href="static/style.css"' in html
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        for name in ("app.js", "style.css"):
            r = await client.get(f"/static/{name}")
            assert r.status == 200 and r.content_type == STATIC[name]
        assert (await client.get("/static/../settings.py")).status == 404
        r = await client.head("/")
        assert r.status == 200
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path
        assert "@import" not in text and "fonts.g" not in text
    assert {p.name for p in STATIC_DIR.iterdir()} == set(STATIC)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_every_method_but_get_and_head_answers_405(hub, clock, method):
    @run_client(hub, clock)
    async def check(client):
        for path in ("/", "/api/v1/bank", "/metrics", "/no/such/page"):
            r = await client.request(method, path, data=b"x")
            assert r.status == 405, (method, path)
            assert r.headers["Allow"] == "GET,HEAD"


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_and_bearer_token_from_the_environment(hub, clock, tmp_path):
    pm, _ = make_plugin_manager()
    from gateway.cli import config_models

    path = tmp_path / "gw.yaml"
    path.write_text("http:\n  auth:\n    basic:\n      username: tech\n      password: ${HTTP_PW}\n"
                    "    bearer_token: ${HTTP_TOKEN}\n")
    config = load_config(path, config_models(pm),
                         environ={"HTTP_PW": "s3cret-pass", "HTTP_TOKEN": "t" * 24})
    settings = config.section("http")
    assert "s3cret-pass" not in json.dumps(config.redacted()) and "t" * 24 not in repr(settings)

    @run_client(hub, clock, settings)
    async def check(client):
        for path in ("/", "/api/v1/bank", "/metrics"):
            r = await client.get(path)
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        for bad in (_basic("tech", "wrong-pass"), _basic("nobody", "s3cret-pass"),
                    "Basic !!!", "Bearer " + "x" * 24, "Digest abc", ""):
            assert (await client.get("/metrics", headers={"Authorization": bad})).status == 401
        ok = {"Authorization": _basic("tech", "s3cret-pass")}
        assert (await client.get("/api/v1/bank", headers=ok)).status == 200
        ok = {"Authorization": "Bearer " + "t" * 24}
        assert (await client.get("/metrics", headers=ok)).status == 200
        # an unauthenticated write is still refused as a write
        assert (await client.post("/metrics")).status == 405


@pytest.mark.parametrize("auth,message", [
    ({}, "give basic, bearer_token or both"),
    ({"bearer_token": "short"}, "at least 16 characters"),
    ({"basic": {"username": "a:b", "password": "12345678"}}, "should match pattern"),
    ({"basic": {"username": "tech", "password": "1234567"}}, "at least 8 characters"),
])
def test_weak_or_empty_auth_is_refused(auth, message):
    import pydantic

    with pytest.raises(pydantic.ValidationError, match=message):
        HttpSettings.model_validate({"auth": auth})


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "http.crt", tmp_path / "http.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.e2e
def test_the_component_serves_https_on_the_configured_address_only(hub, clock, tmp_path):
    cert, key = _self_signed(tmp_path)
    settings = HttpSettings.model_validate({"port": 0, "tls": {"certificate": str(cert),
                                                               "key": str(key)}})

    async def main():
        server = HttpServer(settings, hub, clock=clock)
        task = asyncio.create_task(server.run())
        async with asyncio.timeout(10):
            await server.started.wait()
        try:
            ctx = ssl.create_default_context(cafile=str(cert))
            async with aiohttp.ClientSession() as s:
                async with s.get(f"https://127.0.0.1:{server.port}/api/v1/bank",
                                 ssl=ctx) as r:
                    assert r.status == 200 and (await r.json())["schema"] == 1
                with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served
                    async with s.get(f"http://127.0.0.1:{server.port}/api/v1/bank") as r:
                        await r.read()
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        with pytest.raises(OSError):  # the port is released
            await asyncio.open_connection("127.0.0.1", server.port)
    asyncio.run(main())


def test_tls_files_that_cannot_be_loaded_refuse_the_start(hub, clock, tmp_path):
    from gateway.config import ConfigError

    settings = HttpSettings.model_validate({"tls": {"certificate": str(tmp_path / "no.crt"),
                                                    "key": str(tmp_path / "no.key")}})
    with pytest.raises(ConfigError) as info:
        HttpServer(settings, hub, clock=clock, config_file="gw.yaml")
    problem = str(info.value.problems[0])
    assert problem.startswith("gw.yaml: http.tls: cannot load the certificate")
    assert "no.crt" in problem


def test_a_reload_applies_credentials_refresh_and_events_at_once(hub, clock, caplog):
    """SIGHUP: gateway_reload hands the new section to the running server."""
    from plugins.http import gateway_reload

    settings = HttpSettings.model_validate({"port": 0})

    async def main():
        server = HttpServer(settings, hub, clock=clock)
        async with TestClient(TestServer(server.app)) as client:
            assert (await client.get("/api/v1/bank")).status == 200
            new = HttpSettings.model_validate({
                "port": 0, "refresh_s": 7, "events": 3,
                "auth": {"bearer_token": "r" * 20}})
            context = type("Ctx", (), {"extra": {"http": server},
                                       "section": staticmethod(lambda name: new)})()
            gateway_reload(context)
            assert (await client.get("/api/v1/bank")).status == 401
            ok = {"Authorization": "Bearer " + "r" * 20}
            doc = await (await client.get("/api/v1/bank", headers=ok)).json()
            assert doc["gateway"]["refresh_s"] == 7
            r = await client.get("/api/v1/events?limit=4", headers=ok)
            assert r.status == 400  # at most the new 'events'
            assert not [r for r in caplog.records if "next start" in r.getMessage()]
            server.apply(HttpSettings.model_validate({"port": 9999}))
            assert any("next start" in r.getMessage() for r in caplog.records)
    asyncio.run(main())
