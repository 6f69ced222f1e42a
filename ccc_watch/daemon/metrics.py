"""Opt-in Prometheus metrics: `ccc-watch run --metrics 127.0.0.1:9464`.

Served by prometheus-client's own HTTP server on a thread, bound to loopback unless
the address names another host. Counts are read from the daemon at scrape time (one
collector), so the watcher pays nothing per event; durations go to histograms as they
happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


def parse_address(value: str) -> tuple[str, int]:
    """'PORT' (loopback) or 'HOST:PORT' -> (host, port) (checked by the setting)."""
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class Readings:
    """What the daemon exposes at scrape time: functions returning current values."""

    events: Callable[[], dict[str, int]]  # file events by kind
    operations: Callable[[], dict[tuple[str, str], int]]  # store changes by (op, cause)
    drift: Callable[[], dict[str, int]]  # drift findings by kind
    errors: Callable[[], int]  # ERROR log lines since start
    queue: Callable[[], int]  # paths waiting to settle
    mirror_lag: Callable[[], int | None]  # store head minus mirror watermark
    extra: dict[str, Any] = field(default_factory=dict)


class _Collector(Collector):
    def __init__(self, readings: Readings) -> None:
        self.r = readings

    def collect(self) -> Iterator[Any]:
        events = CounterMetricFamily(
            "ccc_watch_events", "File events received, by kind", labels=["kind"]
        )
        for kind, n in sorted(self.r.events().items()):
            events.add_metric([kind], n)
        yield events
        ops = CounterMetricFamily(
            "ccc_watch_operations",
            "Store changes applied, by operation and cause",
            labels=["op", "cause"],
        )
        for (op, cause), n in sorted(self.r.operations().items()):
            ops.add_metric([op, cause], n)
        yield ops
        drift = CounterMetricFamily("ccc_watch_drift", "Drift findings, by kind", labels=["kind"])
        for kind, n in sorted(self.r.drift().items()):
            drift.add_metric([kind], n)
        yield drift
        yield CounterMetricFamily(
            "ccc_watch_errors", "ERROR log lines since start", value=self.r.errors()
        )
        yield GaugeMetricFamily(
            "ccc_watch_queue_depth", "Paths waiting to settle", value=self.r.queue()
        )
        lag = self.r.mirror_lag()
        if lag is not None:
            yield GaugeMetricFamily(
                "ccc_watch_mirror_lag_entries",
                "Store changelog entries the mirror has not applied yet",
                value=lag,
            )


class Metrics:
    """The daemon's histograms, and the server when an address is given."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconcile_seconds = Histogram(
            "ccc_watch_reconcile_seconds",
            "Duration of full reconciles",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.event_to_store_seconds = Histogram(
            "ccc_watch_event_to_store_seconds",
            "From a file's last event to its change in the store (settle window included)",
            buckets=(0.1, 0.2, 0.25, 0.3, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self.flush_seconds = Histogram(
            "ccc_watch_mirror_flush_seconds",
            "Duration of mirror flushes (in the flusher process, as the daemon waits)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )

    def serve(self, address: str, readings: Readings) -> tuple[str, int]:
        """Start the HTTP server on address; returns (host, port)."""
        host, port = parse_address(address)
        self.registry.register(_Collector(readings))
        start_http_server(port, addr=host, registry=self.registry)
        return host, port
