"""Components pickle their configuration, not their models, so process pools and Ray can ship them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import ImageNode, TextNode

from llama_index_mm_st import MultimodalEmbedding, MultimodalReranker


def test_embedding_round_trip_reloads_the_model_and_keeps_the_configuration(tiny_clip_dir):
    embedding = MultimodalEmbedding(str(tiny_clip_dir), batch_size=3, precision="fp32", embed_batch_size=17)
    payload = pickle.dumps(embedding)
    assert len(payload) < 10_000  # the configuration, not the weights
    copy = pickle.loads(payload)
    assert copy.model is not embedding.model
    assert (copy.batch_size, copy.embed_batch_size, copy.precision) == (3, 17, "fp32")
    texts = ["a red circle", "QX-7731 valve"]
    assert np.allclose(copy.get_text_embedding_batch(texts), embedding.get_text_embedding_batch(texts), atol=1e-6)


def test_embedding_from_a_model_object_refuses_to_pickle_and_says_what_to_do(tiny_clip_dir):
    from sentence_transformers import SentenceTransformer

    embedding = MultimodalEmbedding(model=SentenceTransformer(str(tiny_clip_dir)))
    with pytest.raises(TypeError, match=r"model\.save\(DIR\)"):
        pickle.dumps(embedding)


def test_reranker_round_trip_and_refusal(tiny_bert_cross_encoder_dir):
    reranker = MultimodalReranker(str(tiny_bert_cross_encoder_dir), top_n=2, precision="fp32")
    copy = pickle.loads(pickle.dumps(reranker))
    assert (copy.top_n, copy.model_name, copy.precision) == (2, reranker.model_name, "fp32")
    assert copy.scorers[0] is not reranker.scorers[0]
    from sentence_transformers import CrossEncoder

    with pytest.raises(TypeError, match="model ids or saved"):
        pickle.dumps(MultimodalReranker(CrossEncoder(str(tiny_bert_cross_encoder_dir))))


def test_ingestion_pipeline_with_two_worker_processes(tiny_clip_dir, image_files):
    """IngestionPipeline(num_workers=2) pickles the transformations into a spawn pool."""
    def nodes():  # type: ignore[no-untyped-def]
        texts = [TextNode(id_=f"t{i}", text=f"note {i} about circles and squares") for i in range(6)]
        images = [ImageNode(id_=f"i{n}", image_path=str(image_files[n])) for n in ("jpeg", "png", "bmp")]
        return texts + images

    embedding = MultimodalEmbedding(str(tiny_clip_dir), precision="fp32")
    expected = {node.node_id: node.embedding for node in embedding(nodes())}
    produced = IngestionPipeline(transformations=[embedding]).run(nodes=nodes(), num_workers=2)
    assert sorted(node.node_id for node in produced) == sorted(expected)
    for node in produced:
        assert np.allclose(node.embedding, expected[node.node_id], atol=1e-5), node.node_id
