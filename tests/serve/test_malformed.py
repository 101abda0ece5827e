"""The malformed-body corpus: one body of each malformed kind to every POST route, on the session's server
(and, for the routes that write, on a fresh index of their own).

Each answer must be the status the table names (every one a 4xx), in the error shape, naming the field
or item where there is one; no answer may carry NaN; and the server serves good requests after all of
them. The table is the documentation of what a client gets (README: "Serving: bad requests").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Union

import httpx
import numpy as np
import pytest

from llama_index.core.schema import TextNode

from llama_index_mm_st.node_wire import node_to_wire
from llama_index_mm_st.pipeline import MAX_RRF_K
from llama_index_mm_st.serve.body import MAX_JSON_DEPTH, json_depth, parse_json
from llama_index_mm_st.serve.errors import APIError
from tests.serve.conftest import API_KEY, data_uri, running_server

BAD_BASE64 = "data:image/png;base64,!!!%%%not*base64***"
NOT_BASE64 = "data:image/png,not-base64-at-all"
NOT_AN_IMAGE = "data:image/png;base64,bm90IGFuIGltYWdl"
EMPTY_DATA = "data:image/png;base64,"
DEEP = 50_000
HUGE = 18446744073709551616  # 2**64: past every engine's integer

Body = Union[bytes, dict]
Case = tuple[Body, int, Optional[str]]  # (body, status, param: None when the body as a whole is wrong)


@dataclass(frozen=True)
class Family:
    """One shape of body and the routes that take it. ``text``/``number``: a good body as JSON text with
    ``@@`` where a string or a number goes, and the param that names that place."""

    routes: tuple[str, ...]
    good: dict
    text: tuple[str, str]
    number: tuple[str, str]
    field: str  # a top-level field, for a wrong type and for deep nesting
    unknown_param: str = "tpo_k"
    shape_param: Optional[str] = None  # what a body that is not an object is named by
    items: bool = False  # the item kinds (lists of inputs, media, counts) apply
    writes: bool = False  # served by a fresh writable index of its own


FAMILIES: dict[str, Family] = {
    "embeddings": Family(("/v1/embeddings", "/embeddings"), {"input": ["a red circle"]},
                         ('{"input": ["a red circle", @@]}', "input[1]"), ('{"input": ["x"], "dimensions": @@}', "dimensions"),
                         "input", items=True),
    "tei_embed": Family(("/embed", "/v1/embed"), {"inputs": ["a red circle"]},
                        ('{"inputs": ["a red circle", @@]}', "inputs[1]"), ('{"inputs": ["x"], "dimensions": @@}', "dimensions"),
                        "inputs", items=True),
    "rerank": Family(("/v1/rerank", "/rerank"), {"query": "circles", "documents": ["a red circle", "blue sky"]},
                     ('{"query": "circles", "documents": ["a red circle", @@]}', "documents[1]"),
                     ('{"query": "circles", "documents": ["x"], "top_n": @@}', "top_n"), "documents", items=True),
    "tei_rerank": Family(("/rerank", "/v1/rerank"), {"query": "circles", "texts": ["a red circle", "blue sky"]},
                         ('{"query": "circles", "texts": ["a red circle", @@]}', "texts[1]"),
                         ('{"query": @@, "texts": ["x"]}', "query"), "texts", items=True),
    "search": Family(("/v1/search", "/search"), {"query": "circles", "top_k": 3}, ('{"query": @@}', "query"),
                     ('{"query": "x", "rrf_weights": {"text": @@}}', "rrf_weights.text"), "query", items=True),
    "documents": Family(("/v1/documents", "/documents"), {"documents": [{"id": "good", "text": "a red circle"}]},
                        ('{"documents": [{"text": @@}]}', "documents[0].text"),
                        ('{"documents": [{"text": "x", "metadata": {"score": @@}}]}', "documents[0].metadata.score"),
                        "documents", unknown_param="documents", shape_param="documents", writes=True),
    "documents_delete": Family(("/v1/documents/delete", "/documents/delete"), {"ids": ["no-such-document"]},
                               ('{"ids": [@@]}', "ids[0]"),
                               ('{"filters": {"filters": [{"key": "n", "value": @@}]}}', "filters.filters[0].value"),
                               "ids", writes=True),
    "nodes": Family(("/v1/nodes", "/nodes"), {"nodes": [node_to_wire(TextNode(id_="good-node", text="a red circle"))]},
                    ('{"nodes": [{"type": "TextNode", "content": @@}]}', "nodes[0].content"),
                    ('{"nodes": [{"type": "TextNode", "content": "{}", "embedding": [0.5, @@]}]}', "nodes[0].embedding[1]"),
                    "nodes", writes=True),
    "nodes_query": Family(("/v1/nodes/query", "/nodes/query"), {"query_str": "circles", "similarity_top_k": 2},
                          ('{"query_str": @@}', "query_str"), ('{"query_str": "x", "alpha": @@}', "alpha"), "query_str",
                          writes=True),
    "nodes_get": Family(("/v1/nodes/get", "/v1/nodes/delete"), {"node_ids": ["no-such-node"]},
                        ('{"node_ids": [@@]}', "node_ids[0]"),
                        ('{"filters": {"filters": [{"key": "n", "value": @@}]}}', "filters.filters[0].value"),
                        "node_ids", writes=True),
}
ROUTES = {name: family.routes for name, family in FAMILIES.items()}
GOOD = {name: family.good for name, family in FAMILIES.items()}


def _with(family: str, **fields: Any) -> dict:
    return {**GOOD[family], **fields}


def _at(template_and_param: tuple[str, str], value: str) -> Case:
    template, param = template_and_param
    return template.replace("@@", value).encode(), 400, param


def _items(build: Callable[[str], Optional[Case]]) -> Callable[[str], Optional[Case]]:
    """A kind that only the item-taking shapes have (lists of inputs, media, counts)."""
    return lambda family: build(family) if FAMILIES[family].items else None


def _media(family: str, uri: str) -> Optional[Case]:
    if family == "embeddings":
        return {"input": [uri], "modality": "image"}, 400, "input[0]"
    if family == "rerank":
        return {"query": "circles", "documents": ["words", {"image": uri}]}, 400, "documents[1]"
    if family == "search":
        return {"image": uri}, 400, "image"
    return None  # text-only shapes


def _deep_field(family: str) -> Case:
    field = FAMILIES[family].field
    return (json.dumps(GOOD[family])[:-1] + f', "{field}x": ' + "[" * DEEP + "]" * DEEP + "}").encode(), 400, None


def _list_field(family: str) -> str:
    return FAMILIES[family].field if family != "search" else ""


KINDS: dict[str, Callable[[str], Optional[Case]]] = {
    "not JSON": lambda f: (b"{not json", 400, None),
    "empty body": lambda f: (b"", 400, None),
    "invalid UTF-8": lambda f: (b'{"input": "\xff\xfe"}', 400, None),
    "an integer of 5,000 digits": lambda f: (b'{"top_k": ' + b"9" * 5000 + b"}", 400, None),
    "not an object (array)": lambda f: (b"[1, 2]", 422, FAMILIES[f].shape_param),
    "null": lambda f: (b"null", 422, FAMILIES[f].shape_param),
    f"nested {DEEP:,} deep": lambda f: (b"[" * DEEP + b"]" * DEEP, 400, None),
    f"nested {DEEP:,} deep in a field": _deep_field,
    f"nested {MAX_JSON_DEPTH + 1} deep (under Python's recursion limit)":
        lambda f: (b'{"x": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}", 400, None),
    "NaN literal": lambda f: _at(FAMILIES[f].number, "NaN"),
    "Infinity literal": lambda f: _at(FAMILIES[f].number, "-Infinity"),
    "1e400 (overflows to infinity)": lambda f: _at(FAMILIES[f].number, "1e400"),
    "lone surrogate in a text": lambda f: _at(FAMILIES[f].text, '"x\\ud800y"'),
    "lone surrogate in a key": lambda f: (json.dumps(GOOD[f])[:-1].encode() + b', "\\udc00": 1}', 400, None),
    "unknown field": lambda f: (_with(f, tpo_k=3), 422, FAMILIES[f].unknown_param),
    "wrong type": lambda f: (_with(f, **{FAMILIES[f].field: 7}), 422, FAMILIES[f].field),
    "text list item not a string": _items(lambda f: None if f == "search" else
        (_with(f, **{_list_field(f): ["ok", {"deep": [1]}]}), 422 if f != "rerank" else 400, f"{_list_field(f)}[1]")),
    "no items": _items(lambda f: None if f == "search" else (_with(f, **{_list_field(f): []}), 400, None)),
    "too many items": _items(lambda f: None if f == "search" else (_with(f, **{_list_field(f): ["x"] * 2049}), 413, None)),
    "2**64 as a count": _items(lambda f: {
        "embeddings": (_with(f, dimensions=HUGE), 400, "dimensions"),
        "tei_embed": (_with(f, dimensions=HUGE), 400, "dimensions"),
        "rerank": (_with(f, top_n=HUGE), 400, "top_n"),
        "tei_rerank": None,
        "search": (_with(f, top_k=HUGE), 400, "top_k"),
    }[f]),
    "negative count": _items(lambda f: {
        "embeddings": (_with(f, dimensions=-1), 422, "dimensions"),
        "tei_embed": (_with(f, dimensions=-1), 422, "dimensions"),
        "rerank": (_with(f, top_n=-1), 422, "top_n"),
        "tei_rerank": None,
        "search": (_with(f, top_k=-1), 422, "top_k"),
    }[f]),
    "bad base64 data: URI": lambda f: _media(f, BAD_BASE64),
    "data: URI without base64": lambda f: _media(f, NOT_BASE64),
    "base64 of something not an image": lambda f: _media(f, NOT_AN_IMAGE),
    "empty data: URI": lambda f: _media(f, EMPTY_DATA),
    "a server path as media": lambda f: _media(f, "/etc/passwd"),
    "an ftp:// URL as media": lambda f: _media(f, "ftp://127.0.0.1:9/x.png"),
    "bad base64 rerank query": lambda f: ({"query": {"image": BAD_BASE64}, "documents": ["x"]}, 400, "query")
        if f == "rerank" else None,
    "rrf_k 2**64": lambda f: (_with(f, rrf_k=HUGE), 422, "rrf_k") if f == "search" else None,
    "rrf_k over MAX_RRF_K": lambda f: (_with(f, rrf_k=MAX_RRF_K + 1), 422, "rrf_k") if f == "search" else None,
    "negative rrf weight": lambda f: (_with(f, rrf_weights={"text": -1.0}), 422, "rrf_weights.text")
        if f == "search" else None,
    "mmr out of range": lambda f: (_with(f, mmr=1.5), 422, "mmr") if f == "search" else None,
}


def _cases() -> list[tuple[str, str, str]]:
    return [(kind, family, route) for kind in KINDS for family, routes in ROUTES.items() for route in routes
            if KINDS[kind](family) is not None and not (family == "tei_rerank" and route == "/v1/rerank")]


@pytest.fixture(scope="module")
def index_served(serve_models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, writable index of its own: whatever a malformed body did, the session's index is untouched."""
    from llama_index_mm_st import MultimodalQdrantStore
    from llama_index_mm_st.serve import Components, ServeSettings, create_app

    store = MultimodalQdrantStore("mmst", path=str(tmp_path_factory.mktemp("malformed_index") / "index"))
    app = create_app(Components(serve_models[0], None, store), ServeSettings(api_key=API_KEY, warm_up=False))
    try:
        with running_server(app) as base:
            yield base
    finally:
        store.close()


def _base(family: str, served: Any, index_served: str) -> str:
    return index_served if FAMILIES[family].writes else served.base


def _strict_json(text: str) -> Any:
    """A response body as a strict client reads it: NaN or Infinity anywhere fails."""
    def refuse(literal: str) -> Any:
        raise AssertionError(f"a response carried {literal}")
    return json.loads(text, parse_constant=refuse)


def _post(base: str, route: str, body: Body, headers: dict[str, str]) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(base + route, content=body, headers={**headers, "Content-Type": "application/json"},
                          timeout=60)
    return httpx.post(base + route, json=body, headers=headers, timeout=60)


@pytest.mark.parametrize("kind, family, route", _cases())
def test_each_malformed_body_is_a_4xx_naming_what_is_wrong(served, index_served, kind: str, family: str,  # type: ignore[no-untyped-def]
                                                           route: str) -> None:
    body, status, param = KINDS[kind](family)  # type: ignore[misc]
    response = _post(_base(family, served, index_served), route, body, served.headers)
    assert response.status_code == status, (kind, route, response.text[:300])
    error = _strict_json(response.text)["error"]
    assert error["param"] == param, (kind, route, error)
    assert error["message"] and "Traceback" not in error["message"]
    if param is not None:
        assert param in error["message"]


def test_the_servers_serve_every_route_after_the_corpus(served, index_served) -> None:  # type: ignore[no-untyped-def]
    for kind, family, route in _cases()[::7]:  # a sample, then every good request
        _post(_base(family, served, index_served), route, KINDS[kind](family)[0], served.headers)  # type: ignore[index]
    for base in (served.base, index_served):
        assert httpx.get(base + "/health").status_code == 200
    assert httpx.get(index_served + "/v1/documents", headers=served.headers).json()["data"] == []  # nothing written
    for family, routes in ROUTES.items():
        response = _post(_base(family, served, index_served), routes[0], GOOD[family], served.headers)
        assert response.status_code == 200, (routes[0], response.text[:300])
        _strict_json(response.text)


def test_the_depth_is_measured_without_recursion_over_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_index_mm_st.serve.body as body

    samples = [b'{"a": "[[[[", "b": [[1], {"c": "\\\\"}], "d": "\\"]]]"}', b'["\\\\\\"[[[", [[[]]]]',
               b'[' * 40 + b']' * 40, b'{"x": "' + b"\\\\" * 9 + b'", "y": [[["\\"{{"]]]}']
    expected = [3, 4, 40, 4]
    for chunk in (1 << 20, 5, 2, 1):  # a string, an escape or a bracket split across chunks
        monkeypatch.setattr(body, "_CHUNK", chunk)
        assert [json_depth(sample) for sample in samples] == expected, chunk
    assert json_depth(b'{"image": "' + b"A" * 3_000_000 + b'", "n": [[[]]]}') == 4


def test_a_parse_never_raises_anything_but_an_api_error() -> None:
    hostile = [b"[" * 100_000, b'{"a": ' * 5000, b'"' + b"\\" * 10_001 + b'"', b"\xff", b"1e99999", b"-" + b"9" * 5000]
    for raw in hostile:
        with pytest.raises(APIError) as caught:
            parse_json(raw)
        assert 400 <= caught.value.status < 500


def test_the_json_encoder_refuses_nan() -> None:
    from llama_index_mm_st.serve.routes import json_response

    assert json_response({"score": 1.5}).body == b'{"score":1.5}'
    for bad in (float("nan"), float("inf")):
        with pytest.raises(APIError) as caught:
            json_response({"results": [{"score": bad}]})
        assert caught.value.status == 500 and caught.value.code == "non_finite_output"


def test_a_model_that_gives_nan_is_a_500_naming_the_item_in_both_encodings(serve_models) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st import MultimodalEmbedding
    from llama_index_mm_st.serve import Components, ServeSettings, create_app

    class NaNEmbedding(MultimodalEmbedding):
        """The tiny CLIP, but a text with "poison" in it comes back NaN (as an overflowing fp16 model would)."""

        def embed(self, inputs, modality=None, **kwargs):  # type: ignore[no-untyped-def, override]
            result = super().embed(inputs, modality, **kwargs)
            for i, item in enumerate(inputs):
                if isinstance(item, str) and "poison" in item:
                    result.embeddings[i] = [float("nan")] * len(result.embeddings[i])
            return result

    embedding = NaNEmbedding(model=serve_models[0].model, device="cpu", precision="fp32")
    with running_server(create_app(Components(embedding), ServeSettings())) as base:
        for encoding in ("float", "base64"):
            response = httpx.post(base + "/v1/embeddings", json={"input": ["fine", "poison"], "encoding_format": encoding})
            assert response.status_code == 500, response.text
            error = _strict_json(response.text)["error"]
            assert error["code"] == "non_finite_output" and error["param"] == "input[1]"
        response = httpx.post(base + "/embed", json={"inputs": ["poison"]})
        assert response.status_code == 500 and response.json()["error"]["param"] == "inputs[0]"
        good = httpx.post(base + "/v1/embeddings", json={"input": ["fine"]})
        assert good.status_code == 200 and np.isfinite(_strict_json(good.text)["data"][0]["embedding"]).all()


def test_the_repro_of_the_issue_is_a_400(served) -> None:  # type: ignore[no-untyped-def]
    body = {"input": ["data:image/png;base64,!!!%%%not*base64***"], "modality": "image"}
    response = httpx.post(served.base + "/v1/embeddings", json=body, headers=served.headers)
    assert response.status_code == 400 and response.json()["error"]["param"] == "input[0]"
    assert "base64" in response.json()["error"]["message"]
    good = data_uri(served.images["png"])
    assert httpx.post(served.base + "/v1/embeddings", json={"input": [good], "modality": "image"},
                      headers=served.headers).status_code == 200
