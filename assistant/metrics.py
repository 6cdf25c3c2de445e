"""Prometheus metrics of one server process, served on ``/metrics``.

The session, the backends and the store count here as things happen; the
server renders the registry when Prometheus scrapes. One registry per
process (not prometheus-client's global one), so what ``/metrics`` shows is
this project's metrics and the process's own CPU and memory, nothing that
another library registered.

Latency is a histogram per stage, for the stages the session already times:
``first_reply`` (end of the user's input to the first reply, what a user
feels), ``server_tool`` (a server-side tool's run) and ``store_save`` (saving
the resumption handle after a turn: what the conversation store adds).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

# From 5 ms (a store save) to 20 s (a slow local turn on a busy CPU).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)

SESSIONS_ACTIVE = Gauge("assistant_sessions_active", "Live sessions on this process.", registry=REGISTRY)
SESSIONS = Counter("assistant_sessions", "Sessions started on this process.", ["backend"], registry=REGISTRY)
TURNS = Counter("assistant_turns", "Turns finished, by outcome.", ["outcome"], registry=REGISTRY)
STAGE_LATENCY = Histogram(
    "assistant_stage_latency_seconds",
    "Latency per stage of a turn.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
QUEUE_DROPS = Counter(
    "assistant_queue_drops",
    "Messages a session's bounded queues shed (media first), by queue and kind; counted as the session ends.",
    ["queue", "kind"],
    registry=REGISTRY,
)
UPSTREAM_RECONNECTS = Counter(
    "assistant_upstream_reconnects", "Times a session moved to a new upstream (Gemini) connection.", registry=REGISTRY
)
STORE_ERRORS = Counter(
    "assistant_store_errors", "Conversation store commands that failed (Redis unreachable).", registry=REGISTRY
)


def render() -> tuple[bytes, str]:
    """The registry in Prometheus's text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
