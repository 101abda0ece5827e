"""Under load and faults: overload is a fast 429 with Retry-After (never a 5xx), batches stay within their
token and pixel budgets, a dead worker fails its requests with 503 and turns /health to 503, and a
warming server answers 503 until its models are ready.

The embeddings here are the tiny CLIP with a fault or a delay added to its batch call (a model slower
than the clients, a model that dies): the server cannot tell them from a slow GPU or a CUDA fault.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List

import httpx
import pytest

from llama_index_mm_st import MultimodalEmbedding
from tests.serve.conftest import data_uri, running_server


class RecordingEmbedding(MultimodalEmbedding):
    """The tiny CLIP, ``delay`` seconds slower per batch, recording every batch it is given."""

    def __init__(self, *args: Any, delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_test_delay", delay)
        object.__setattr__(self, "_test_batches", [])
        object.__setattr__(self, "_test_broken", threading.Event())

    def embed(self, inputs, modality=None, **kwargs):  # type: ignore[no-untyped-def, override]
        if self._test_broken.is_set():
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        self._test_batches.append((modality, list(inputs)))
        time.sleep(self._test_delay)
        return super().embed(inputs, modality, **kwargs)


def _embedding(serve_models, **options: Any) -> RecordingEmbedding:  # type: ignore[no-untyped-def]
    base, _ = serve_models
    return RecordingEmbedding(model=base.model, device="cpu", precision="fp32", **options)


def _app(embedding: Any, **limits: Any) -> Any:
    from llama_index_mm_st.serve import Components, Limits, ServeSettings, create_app

    return create_app(Components(embedding), ServeSettings(limits=Limits(**limits)))


async def _burst(base: str, bodies: List[dict]) -> List[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        return list(await asyncio.gather(*(client.post(base + "/v1/embeddings", json=body) for body in bodies)))


def test_overload_is_a_fast_429_with_retry_after_and_the_server_serves_on(serve_models) -> None:  # type: ignore[no-untyped-def]
    embedding = _embedding(serve_models, delay=0.25)
    with running_server(_app(embedding, max_queue=2)) as base:
        started = time.monotonic()
        responses = asyncio.run(_burst(base, [{"input": [f"text {i}"]} for i in range(24)]))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429}, statuses  # never a 5xx, never a hang
        refused = [r for r in responses if r.status_code == 429]
        assert len(refused) >= 12 and statuses.count(200) >= 2  # the running batch takes what it admitted
        for response in refused:
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["error"]["type"] == "rate_limit_error"
        assert time.monotonic() - started < 10  # each refusal came at once, not after a wait
        assert httpx.post(base + "/v1/embeddings", json={"input": ["after"]}).status_code == 200
        metrics = httpx.get(base + "/metrics").text
        assert 'mmst_rejections_total{reason="queue_full"}' in metrics
        assert 'mmst_queue_depth{model="embedding"} 0.0' in metrics


def test_batches_stay_within_the_token_and_pixel_budgets(serve_models, image_files) -> None:  # type: ignore[no-untyped-def]
    embedding = _embedding(serve_models, delay=0.05)
    text = "x" * 30  # at most 32 tokens by the server's upper bound
    image = data_uri(image_files["png"])  # 64 x 48 = 3,072 pixels
    with running_server(_app(embedding, max_batch_tokens=70, max_batch_pixels=7000)) as base:
        embedding._test_batches.clear()
        bodies = [{"input": [text]} for _ in range(12)] + [{"input": [image], "modality": "image"} for _ in range(9)]
        assert all(r.status_code == 200 for r in asyncio.run(_burst(base, bodies)))
    sizes = {modality: [len(batch) for m, batch in embedding._test_batches if m == modality] for modality in ("text", "image")}
    assert sum(sizes["text"]) == 12 and sum(sizes["image"]) == 9
    assert max(sizes["text"]) <= 2 and max(sizes["image"]) <= 2  # 2 x 32 <= 70 tokens; 2 x 3,072 <= 7,000 pixels
    assert max(sizes["text"]) == 2  # the batcher did coalesce up to the budget


def test_a_dead_worker_fails_its_requests_with_503_and_health_turns_503(serve_models) -> None:  # type: ignore[no-untyped-def]
    embedding = _embedding(serve_models, delay=0.1)
    with running_server(_app(embedding)) as base:
        assert httpx.get(base + "/health").json()["status"] == "ok"
        embedding._test_broken.set()  # the next batch dies as a CUDA fault would
        responses = asyncio.run(_burst(base, [{"input": [f"text {i}"]} for i in range(6)]))
        assert [r.status_code for r in responses] == [503] * 6
        assert {r.json()["error"]["code"] for r in responses} == {"worker_dead"}
        health = httpx.get(base + "/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        assert health.json()["models"][0] == {"model": "embedding", "alive": False, "queued": 0}
        embedding._test_broken.clear()  # a dead worker stays dead: this replica needs a restart
        assert httpx.post(base + "/v1/embeddings", json={"input": ["x"]}).status_code == 503
        assert 'mmst_worker_alive{model="embedding"} 0.0' in httpx.get(base + "/metrics").text


def test_a_warming_server_answers_503_with_retry_after_until_ready(serve_models) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st.serve import Components, ServeSettings, create_app

    release = threading.Event()
    embedding, _ = serve_models

    def load() -> Components:
        release.wait(20)
        return Components(embedding)

    app = create_app(load, ServeSettings(warm_up=False))
    with running_server(app, wait_ready=False) as base:
        health = httpx.get(base + "/health")
        assert health.status_code == 503 and health.json()["status"] == "warming"
        busy = httpx.post(base + "/v1/embeddings", json={"input": ["x"]})
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
        assert busy.json()["error"]["code"] == "warming_up"
        assert httpx.get(base + "/metrics").status_code == 200
        release.set()
        assert app.state.server.ready_event.wait(10)
        assert httpx.get(base + "/health").status_code == 200
        assert httpx.post(base + "/v1/embeddings", json={"input": ["x"]}).status_code == 200


def test_a_model_that_fails_to_load_keeps_health_at_503_and_the_runner_exits_1() -> None:
    from llama_index_mm_st.serve import Components, create_app, run
    from tests.serve.conftest import free_port

    def load() -> Components:
        raise OSError("no such model directory /models/missing")

    app = create_app(load)
    assert run(app, "127.0.0.1", free_port(), log_level="warning") == 1  # exits: an orchestrator restarts it
    assert "no such model directory" in (app.state.server.failure or "")

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://served") as client:
            return await client.get("/health"), await client.post("/v1/embeddings", json={"input": ["x"]})

    health, refused = asyncio.run(ask())
    assert health.status_code == 503 and "no such model directory" in health.json()["detail"]
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "load_failed"


@pytest.mark.parametrize("count", [40])
def test_many_concurrent_clients_are_batched_together(serve_models, count: int) -> None:  # type: ignore[no-untyped-def]
    embedding = _embedding(serve_models, delay=0.05)
    with running_server(_app(embedding)) as base:
        embedding._test_batches.clear()
        responses = asyncio.run(_burst(base, [{"input": [f"caption {i}"]} for i in range(count)]))
        assert all(r.status_code == 200 for r in responses)
        vectors = [r.json()["data"][0]["embedding"] for r in responses]
    assert len(embedding._test_batches) < count / 2  # coalesced across clients, not one forward pass each
    expected = serve_models[0].get_text_embedding_batch([f"caption {i}" for i in range(count)])
    assert max(abs(a - b) for got, want in zip(vectors, expected) for a, b in zip(got, want)) < 1e-5


def test_searches_and_embeddings_share_one_queue_per_model(serve_models, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``/v1/search`` embeds its query in the embedding lane: a burst of mixed embeddings and searches over a
    queue of 2 is admitted or refused (429) by one rule, each admitted query is embedded once by the lane's
    worker, and the lane's depth shows in /metrics while the burst waits."""
    from llama_index.core.schema import TextNode

    from llama_index_mm_st import MultimodalQdrantStore
    from llama_index_mm_st.serve import Components, Limits, ServeSettings, create_app

    embedding = _embedding(serve_models, delay=0.25)
    store = MultimodalQdrantStore("lanes", path=str(tmp_path / "index"))
    store.add(embedding([TextNode(id_=f"t{i}", text=f"note number {i} about valves") for i in range(6)]))
    embedding._test_batches.clear()
    app = create_app(Components(embedding, None, store), ServeSettings(limits=Limits(max_queue=2)))
    depths: list[float] = []

    async def burst(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
            async def watch() -> None:
                for _ in range(20):
                    text = (await client.get(base + "/metrics")).text
                    line = next(l for l in text.splitlines() if l.startswith('mmst_queue_depth{model="embedding"}'))
                    depths.append(float(line.split()[-1]))
                    await asyncio.sleep(0.02)

            calls = [client.post(base + "/v1/search", json={"query": f"valve {i}", "mode": "dense", "top_k": 2})
                     if i % 2 else client.post(base + "/v1/embeddings", json={"input": [f"text {i}"]})
                     for i in range(24)]
            *responses, _ = await asyncio.gather(*calls, watch())
            return responses

    try:
        with running_server(app) as base:
            responses = asyncio.run(burst(base))
            searches, embeds = responses[1::2], responses[0::2]
            assert {r.status_code for r in responses} <= {200, 429}, [r.text for r in responses]
            assert any(r.status_code == 429 for r in searches), "searches are admitted by the embedding lane"
            assert any(r.status_code == 200 for r in searches) and any(r.status_code == 200 for r in embeds)
            for refused in (r for r in searches if r.status_code == 429):
                assert int(refused.headers["Retry-After"]) >= 1 and refused.json()["error"]["code"] == "queue_full"
            assert max(depths) >= 1  # the waiting queries and texts were counted in the lane's depth
            # Each admitted search's query was embedded once, in the lane's batches; a refused one never ran.
            queries = [t for _, texts in embedding._test_batches for t in texts if str(t).startswith("valve")]
            assert sorted(queries) == sorted(r.request.read().decode().split('"')[3] for r in searches
                                             if r.status_code == 200)
            answer = httpx.post(base + "/v1/search", json={"query": "valve", "mode": "dense", "top_k": 2})
            assert answer.status_code == 200 and len(answer.json()["results"]) == 2
    finally:
        store.close()
