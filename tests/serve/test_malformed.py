"""The malformed-body corpus: one body of each malformed kind to every POST route, on the session's server.

Each answer must be the status the table names (every one a 4xx), in the error shape, naming the field
or item where there is one; no answer may carry NaN; and the server serves good requests after all of
them. The table is the documentation of what a client gets (README: "Serving: bad requests").
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Union

import httpx
import numpy as np
import pytest

from llama_index_mm_st.serve.body import MAX_JSON_DEPTH, json_depth, parse_json
from llama_index_mm_st.serve.errors import APIError
from tests.serve.conftest import data_uri, running_server

BAD_BASE64 = "data:image/png;base64,!!!%%%not*base64***"
NOT_BASE64 = "data:image/png,not-base64-at-all"
NOT_AN_IMAGE = "data:image/png;base64,bm90IGFuIGltYWdl"
EMPTY_DATA = "data:image/png;base64,"
DEEP = 50_000
HUGE = 18446744073709551616  # 2**64: past every engine's integer

Body = Union[bytes, dict]
Case = tuple[Body, int, Optional[str]]  # (body, status, param: None when the body as a whole is wrong)
Builder = Callable[[str], Optional[Case]]
ROUTES = {  # a family of body shapes -> the routes that take it
    "embeddings": ("/v1/embeddings", "/embeddings"),
    "tei_embed": ("/embed", "/v1/embed"),
    "rerank": ("/v1/rerank", "/rerank"),
    "tei_rerank": ("/rerank", "/v1/rerank"),
    "search": ("/v1/search", "/search"),
}
GOOD: dict[str, dict] = {
    "embeddings": {"input": ["a red circle"]},
    "tei_embed": {"inputs": ["a red circle"]},
    "rerank": {"query": "circles", "documents": ["a red circle", "blue sky"]},
    "tei_rerank": {"query": "circles", "texts": ["a red circle", "blue sky"]},
    "search": {"query": "circles", "top_k": 3},
}
TEXT_FIELD = {"embeddings": ("input", 0), "tei_embed": ("inputs", 0), "rerank": ("documents", 1),
              "tei_rerank": ("texts", 1), "search": ("query", None)}


def _raw(text: str) -> bytes:
    return text.encode()


def _with(family: str, **fields: Any) -> dict:
    return {**GOOD[family], **fields}


def _text_at(family: str, value: str) -> Case:
    """A good body whose text field holds ``value`` (raw JSON, so escapes stay as sent), and its param."""
    field, index = TEXT_FIELD[family]
    body = dict(GOOD[family])
    if index is None:
        body[field] = "@@"
        param = field
    else:
        body[field] = [*body[field][:index], "@@"]
        param = f"{field}[{index}]"
    return json.dumps(body).replace('"@@"', value).encode(), 400, param


def _number_at(family: str, literal: str) -> Case:
    """A good body with a float field set to a JSON literal (NaN, Infinity, 1e400), and its param."""
    field = {"search": "rrf_weights", "rerank": "top_n", "tei_rerank": "query", "embeddings": "dimensions",
             "tei_embed": "dimensions"}[family]
    value: Any = {"text": "@@"} if family == "search" else "@@"
    raw = json.dumps({**GOOD[family], field: value}).replace('"@@"', literal).encode()
    return raw, 400, field + (".text" if family == "search" else "")



def _media(family: str, uri: str) -> Optional[Case]:
    if family == "embeddings":
        return {"input": [uri], "modality": "image"}, 400, "input[0]"
    if family == "rerank":
        return {"query": "circles", "documents": ["words", {"image": uri}]}, 400, "documents[1]"
    if family == "search":
        return {"image": uri}, 400, "image"
    return None  # text-only shapes


def _deep_field(family: str) -> Case:
    field = TEXT_FIELD[family][0]
    return (json.dumps(GOOD[family])[:-1] + f', "{field}x": ' + "[" * DEEP + "]" * DEEP + "}").encode(), 400, None


KINDS: dict[str, Builder] = {
    "not JSON": lambda f: (b"{not json", 400, None),
    "empty body": lambda f: (b"", 400, None),
    "invalid UTF-8": lambda f: (b'{"input": "\xff\xfe"}', 400, None),
    "an integer of 5,000 digits": lambda f: (b'{"top_k": ' + b"9" * 5000 + b"}", 400, None),
    "not an object (array)": lambda f: (b"[1, 2]", 422, None),
    "null": lambda f: (b"null", 422, None),
    f"nested {DEEP:,} deep": lambda f: (b"[" * DEEP + b"]" * DEEP, 400, None),
    f"nested {DEEP:,} deep in a field": _deep_field,
    f"nested {MAX_JSON_DEPTH + 1} deep (under Python's recursion limit)":
        lambda f: (b'{"x": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}", 400, None),
    "NaN literal": lambda f: _number_at(f, "NaN"),
    "Infinity literal": lambda f: _number_at(f, "-Infinity"),
    "1e400 (overflows to infinity)": lambda f: _number_at(f, "1e400"),
    "lone surrogate in a text": lambda f: _text_at(f, '"x\\ud800y"'),
    "lone surrogate in a key": lambda f: (json.dumps(GOOD[f])[:-1].encode() + b', "\\udc00": 1}', 400, None),
    "unknown field": lambda f: (_with(f, tpo_k=3), 422, "tpo_k"),
    "wrong type": lambda f: (_with(f, **{TEXT_FIELD[f][0]: 7}), 422, TEXT_FIELD[f][0]),
    "text list item not a string": lambda f: None if TEXT_FIELD[f][1] is None else
        (_with(f, **{TEXT_FIELD[f][0]: ["ok", {"deep": [1]}]}), 422 if f != "rerank" else 400, f"{TEXT_FIELD[f][0]}[1]"),
    "no items": lambda f: None if TEXT_FIELD[f][1] is None else (_with(f, **{TEXT_FIELD[f][0]: []}), 400, None),
    "too many items": lambda f: None if TEXT_FIELD[f][1] is None else
        (_with(f, **{TEXT_FIELD[f][0]: ["x"] * 2049}), 413, None),
    "2**64 as a count": lambda f: {
        "embeddings": (_with(f, dimensions=HUGE), 400, "dimensions"),
        "tei_embed": (_with(f, dimensions=HUGE), 400, "dimensions"),
        "rerank": (_with(f, top_n=HUGE), 400, "top_n"),
        "tei_rerank": None,
        "search": (_with(f, top_k=HUGE), 400, "top_k"),
    }[f],
    "negative count": lambda f: {
        "embeddings": (_with(f, dimensions=-1), 422, "dimensions"),
        "tei_embed": (_with(f, dimensions=-1), 422, "dimensions"),
        "rerank": (_with(f, top_n=-1), 422, "top_n"),
        "tei_rerank": None,
        "search": (_with(f, top_k=-1), 422, "top_k"),
    }[f],
    "bad base64 data: URI": lambda f: _media(f, BAD_BASE64),
    "data: URI without base64": lambda f: _media(f, NOT_BASE64),
    "base64 of something not an image": lambda f: _media(f, NOT_AN_IMAGE),
    "empty data: URI": lambda f: _media(f, EMPTY_DATA),
    "a server path as media": lambda f: _media(f, "/etc/passwd"),
    "bad base64 rerank query": lambda f: ({"query": {"image": BAD_BASE64}, "documents": ["x"]}, 400, "query")
        if f == "rerank" else None,
    "rrf_k 2**64": lambda f: (_with(f, rrf_k=HUGE), 422, "rrf_k") if f == "search" else None,
    "rrf_k over MAX_RRF_K": lambda f: (_with(f, rrf_k=10_001), 422, "rrf_k") if f == "search" else None,
    "negative rrf weight": lambda f: (_with(f, rrf_weights={"text": -1.0}), 422, "rrf_weights.text")
        if f == "search" else None,
    "mmr out of range": lambda f: (_with(f, mmr=1.5), 422, "mmr") if f == "search" else None,
}


def _cases() -> list[tuple[str, str, str]]:
    return [(kind, family, route) for kind in KINDS for family, routes in ROUTES.items() for route in routes
            if KINDS[kind](family) is not None and not (family == "tei_rerank" and route == "/v1/rerank")]


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
def test_each_malformed_body_is_a_4xx_naming_what_is_wrong(served, kind: str, family: str, route: str) -> None:  # type: ignore[no-untyped-def]
    body, status, param = KINDS[kind](family)  # type: ignore[misc]
    response = _post(served.base, route, body, served.headers)
    assert response.status_code == status, (kind, route, response.text[:300])
    error = _strict_json(response.text)["error"]
    assert error["param"] == param, (kind, route, error)
    assert error["message"] and "Traceback" not in error["message"]
    if param is not None:
        assert param in error["message"]


def test_the_server_serves_every_route_after_the_corpus(served) -> None:  # type: ignore[no-untyped-def]
    for kind, family, route in _cases()[::7]:  # a sample, then every good request
        _post(served.base, route, KINDS[kind](family)[0], served.headers)  # type: ignore[index]
    assert httpx.get(served.base + "/health").status_code == 200
    for family, routes in ROUTES.items():
        for route in routes[:1]:
            response = _post(served.base, route, GOOD[family], served.headers)
            assert response.status_code == 200, (route, response.text[:300])
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
