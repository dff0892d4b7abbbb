"""Prometheus metrics of one service, in a registry of its own (DESIGN §9)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    """HTTP, outbox, consumer and DLQ metrics; one instance (and registry) per app."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"service": service}
        r = self.registry
        self.http_requests = Counter(
            "baton_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=r,
        ).labels
        self.http_latency = Histogram(
            "baton_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        ).labels
        self.outbox_published = Counter(
            "baton_outbox_published_events", "Outbox rows published", registry=r
        )
        self.outbox_backlog = Gauge(
            "baton_outbox_backlog", "Outbox rows not yet published", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "baton_outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished row",
            registry=r,
        )
        self.events_handled = Counter(
            "baton_events_handled",
            "Consumed events by type and outcome",
            ["type", "outcome"],
            registry=r,
        ).labels
        self.consumer_lag = Gauge(
            "baton_consumer_lag",
            "Messages behind the partition end",
            ["topic", "partition"],
            registry=r,
        ).labels
        self.consumer_restarts = Counter(
            "baton_consumer_restarts",
            "Times the consumer stopped on an error and started again, by cause (broker, fault)",
            ["cause"],
            registry=r,
        ).labels
        self.group_commit_items = Histogram(
            "baton_group_commit_items",
            "Items written per transaction by a group commit",
            ["group"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        ).labels
        self.dlq_sent = Counter(
            "baton_dlq_events", "Events sent to the dead-letter topic", registry=r
        )
        self.info = Gauge("baton_service_info", "The service", ["service"], registry=r).labels(
            **labels
        )
        self.info.set(1)

    def events_counted(self) -> dict[tuple[str, str], int]:
        """The consumed events counted so far, by type and outcome (handled, ignored, ...)."""
        return {
            (sample.labels["type"], sample.labels["outcome"]): int(sample.value)
            for family in self.registry.collect()
            if family.name == "baton_events_handled"
            for sample in family.samples
            if sample.name.endswith("_total")
        }
