"""`ccc-watch run --metrics`: a real daemon serving Prometheus metrics on loopback."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from daemon_harness import Daemon, wait_until

from ccc_watch.daemon.metrics import parse_address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text: str = r.read().decode()
        return text


def _value(text: str, name: str) -> float:
    """The value of an unlabelled sample."""
    for line in text.splitlines():
        sample, _, value = line.partition(" ")
        if sample == name:
            return float(value)
    raise AssertionError(f"{name} not in metrics:\n{text}")


def test_metrics_count_what_the_daemon_did(tmp_path: Path) -> None:
    """Events by kind, store operations by op and cause, reconcile and event-to-store
    histograms, mirror lag, queue depth and errors, after a create and an edit."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "a.md").write_text("# a\n")
    port = _free_port()
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.run_args = ["--metrics", str(port)]
    d.start()
    try:
        d.settle()
        (vault / "b.md").write_text("# b\n")
        (vault / "a.md").write_text("# a, edited\n")
        d.settle()
        wait_until(lambda: 'op="upsert"' in _scrape(port), "an upsert counted")
        text = _scrape(port)
        assert 'ccc_watch_events_total{kind="created"}' in text
        assert 'ccc_watch_operations_total{cause="event",op="upsert"}' in text
        assert 'ccc_watch_operations_total{cause="reconcile",op="upsert"} 1.0' in text
        assert _value(text, "ccc_watch_reconcile_seconds_count") >= 1
        assert _value(text, "ccc_watch_event_to_store_seconds_count") >= 2
        assert _value(text, "ccc_watch_queue_depth") == 0
        assert _value(text, "ccc_watch_errors_total") == 0
        wait_until(lambda: "ccc_watch_mirror_lag_entries 0.0" in _scrape(port), "lag 0")
        assert f"metrics at http://127.0.0.1:{port}/metrics" in d.log.read_text()
    finally:
        assert d.stop() == 0


def test_metrics_bind_to_loopback_unless_told() -> None:
    assert parse_address("9464") == ("127.0.0.1", 9464)
    assert parse_address("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
