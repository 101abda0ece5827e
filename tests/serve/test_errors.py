"""Errors: the right status, the OpenAI shape plus ``detail``, the bad item named; nothing of the caller's logged."""

from __future__ import annotations

import base64
import logging

import httpx
import pytest

from tests.serve.conftest import API_KEY, data_uri, running_server


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["detail"] == body["error"]["message"]
    return body["error"]


def test_a_missing_or_wrong_key_is_401_and_health_and_metrics_need_none(served) -> None:  # type: ignore[no-untyped-def]
    route = served.base + "/v1/embeddings"
    body = {"input": ["x"]}
    assert "Bearer" in _error(httpx.post(route, json=body), 401)["message"]
    _error(httpx.post(route, json=body, headers={"Authorization": "Bearer wrong"}), 401)
    _error(httpx.post(route, json=body, headers={"Authorization": API_KEY + "x"}), 401)
    assert httpx.post(route, json=body, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert httpx.post(route, json=body, headers={"Authorization": API_KEY}).status_code == 200  # bare key (TEI)
    assert httpx.get(served.base + "/health").status_code == 200
    assert httpx.get(served.base + "/metrics").status_code == 200


def test_a_corrupt_image_is_400_naming_its_index(served, broken_images) -> None:  # type: ignore[no-untyped-def]
    good = data_uri(served.images["png"])
    truncated = "data:image/jpeg;base64," + base64.b64encode(broken_images["truncated"].read_bytes()).decode()
    for bad, reason in ((truncated, ""), ("data:image/png;base64,bm90IGFuIGltYWdl", "not a recognised image")):
        error = _error(httpx.post(served.base + "/v1/embeddings", headers=served.headers,
                                  json={"input": [good, good, bad], "modality": "image"}), 400)
        assert error["param"] == "input[2]" and error["message"].startswith("input[2]: ")
        assert reason in error["message"]
    # the good items of other clients are not affected: the server still embeds
    ok = httpx.post(served.base + "/v1/embeddings", headers=served.headers, json={"input": [good], "modality": "image"})
    assert ok.status_code == 200


def test_a_path_or_a_url_is_never_read_by_default(served) -> None:  # type: ignore[no-untyped-def]
    for item, words in ((str(served.images["png"]), "never reads its own files"),
                        ("http://127.0.0.1:9/x.png", "fetches no URLs"), ("file:///etc/passwd", "file://")):
        error = _error(httpx.post(served.base + "/v1/embeddings", headers=served.headers,
                                  json={"input": [item], "modality": "image"}), 400)
        assert words in error["message"] and error["param"] == "input[0]"


def test_schema_errors_are_422_naming_the_field(served) -> None:  # type: ignore[no-untyped-def]
    route = served.base + "/v1/embeddings"
    error = _error(httpx.post(route, headers=served.headers, json={"input": ["x"], "encodign_format": "float"}), 422)
    assert error["param"] == "encodign_format" and "unknown field" in error["message"]
    error = _error(httpx.post(route, headers=served.headers, json={"input": ["x", 3]}), 422)
    assert error["param"] == "input[1]"
    _error(httpx.post(route, headers=served.headers, json={"input": ["x"], "modality": "smell"}), 422)
    json_header = {**served.headers, "Content-Type": "application/json"}
    assert _error(httpx.post(route, headers=json_header, content=b"{not json"), 400)["code"] == "invalid_json"
    error = _error(httpx.post(served.base + "/v1/rerank", headers=served.headers, json={"query": "q"}), 422)
    assert error["param"] == "documents"


def test_an_unknown_model_or_modality_is_named(served) -> None:  # type: ignore[no-untyped-def]
    error = _error(httpx.post(served.base + "/v1/embeddings", headers=served.headers,
                              json={"input": ["x"], "model": "text-embedding-3-small"}), 404)
    assert served.embedding.model_name in error["message"]
    error = _error(httpx.post(served.base + "/v1/embeddings", headers=served.headers,
                              json={"input": ["data:audio/wav;base64,AAAA"], "modality": "audio"}), 400)
    assert "does not read audio" in error["message"] and "text, image" in error["message"]


def test_an_unscorable_document_is_a_400_naming_it_unless_kept(served) -> None:  # type: ignore[no-untyped-def]
    image = data_uri(served.images["png"])  # an image query against an image: neither BERT nor BLIP reads that
    body = {"query": {"image": image}, "documents": ["words only", {"image": image}]}
    error = _error(httpx.post(served.base + "/v1/rerank", headers=served.headers, json=body), 400)
    assert error["param"] == "documents[1]" and error["code"] == "unscored"
    kept = httpx.post(served.base + "/v1/rerank", headers=served.headers, json={**body, "unscored": "keep"}).json()
    scores = {r["index"]: r["relevance_score"] for r in kept["results"]}
    assert scores[1] is None and isinstance(scores[0], float)  # BLIP scored the (image, text) pair


@pytest.fixture(scope="module")
def small_limits_server(serve_models):  # type: ignore[no-untyped-def]
    from llama_index_mm_st.serve import Components, Limits, ServeSettings, create_app

    embedding, reranker = serve_models
    settings = ServeSettings(limits=Limits(max_request_items=4, max_body_bytes=4096, max_top_k=5))
    with running_server(create_app(Components(embedding, reranker), settings)) as base:
        yield base


def test_bodies_and_item_counts_over_the_limits_are_413(small_limits_server) -> None:  # type: ignore[no-untyped-def]
    base = small_limits_server
    error = _error(httpx.post(base + "/v1/embeddings", json={"input": ["x"] * 5}), 413)
    assert "at most 4" in error["message"]
    _error(httpx.post(base + "/v1/rerank", json={"query": "q", "documents": ["d"] * 5}), 413)
    _error(httpx.post(base + "/v1/embeddings", json={"input": ["y" * 5000]}), 413)  # declared Content-Length

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"input": ["'
        for _ in range(10):
            yield b"z" * 1000
        yield b'"]}'

    _error(httpx.post(base + "/v1/embeddings", content=chunks()), 413)  # chunked: cut off at the limit
    _error(httpx.post(base + "/v1/rerank", json={"query": "q", "documents": ["d"], "top_n": 6}), 400)
    assert httpx.post(base + "/v1/embeddings", json={"input": ["x"] * 4}).status_code == 200
    metrics = httpx.get(base + "/metrics").text
    assert 'mmst_rejections_total{reason="body_too_large"} 2.0' in metrics
    assert 'mmst_rejections_total{reason="too_many_items"} 2.0' in metrics


def test_nothing_the_caller_sent_is_logged_at_info(served, caplog) -> None:  # type: ignore[no-untyped-def]
    secret_path = "/home/someone/private/holiday.png"
    secret_url = "http://10.1.2.3/internal/secret.png"
    with caplog.at_level(logging.INFO, logger="llama_index_mm_st.serve"):
        for item in (secret_path, secret_url):
            httpx.post(served.base + "/v1/embeddings?token=query-secret", headers=served.headers,
                       json={"input": [item], "modality": "image"})
        httpx.post(served.base + "/v1/embeddings", headers={"Authorization": "Bearer guessed-key-123"},
                   json={"input": ["x"]})
        httpx.get(served.base + "/some/caller/path")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/v1/embeddings" in logged  # the access log names the route...
    for secret in (secret_path, secret_url, "query-secret", "guessed-key-123", API_KEY, "/some/caller/path"):
        assert secret not in logged  # ...and nothing the caller sent
