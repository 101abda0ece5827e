"""``/v1/search`` answers the hits the library gives in-process (``build_pipeline(...).search`` turned into
``hits.search_hits`` records, which ``mmst search --json`` prints), for every mode, example and option."""

from __future__ import annotations

import json
from typing import Any, Optional

import httpx
import pytest
from llama_index.core.vector_stores.types import MetadataFilters

from llama_index_mm_st import build_pipeline
from llama_index_mm_st.defaults import DEFAULT_DOCUMENT_KEY, RERANK_CANDIDATES_PER_RESULT
from llama_index_mm_st.hits import score_kind, search_hits
from tests.fixtures.ranking import assert_same_ranking
from tests.serve.conftest import RARE, data_uri

FILTERS = {"filters": [{"key": "kind", "value": "photo", "operator": "=="}], "condition": "and"}


def _in_process(served, text: Optional[str] = None, image: Any = None, top_k: int = 10, mode: str = "hybrid",  # type: ignore[no-untyped-def]
                modality: Optional[str] = None, filters: Optional[dict] = None, rerank: bool = False,
                **quality: Any) -> list[dict]:
    reranker = served.reranker.model_copy(update={"top_n": top_k}) if rerank else None
    candidates = top_k * RERANK_CANDIDATES_PER_RESULT if rerank else top_k
    if "max_per_document" in quality:
        quality.setdefault("document_key", DEFAULT_DOCUMENT_KEY)
    retriever = build_pipeline(served.store, served.embedding, reranker, top_k=candidates, mode=mode, modality=modality,
                               filters=MetadataFilters.model_validate(filters) if filters else None, **quality)
    results = retriever.search(text, **({"image": image} if image is not None else {}))[:top_k]
    kind = score_kind(mode, len(served.reranker.scorers) if rerank else 0, fusion=quality.get("fusion", "rrf"),
                      mmr="mmr" in quality)
    return json.loads(json.dumps([hit.to_dict() for hit in search_hits(results, kind)]))


def _served(served, **body: Any) -> list[dict]:  # type: ignore[no-untyped-def]
    response = httpx.post(served.base + "/v1/search", headers=served.headers, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _same(got: list[dict], expected: list[dict]) -> None:
    """The same hits and scores (tied scores in any order), and each hit's record the same but for its rank."""
    assert_same_ranking([h["id"] for h in got], [h["score"] for h in got], [h["id"] for h in expected],
                        [h["score"] for h in expected], rel=1e-5)
    wanted = {hit["id"]: hit for hit in expected}
    for hit in got:
        want = wanted.get(hit["id"])
        if want is not None:  # else a member of a tie at the cut
            assert {k: v for k, v in hit.items() if k not in ("score", "rank")} == \
                {k: v for k, v in want.items() if k not in ("score", "rank")}


@pytest.mark.parametrize("options", [
    {"query": RARE},
    {"query": "round circles", "mode": "dense", "top_k": 3},
    {"query": "QX-7731 valve", "mode": "sparse"},
    {"query": "a picture", "modality": "image", "top_k": 4},
    {"query": "anything", "filters": FILTERS},
    {"query": "round circles", "rerank": True, "top_k": 3},
    {"query": "round circles", "mmr": 0.3, "top_k": 4},
    {"query": "a photo of circles", "max_per_document": 1, "top_k": 4},
    {"query": "QX-7731 round", "fusion": "dbsf"},
    {"query": "QX-7731 round", "rrf_k": 5, "rrf_weights": {"image": 3.0, "bm25": 0.5}},
], ids=["hybrid", "dense", "sparse", "modality", "filters", "rerank", "mmr", "max_per_document", "dbsf", "weights"])
def test_text_searches_equal_the_in_process_pipeline(served, options: dict) -> None:  # type: ignore[no-untyped-def]
    quality = {k: options[k] for k in ("mmr", "max_per_document", "fusion", "rrf_k", "rrf_weights") if k in options}
    expected = _in_process(served, options["query"], top_k=options.get("top_k", 10), mode=options.get("mode", "hybrid"),
                           modality=options.get("modality"), filters=options.get("filters"),
                           rerank=options.get("rerank", False), **quality)
    got = _served(served, **options)
    assert got and {hit["score_kind"] for hit in got} == {expected[0]["score_kind"]}
    _same(got, expected)


def test_an_image_example_alone_and_with_words(served) -> None:  # type: ignore[no-untyped-def]
    path = served.images["jpeg"]
    _same(_served(served, image=data_uri(path)), _in_process(served, image=str(path)))
    _same(_served(served, query="a photo", image=data_uri(path), top_k=3),
          _in_process(served, "a photo", image=str(path), top_k=3))
    assert _served(served, image=data_uri(path), top_k=1)[0]["id"] == "image-jpeg"


@pytest.mark.parametrize("body, status, words, param", [
    ({"query": "   "}, 400, "empty", "query"),
    ({}, 400, "a search needs text", "query"),
    ({"query": "valve", "mode": "sparse", "image": "data:image/png;base64,AAAA"}, 400, "exact words", "mode"),
    ({"query": "the of and", "mode": "sparse"}, 400, "stop words", "query"),
    ({"query": "valve", "filters": {"filters": [{"key": "kind", "operator": "~~"}]}}, 422, "filters", "filters"),
    ({"query": "valve", "top_k": 0}, 422, "top_k", "top_k"),
    ({"query": "valve", "image": "data:image/png;base64,AAAA", "audio": "data:audio/wav;base64,AAAA"}, 400,
     "one example", "audio"),
    ({"image": "data:image/png;base64,bm90IGFuIGltYWdl"}, 400, "image: not a recognised image", "image"),
    ({"query": "valve", "mode": "sparse", "mmr": 0.5}, 400, "MMR compares the hits' dense vectors", "mmr"),
    ({"query": "valve", "fusion": "dbsf", "rrf_weights": {"image": 2}}, 400, "DBSF", "rrf_weights"),
    ({"query": "valve", "rrf_weights": {"pictures": 2}}, 400, "rrf_weights keys must be among", "rrf_weights"),
    ({"query": "valve", "mmr": 1.5}, 422, "mmr", "mmr"),
    ({"query": "valve", "max_per_document": 0}, 422, "max_per_document", "max_per_document"),
    ({"query": "valve", "mmr_lambda": 0.5}, 422, "mmr_lambda", "mmr_lambda"),
])
def test_bad_searches_are_refused_with_a_reason(served, body: dict, status: int, words: str, param: str) -> None:  # type: ignore[no-untyped-def]
    response = httpx.post(served.base + "/v1/search", headers=served.headers, json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert response.json()["error"]["param"] == param, response.text  # the field, as the body names it


def test_a_server_without_an_index_says_so(serve_models) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st.serve import Components, create_app
    from tests.serve.conftest import running_server

    with running_server(create_app(Components(serve_models[0]))) as base:
        response = httpx.post(base + "/v1/search", json={"query": "x"})
        assert response.status_code == 404 and "--store" in response.json()["detail"]
        models = httpx.get(base + "/v1/models").json()["data"]
        assert [m["capabilities"]["kind"] for m in models] == ["embedding"]
        assert models[0]["capabilities"]["search"] is False
