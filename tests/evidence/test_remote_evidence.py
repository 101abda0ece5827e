"""A client-side pipeline over ``RemoteMultimodalEmbedding``: the evidence is the in-process one (crops
and sentences go to the server as lossless data URIs and come back as the same vectors)."""

from __future__ import annotations

import pytest
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle, TextNode

from llama_index_mm_st.evidence import EvidenceQuery, afind_evidence, find_evidence
from llama_index_mm_st.inputs import read_query
from tests.fixtures.evidence import pasted

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

TEXT = ("The committee met on a grey morning. The spare impeller for the quokka pump sits on shelf nine. "
        "Coffee was served in the hall.")


@pytest.fixture(scope="module")
def remote(clip):
    from llama_index_mm_st import RemoteMultimodalEmbedding
    from llama_index_mm_st.serve import Components, ServeSettings, create_app
    from tests.serve.conftest import running_server

    with running_server(create_app(Components(clip, None, None), ServeSettings())) as base:
        yield RemoteMultimodalEmbedding(base)


def _same(a, b):
    assert [[p.kind for p in hit] for hit in a] == [[p.kind for p in hit] for hit in b]
    for hit_a, hit_b in zip(a, b):
        for x, y in zip(hit_a, hit_b):
            assert {k: v for k, v in x.to_dict().items() if k != "score"} == \
                   {k: v for k, v in y.to_dict().items() if k != "score"}
            assert x.score == pytest.approx(y.score, abs=1e-4)


def test_remote_embedding_gives_the_in_process_evidence(remote, clip, tmp_path):
    scene, query, _ = pasted(5, (240, 180), (80, 60), (100, 70))
    scene.save(tmp_path / "scene.png")
    query.save(tmp_path / "query.png")
    hits = [NodeWithScore(node=ImageNode(image_path=str(tmp_path / "scene.png")), score=1.0),
            NodeWithScore(node=TextNode(text=TEXT), score=0.5)]
    by_image = EvidenceQuery(read_query(QueryBundle(query_str="quokka", image_path=str(tmp_path / "query.png"))))
    by_words = EvidenceQuery(read_query(QueryBundle(query_str="where is the quokka impeller")))
    for query in (by_image, by_words):
        _same(find_evidence(hits, remote, query), find_evidence(hits, clip, query))


async def test_async_remote_evidence(remote, clip):
    hits = [NodeWithScore(node=TextNode(text=TEXT), score=0.5)]
    query = EvidenceQuery(read_query(QueryBundle(query_str="quokka impeller")))
    _same(await afind_evidence(hits, remote, query), find_evidence(hits, clip, query))
