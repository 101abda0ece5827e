"""Prometheus metrics of one server, in a registry of its own (two apps in one process don't clash).

What an operator needs to size and watch a deployment: requests by route and status, how long they
take, how deep each model's queue is, how big the batches get, time spent waiting versus computing,
items by modality, and every refusal by its reason (queue full, waited too long, unauthorised, too
large, warming, stopping, worker dead).
"""

from __future__ import annotations

from ..errors import MissingDependencyError

SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The server's counters, gauges and histograms; ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError as exc:
            raise MissingDependencyError("prometheus-client", "serve") from exc
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("mmst_requests", "Requests answered, by route and status.", ["route", "status"],
                                registry=registry)
        self.request_seconds = Histogram("mmst_request_duration_seconds", "Time to answer a request, by route.",
                                         ["route"], buckets=TIME_BUCKETS, registry=registry)
        self.in_flight = Gauge("mmst_requests_in_flight", "Requests being answered now.", registry=registry)
        self.queue_depth = Gauge("mmst_queue_depth", "Items waiting for a model.", ["model"], registry=registry)
        self.batch_size = Histogram("mmst_batch_size", "Items per model batch.", ["model"], buckets=SIZE_BUCKETS,
                                    registry=registry)
        self.inference_seconds = Histogram("mmst_inference_seconds", "Time a model batch took.", ["model"],
                                           buckets=TIME_BUCKETS, registry=registry)
        self.queue_seconds = Histogram("mmst_queue_wait_seconds", "Time an item waited for its batch.", ["model"],
                                       buckets=TIME_BUCKETS, registry=registry)
        self.items = Counter("mmst_items", "Items embedded, reranked or searched, by modality.", ["modality"],
                             registry=registry)
        self.rejections = Counter("mmst_rejections", "Requests refused, by reason.", ["reason"], registry=registry)
        self.worker_alive = Gauge("mmst_worker_alive", "1 while the model's worker serves, 0 once it died.",
                                  ["model"], registry=registry)
        self.ready = Gauge("mmst_ready", "1 when every model is loaded and warm and the server is not stopping.",
                           registry=registry)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
