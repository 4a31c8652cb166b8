"""The edge process: joins Ray, makes sure the warm pool is up, serves HTTP and WebSockets."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from actors import cluster as ray_cluster
from edge.app import Edge, RedactingAccessLogger, build_app
from interview_core.config import ConfigError, Settings
from interview_core.control_client import ControlClient

log = logging.getLogger(__name__)


@dataclass
class RunningEdge:
    runner: web.AppRunner
    edge: Edge
    port: int

    async def stop(self) -> None:
        self.edge.lag.stop()
        await self.runner.cleanup()  # closes candidate sockets with 1012 first (on_shutdown)
        await self.edge.control.close()


async def start_edge(settings: Settings, *, warm: bool = True) -> RunningEdge:
    if not settings.service_token or not settings.secret_key:
        raise ConfigError("the edge needs INTERVIEW_SERVICE_TOKEN and INTERVIEW_SECRET_KEY")
    await asyncio.to_thread(ray_cluster.connect, settings)
    cluster = ray_cluster.Cluster(settings)
    if warm:
        # A fresh cluster's pool is filled before the first candidate; an edge joining a running
        # pool (a restart: its candidates are reconnecting) serves at once, whatever is refilling.
        stats = await cluster.stats()
        if stats["actors"] == 0:
            stats = await cluster.warm_up()
        log.info("interview pool: %s", stats)
    edge = Edge(settings, ControlClient(settings.control_address, settings.service_token), cluster)
    runner = web.AppRunner(build_app(edge), access_log_class=RedactingAccessLogger, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.edge_host, settings.edge_port, reuse_address=True,
                       reuse_port=settings.edge_processes > 1)
    await site.start()
    port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    if settings.edge_port == 0:  # the edge's own Origin is the port it really got
        edge.settings = settings.replace(edge_port=port)
    # What exists now (modules, app) lives as long as the process: keep it out of the collector's
    # full passes, which would otherwise stall every candidate's audio for tens of milliseconds.
    gc.freeze()
    edge.lag.start("edge")
    return RunningEdge(runner, edge, port)


async def serve(settings: Settings) -> None:
    running = await start_edge(settings)
    log.info("edge listening on %s:%d", settings.edge_host, running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("edge stopping")
    await running.stop()
