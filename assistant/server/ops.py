"""What operators and load balancers ask the server over plain HTTP: health, readiness, metrics.

- ``/healthz``: the process is alive and its event loop answers. A load
  balancer that gets no answer takes the process out; a supervisor restarts it.
- ``/readyz``: the process should get new conversations: its backend started,
  its conversation store answers, and it is not draining. 503 otherwise, with
  the same small JSON of booleans, so an operator sees which part is missing.
- ``/metrics``: Prometheus's text format (``assistant.metrics``).

Health and readiness need no access key (load balancers carry none) and say
nothing a stranger could use: no versions, addresses, names or counts.
``/metrics`` tells how busy the server is, so it asks for the access key when
the server has one (Prometheus sends it as a bearer token).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Iterator
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Response

from assistant import metrics
from assistant.session import ResumptionStore, Session

logger = logging.getLogger("assistant.server.ops")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
# Liveness and readiness tell nothing sensitive and are asked by balancers that send no key and maybe no Host.
PROBE_PATHS = frozenset({HEALTH_PATH, READY_PATH})
OPS_PATHS = PROBE_PATHS | {METRICS_PATH}
STORE_PROBE_S = 2.0  # how stale /readyz's view of the store may be; a probe is one PING


class Readiness:
    """The three conditions of ``/readyz``; the store is probed in the background, so answering never waits."""

    def __init__(self, store: ResumptionStore) -> None:
        self._store = store
        self.backend_started = False
        self.store_reachable = False
        self.draining = False
        self._prober: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Probe the store once now, then every ``STORE_PROBE_S``."""
        self.store_reachable = await self._store.reachable()
        self._prober = asyncio.create_task(self._probe(), name="store-readiness-probe")

    async def stop(self) -> None:
        self.draining = True
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)

    async def _probe(self) -> None:
        while True:
            await asyncio.sleep(STORE_PROBE_S)
            self.store_reachable = await self._store.reachable()

    def report(self) -> dict[str, bool]:
        ready = self.backend_started and self.store_reachable and not self.draining
        return {
            "ready": ready,
            "backend": self.backend_started,
            "store": self.store_reachable,
            "draining": self.draining,
        }


def _plain(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status, status.phrase, headers, body)


def ops_response(
    connection: ServerConnection, path: str, readiness: Readiness, access_key: str | None, presented: str | None
) -> Response:
    """The answer to one of ``OPS_PATHS``; ``presented`` is the key the request carries, if any."""
    if path == HEALTH_PATH:
        return _plain(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
    if path == READY_PATH:
        report = readiness.report()
        status = HTTPStatus.OK if report["ready"] else HTTPStatus.SERVICE_UNAVAILABLE
        return _plain(status, json.dumps(report).encode() + b"\n", "application/json")
    if access_key is not None:
        if presented is None or not hmac.compare_digest(presented.encode(), access_key.encode()):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Send the server's access key as a bearer token.\n")
    body, content_type = metrics.render()
    return _plain(HTTPStatus.OK, body, content_type)


@contextlib.contextmanager
def counted(session: Session, backend: str) -> Iterator[None]:
    """Count ``session`` in the metrics while it runs, and what its queues shed once it ends."""
    metrics.SESSIONS.labels(backend).inc()
    metrics.SESSIONS_ACTIVE.inc()
    try:
        yield
    finally:
        metrics.SESSIONS_ACTIVE.dec()
        for queue, dropped in (("inbound", session.inbound.dropped), ("outbound", session.outbound.dropped)):
            for kind, count in dropped.items():
                metrics.QUEUE_DROPS.labels(queue, kind).inc(count)
