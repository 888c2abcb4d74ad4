"""The aiohttp glue: routes over the pure views, read-only, optional auth and TLS.

:func:`make_app` builds the application (tests drive it with aiohttp's test client);
:class:`HttpServer` is the north component that serves it on the configured address.
Every answer is built from ``hub.latest`` when the request arrives: nothing here waits
on the serial bus.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from gateway.config import ConfigError, Problem
from gateway.health import Figure
from gateway.hub import Hub
from plugins.http import page_model
from plugins.http.eventlog import read_recent_events
from plugins.http.metrics import SnapshotCollector
from plugins.http.settings import HttpSettings

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("GET", "HEAD")
#: the page's own files, served from plugins/http/static (nothing remote)
STATIC = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _load_static() -> dict[str, bytes]:
    root = resources.files("plugins.http") / "static"
    return {name: (root / name).read_bytes() for name in STATIC}


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps,
                             headers={"Cache-Control": "no-store"})


def _credentials_check(settings: HttpSettings) -> Callable[[str | None], bool] | None:
    auth = settings.auth
    if auth is None:
        return None
    basic = None
    if auth.basic is not None:
        basic = (auth.basic.username.encode(), auth.basic.password.get_secret_value().encode())
    token = auth.bearer_token.get_secret_value().encode() if auth.bearer_token else None

    def check(header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "basic" and basic is not None:
            try:
                user, sep, password = base64.b64decode(value, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            # both compared, whatever the first gives: no timing hint of which one failed
            ok_user = hmac.compare_digest(user, basic[0])
            ok_password = hmac.compare_digest(password, basic[1])
            return bool(sep) and ok_user and ok_password
        if scheme.lower() == "bearer" and token is not None:
            return hmac.compare_digest(value.encode(), token)
        return False

    return check


class Live:
    """The settings a running app applies per request; :meth:`apply` swaps them (SIGHUP)."""

    def __init__(self, settings: HttpSettings, name: str, version: str) -> None:
        self.name, self.version = name, version
        self.apply(settings)

    def apply(self, settings: HttpSettings) -> None:
        self.settings = settings
        self.check = _credentials_check(settings)
        self.challenge = ('Basic realm="bms-gateway", charset="UTF-8"'
                          if settings.auth is not None and settings.auth.basic is not None
                          else 'Bearer realm="bms-gateway"')
        self.gateway = page_model.gateway_document(self.name, self.version, settings.refresh_s)


LIVE = web.AppKey("live", Live)


def make_app(hub: Hub, settings: HttpSettings, *, clock: Callable[[], float],
             health: Callable[[], Mapping[str, Sequence[Figure]]] = dict,
             state_dir: Path | None = None, name: str = "bms-gateway",
             version: str = "0") -> web.Application:
    """The read-only web application over ``hub``; ``app[LIVE].apply(new)`` changes its
    credentials, refresh period and event count while it runs."""
    static = _load_static()
    live = Live(settings, name, version)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in ALLOWED_METHODS:
            raise web.HTTPMethodNotAllowed(request.method, ALLOWED_METHODS,
                                           headers=SECURITY_HEADERS)
        if live.check is not None and not live.check(request.headers.get("Authorization")):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": live.challenge,
                                                **SECURITY_HEADERS})
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: hub.latest, clock, health, name=name,
                                        version=version))
    ProcessCollector(registry=registry)  # process_resident_memory_bytes and friends

    def static_file(file: str) -> Handler:
        async def serve(request: web.Request) -> web.Response:
            return web.Response(body=static[file], content_type=STATIC[file], charset="utf-8",
                                headers={"Cache-Control": "no-cache"})
        return serve

    async def bank(request: web.Request) -> web.Response:
        return _json(page_model.make_bank_document(hub.latest, clock(), gateway=live.gateway))

    async def modules(request: web.Request) -> web.Response:
        doc = page_model.make_bank_document(hub.latest, clock(), gateway=live.gateway)
        return _json({"schema": page_model.SCHEMA, "modules": doc["modules"]})

    async def module(request: web.Request) -> web.Response:
        try:
            position = int(request.match_info["position"])
        except ValueError:
            return _json({"error": "the position is a number, e.g. /api/v1/modules/3"}, 404)
        doc = page_model.make_module_document(hub.latest, clock(), position)
        if doc is None:
            return _json({"error": f"no module at position {position}"}, 404)
        return _json(doc)

    async def alarms(request: web.Request) -> web.Response:
        return _json(page_model.make_alarms_document(hub.latest, clock()))

    async def events(request: web.Request) -> web.Response:
        most = live.settings.events
        limit = most
        raw = request.query.get("limit")
        if raw is not None:
            try:
                limit = int(raw)
            except ValueError:
                return _json({"error": "limit is a whole number"}, 400)
            if not 0 <= limit <= most:
                return _json({"error": f"limit is 0..{most}"}, 400)
        records = await asyncio.to_thread(read_recent_events, state_dir, limit)
        return _json({"schema": page_model.SCHEMA, "available": state_dir is not None,
                      "events": records})

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST,
                                                "Cache-Control": "no-store"})

    app = web.Application(middlewares=[guard])
    app[LIVE] = live
    app.router.add_get("/", static_file("index.html"))
    app.router.add_get("/static/app.js", static_file("app.js"))
    app.router.add_get("/static/style.css", static_file("style.css"))
    app.router.add_get("/api/v1/bank", bank)
    app.router.add_get("/api/v1/modules", modules)
    app.router.add_get("/api/v1/modules/{position}", module)
    app.router.add_get("/api/v1/alarms", alarms)
    app.router.add_get("/api/v1/events", events)
    app.router.add_get("/metrics", metrics)
    return app


def make_ssl_context(settings: HttpSettings, config_file: str = "<config>"
                     ) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or later); a certificate or key that cannot be
    loaded is a configuration error naming the files."""
    if settings.tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.tls.certificate, settings.tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([Problem(config_file, None, "http.tls", (
            f"cannot load the certificate {settings.tls.certificate} and key "
            f"{settings.tls.key}: {exc}"))]) from None
    return ctx


class HttpServer:
    """The north component: serves :func:`make_app` until cancelled."""

    name = "http"

    def __init__(self, settings: HttpSettings, hub: Hub, *, clock: Callable[[], float],
                 health: Callable[[], Mapping[str, Sequence[Figure]]] = dict,
                 state_dir: Path | None = None, gateway_name: str = "bms-gateway",
                 version: str = "0", config_file: str = "<config>") -> None:
        self.settings = settings
        self.app = make_app(hub, settings, clock=clock, health=health, state_dir=state_dir,
                            name=gateway_name, version=version)
        self.ssl_context = make_ssl_context(settings, config_file)
        self.port: int | None = None
        self.started = asyncio.Event()

    def apply(self, settings: HttpSettings) -> None:
        """Take a reloaded section: credentials, refresh period and event count at once;
        the address, port and TLS files at the next start."""
        old = self.settings
        if (old.listen_address, old.port, old.tls) != (settings.listen_address, settings.port,
                                                       settings.tls):
            log.warning("http: listen_address, port and tls take effect at the next start")
        self.settings = settings
        self.app[LIVE].apply(settings)

    async def run(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, str(self.settings.listen_address), self.settings.port,
                               ssl_context=self.ssl_context)
            await site.start()
            self.port = runner.addresses[0][1]
            scheme = "https" if self.ssl_context else "http"
            host = str(self.settings.listen_address)
            host = f"[{host}]" if ":" in host else host
            log.info("http: serving the status page on %s://%s:%d/", scheme, host, self.port)
            self.started.set()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

