"""The Ray path against the in-process ``mmst index`` path, on one shared local Ray instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from llama_index_mm_st import ImageReader, MultimodalEmbedding, MultimodalQdrantStore
from llama_index_mm_st.cli.collect import collect
from llama_index_mm_st.cli.index_job import run_index
from tests.fixtures.interrupt import interrupt_add_at

from .conftest import RARE_TEXT


def points(store: MultimodalQdrantStore) -> dict[str, tuple[dict, dict]]:
    """Point id -> (named vectors, payload), read through a qdrant-client copy (any backend)."""
    copy = MultimodalQdrantStore("copy", client=QdrantClient(":memory:"))
    store.copy_to(copy)
    records, _ = copy.client.scroll("copy", limit=10_000, with_vectors=True, with_payload=True)
    return {str(r.id): (r.vector, r.payload) for r in records}


def same_points(ours: dict, reference: dict) -> None:
    assert sorted(ours) == sorted(reference)
    for point_id, (vectors, payload) in reference.items():
        their_vectors, their_payload = ours[point_id]
        assert their_payload == payload, point_id
        assert set(their_vectors) == set(vectors), point_id
        for name, vector in vectors.items():
            if name == "bm25":
                assert (their_vectors[name].indices, their_vectors[name].values) == (vector.indices, vector.values)
            else:
                assert np.allclose(their_vectors[name], vector, atol=1e-5), (point_id, name)


@pytest.fixture(scope="module")
def embedding(tiny_clip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_clip_dir), precision="fp32")


@pytest.fixture(scope="module")
def reference(ray_corpus: Path, embedding: MultimodalEmbedding, tmp_path_factory) -> dict:  # type: ignore[no-untyped-def]
    """The in-process job's points (what ``mmst index`` writes), into an Edge store."""
    with MultimodalQdrantStore("mmst", path=str(tmp_path_factory.mktemp("reference") / "store")) as store:
        summary = run_index(collect([str(ray_corpus)], ImageReader()), store, embedding, progress=False)
        assert summary.skipped and sum(summary.added.values()) > 95
        return points(store)


def test_ray_driver_write_equals_the_in_process_job(ray_instance, ray_corpus, embedding, reference, tmp_path):
    """Driver-write into a qdrant-client local-mode store: same ids, payloads and vectors; the
    corrupt file is named and the job goes on."""
    from llama_index_mm_st.distributed import RayOptions, ray_index

    store = MultimodalQdrantStore("mmst", client=QdrantClient(path=str(tmp_path / "local")))
    summary = ray_index([str(ray_corpus)], store, embedding, RayOptions(files_per_task=8, rows_per_actor_call=16))
    assert [item for item, _ in summary.skipped] == [str(ray_corpus / "jpeg" / "broken.jpg")]
    assert "truncated" in summary.skipped[0][1]
    assert sum(summary.added.values()) == len(reference)
    same_points(points(store), reference)
    store.close()


def _cli_index(corpus: Path, store: Path, model: Path, *extra: str) -> int:
    from llama_index_mm_st.cli import main

    return main(["index", str(corpus), "--store", str(store), "--model", str(model), "--no-progress", "--ray", *extra])


def test_cli_ray_killed_midway_then_rerun_ends_with_the_reference_set(
        ray_instance, ray_corpus, tiny_clip_dir, reference, tmp_path, monkeypatch, capsys):
    """``mmst index --ray`` interrupted at its second write, then run again: exactly the reference points."""
    restore_add = interrupt_add_at(monkeypatch, 2)
    store = tmp_path / "index"
    assert _cli_index(ray_corpus, store, tiny_clip_dir) == 130
    assert "interrupted" in capsys.readouterr().err
    restore_add()
    with MultimodalQdrantStore("mmst", path=str(store)) as opened:
        assert 0 < opened.count() < len(reference)

    assert _cli_index(ray_corpus, store, tiny_clip_dir) == 0
    captured = capsys.readouterr()
    assert "unchanged (already indexed): 0 files" not in captured.out and "broken.jpg" in captured.err
    with MultimodalQdrantStore("mmst", path=str(store)) as opened:
        same_points(points(opened), reference)


def test_cli_ray_replaces_a_changed_file(ray_instance, ray_corpus, tiny_clip_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(ray_corpus / "notes.txt", corpus / "notes.txt")
    shutil.copy(ray_corpus / "report.pdf", corpus / "report.pdf")
    store = tmp_path / "index"
    assert _cli_index(corpus, store, tiny_clip_dir) == 0
    with MultimodalQdrantStore("mmst", path=str(store)) as opened:
        before = sorted(points(opened))
    (corpus / "notes.txt").write_text("Completely new words about a zebra crossing.\n")
    assert _cli_index(corpus, store, tiny_clip_dir) == 0
    out = capsys.readouterr().out
    assert "replaced (changed): 1 file: notes.txt" in out and "added: 1 text" in out
    assert "unchanged (already indexed): 1 file" in out  # the PDF, both of its pages
    with MultimodalQdrantStore("mmst", path=str(store)) as opened:
        assert sorted(points(opened)) == before
        texts = [node.text for node in opened.get_nodes() if node.metadata.get("file_name") == "notes.txt"]
    assert len(texts) == 1 and "zebra" in texts[0] and RARE_TEXT not in texts[0]


def test_cli_ray_with_a_late_interaction_model_keeps_the_multivectors(ray_instance, ray_corpus, tiny_colqwen2_dir,
                                                                    tmp_path):
    """Nodes travel from the actors to the driver's Edge store with their multivectors: a dense
    search reports exact MaxSim, as the in-process path does."""
    from llama_index_mm_st.multivector import maxsim

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(ray_corpus / "notes.txt", corpus / "notes.txt")
    shutil.copy(ray_corpus / "report.pdf", corpus / "report.pdf")
    store = tmp_path / "index"
    assert _cli_index(corpus, store, tiny_colqwen2_dir) == 0
    embedding = MultimodalEmbedding(str(tiny_colqwen2_dir))  # as the CLI loads it
    query = embedding.get_query_embedding("quarterly revenue")
    with MultimodalQdrantStore("mmst", path=str(store)) as opened:
        assert opened.schema is not None and opened.schema.late_interaction
        stored = [p.multivector for batch in opened.export_points(100) for p in batch]
        assert stored and all(m is not None for m in stored)
        from llama_index.core.vector_stores.types import VectorStoreQuery

        found = opened.query(VectorStoreQuery(query_embedding=query, similarity_top_k=len(stored)))
    expected = sorted((maxsim(query.multivector, np.asarray(m)) for m in stored), reverse=True)
    np.testing.assert_allclose(found.similarities, expected, rtol=1e-4, atol=1e-4)
