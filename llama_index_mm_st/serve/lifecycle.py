"""A server's life: warming (models loading, then run once), ready, stopping (draining), or failed.

The port opens at once and ``/health`` answers 503 until every model is loaded and warm, so a load
balancer or an orchestrator's readiness probe waits for a replica that can answer, and a client that
arrives early gets a 503 with ``Retry-After`` instead of a connection error. On SIGTERM the server
stops admitting (503 for new requests, 503 on ``/health``, so the balancer moves away) while the
requests it already took finish (``serve.runner`` waits for them before closing the port).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Union

from .embed import EmbedService
from .errors import APIError, Unavailable
from .items import MediaRules
from .metrics import Metrics
from .rerank import RerankService
from .search import SearchService
from .settings import ServeSettings

log = logging.getLogger("llama_index_mm_st.serve")

Phase = Literal["warming", "ready", "stopping", "failed"]
WARMING_RETRY_S = 5.0
STOPPING_RETRY_S = 1.0


@dataclass
class Components:
    """What a server serves: an embedding, optionally a reranker and a store (``/v1/search`` needs one).

    ``close_store``: the server closes the store when it stops (set when its loader opened it).
    ``model_name``: the model id the index records (default: the embedding's ``model_name``)."""

    embedding: Any
    reranker: Any = None
    store: Any = None
    close_store: bool = False
    model_name: Optional[str] = None


Loader = Callable[[], Components]
"""Builds the components (loads models, opens the store); run in a thread while ``/health`` says warming."""


@dataclass
class Services:
    embed: EmbedService
    rerank: Optional[RerankService]
    search: Optional[SearchService]
    components: Components
    documents: Optional[Any] = None
    """The ``writer.DocumentWriter`` of ``/v1/documents`` and ``/v1/nodes`` (None: no index served)."""


class ServerState:
    """The phase, the services once ready, and the count of requests in flight."""

    def __init__(self, source: Union[Components, Loader], settings: ServeSettings, metrics: Metrics) -> None:
        self._source = source
        self.settings = settings
        self.metrics = metrics
        self.phase: Phase = "warming"
        self.failure: Optional[str] = None
        self.services: Optional[Services] = None
        self.in_flight = 0
        self.started = time.time()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self.ready_event = threading.Event()
        """Set once the phase leaves warming (ready or failed)."""

    # ---- start and stop

    def start(self) -> None:
        """Load (if given a loader) and warm the components in a thread; the phase turns ready or failed."""
        self._thread = threading.Thread(target=self._load, name="mmst-serve-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        started = time.monotonic()
        try:
            components = self._source() if callable(self._source) else self._source
            if self.settings.warm_up:
                warm_up(components)
            self.services = build_services(components, self.settings, self.metrics)
        except Exception as exc:  # noqa: BLE001 - any failure to load is reported by /health and the runner
            self.failure = f"{type(exc).__name__}: {exc}"
            self.phase = "failed"
            log.error("loading failed: %s", self.failure)
        else:
            if self.phase == "warming":
                self.phase = "ready"
                self.metrics.ready.set(1)
            log.info("ready in %.1f s", time.monotonic() - started)
        finally:
            self.ready_event.set()

    def begin_stopping(self) -> None:
        if self.phase != "failed":
            self.phase = "stopping"
        self.metrics.ready.set(0)

    def close(self) -> None:
        services = self.services
        if services is None:
            return
        if services.components.close_store and services.components.store is not None:
            services.components.store.close()

    # ---- per request

    def refusal(self) -> Optional[APIError]:
        """Why an API request can't be taken now (warming, stopping, failed to load), or None."""
        if self.phase == "ready":
            return None
        if self.phase == "warming":
            return Unavailable("the server is loading its models; retry shortly", "warming_up", WARMING_RETRY_S)
        if self.phase == "stopping":
            return Unavailable("the server is shutting down; retry (another replica)", "stopping", STOPPING_RETRY_S)
        return Unavailable(f"the server failed to load its models ({self.failure})", "load_failed")

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
        self.metrics.in_flight.set(self.in_flight)

    def health(self) -> tuple[int, dict[str, Any]]:
        """200 only when ready and every model's worker is alive."""
        services = self.services
        models = []
        if services is not None:
            lanes = [services.embed.lane] + ([services.rerank.lane] if services.rerank else [])
            models = [{"model": lane.name, "alive": lane.alive, "queued": lane.queued} for lane in lanes]
        status: str = self.phase
        if status == "ready" and not all(model["alive"] for model in models):
            status = "unhealthy"
        body: dict[str, Any] = {"status": "ok" if status == "ready" else status, "models": models}
        if self.failure:
            body["detail"] = self.failure
        return (200 if status == "ready" else 503), body


def build_services(components: Components, settings: ServeSettings, metrics: Metrics) -> Services:
    embed = EmbedService(components.embedding, settings, metrics)
    rules: MediaRules = embed.rules
    rerank = RerankService(components.reranker, settings, metrics, rules) if components.reranker is not None else None
    search = (SearchService(components.store, embed, rerank, settings, metrics)
              if components.store is not None else None)
    documents = None
    if components.store is not None:
        from .writer import DocumentWriter

        documents = DocumentWriter(components.store, embed, settings.files_path(components.store),
                                   settings.index_root, components.model_name, writable=not settings.read_only)
    return Services(embed, rerank, search, components, documents)


def warm_up(components: Components) -> None:
    """Run each model once on a small input of every kind it reads, before the first client does."""
    import numpy as np
    from llama_index.core.schema import NodeWithScore, TextNode
    from PIL import Image

    embedding = components.embedding
    samples = {"text": "warm-up", "image": Image.new("RGB", (64, 48), (120, 60, 30)),
               "audio": {"array": np.zeros(16_000, dtype=np.float32), "sampling_rate": 16_000}}
    for modality, sample in samples.items():
        if embedding.supports(modality):
            embedding.embed([sample], modality)
    if components.reranker is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            components.reranker.postprocess_nodes([NodeWithScore(node=TextNode(text="warm-up"))], query_str="warm-up")
