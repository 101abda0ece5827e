"""The Ray path against the in-process ``mmst index`` path, on one shared local Ray instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore
from tests.fixtures.interrupt import interrupt_add_at
from tests.fixtures.stamps import without_stamp

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
        assert without_stamp(their_payload) == without_stamp(payload), point_id  # written at other times
        assert set(their_vectors) == set(vectors), point_id
        for name, vector in vectors.items():
            if name == "bm25":
                assert (their_vectors[name].indices, their_vectors[name].values) == (vector.indices, vector.values)
            else:
                assert np.allclose(their_vectors[name], vector, atol=1e-5), (point_id, name)


@pytest.fixture(scope="module")
def embedding(tiny_clip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_clip_dir), precision="fp32")


def _cli_index(corpus: Path, store: Path, model: Path, *extra: str) -> int:
    from llama_index_mm_st.cli import main

    return main(["index", str(corpus), "--store", str(store), "--model", str(model), "--no-progress", *extra])


def _stored(store: Path) -> dict:
    with MultimodalQdrantStore("mmst", path=str(store)) as opened:
        return points(opened)


@pytest.mark.parametrize("model", ["clip", "clap", "qwen3_vl"])
def test_ray_and_in_process_index_give_the_same_store_and_the_same_summary(
        model, ray_instance, mixed_corpus, tiny_clip_dir, tiny_clap_dir, request, tmp_path, capsys):
    """One mixed folder (text, images, a PDF, audio, video, a corrupt file of each kind, an ignored
    type) through ``mmst index`` and ``mmst index --ray``: the same ids, payloads and vectors, and the
    same summary lines, with an image-only model (videos as frames, audio not readable) and with a
    text+audio model (images, PDFs and videos not readable), and with a VLM embedder that reads text,
    images and whole videos (Qwen3-VL, in fp32: its batches may differ in size between the runners)."""
    model_dir = {"clip": tiny_clip_dir, "clap": tiny_clap_dir}.get(model) or request.getfixturevalue(
        "tiny_qwen3_vl_embedder_dir")
    extra = ("--precision", "fp32") if model == "qwen3_vl" else ()
    capsys.readouterr()  # what building a fixture printed
    assert _cli_index(mixed_corpus, tmp_path / "plain", model_dir, *extra) == 0
    plain = capsys.readouterr()
    assert _cli_index(mixed_corpus, tmp_path / "ray", model_dir, "--ray", *extra) == 0
    ray = capsys.readouterr()
    assert ray.out == plain.out and ray.err == plain.err
    reference = _stored(tmp_path / "plain")
    same_points(_stored(tmp_path / "ray"), reference)
    for corrupt in ("broken.jpg", "broken.pdf", "broken.wav", "broken.mp4"):
        assert corrupt in plain.err
    assert "ignored (type not indexed): 1 .docx" in plain.out
    if model == "clip":
        assert "videos as frames" in plain.out and "1 file of audio" in plain.out
        assert any(payload.get("frame_time_s") is not None for _, payload in reference.values())
    elif model == "qwen3_vl":  # the video goes in whole, as one video point; audio is what it can't read
        assert "1 video" in plain.out.splitlines()[0] and "1 file of audio" in plain.out
        assert {payload["modality"] for _, payload in reference.values()} == {"text", "image", "text+image", "video"}
        assert all(payload.get("frame_time_s") is None for _, payload in reference.values())
    else:
        assert "of image" in plain.out and "of video" in plain.out and "audio" not in plain.out.split("\n")[-2]
        assert {payload["modality"] for _, payload in reference.values()} == {"text", "audio"}


def test_cli_ray_killed_midway_resumes_to_the_reference_then_replaces_a_changed_file(
        ray_instance, mixed_corpus, tiny_clip_dir, tmp_path, monkeypatch, capsys):
    """``mmst index --ray`` interrupted at its second write, then run again: exactly the in-process
    reference points; then a changed file is replaced (once: "replaced", not also "added")."""
    corpus = tmp_path / "corpus"
    shutil.copytree(mixed_corpus, corpus)
    assert _cli_index(corpus, tmp_path / "reference", tiny_clip_dir) == 0
    reference = _stored(tmp_path / "reference")
    capsys.readouterr()
    from llama_index_mm_st.distributed import RayOptions, ray_index

    store = tmp_path / "index"
    restore_add = interrupt_add_at(monkeypatch, 2)
    with MultimodalQdrantStore("mmst", path=str(store)) as opened, pytest.raises(KeyboardInterrupt):
        ray_index([str(corpus)], opened, MultimodalEmbedding(str(tiny_clip_dir)), RayOptions(files_per_task=2, files_per_block=2, rows_per_actor_call=4),
                  model_name=str(tiny_clip_dir))
    restore_add()
    assert 0 < len(_stored(store)) < len(reference)

    assert _cli_index(corpus, store, tiny_clip_dir, "--ray") == 0
    captured = capsys.readouterr()
    assert "unchanged (already indexed): 0 files" not in captured.out and "broken.jpg" in captured.err
    same_points(_stored(store), reference)

    (corpus / "notes.txt").write_text("Completely new words about a zebra crossing.\n")
    assert _cli_index(corpus, store, tiny_clip_dir, "--ray") == 0
    out = capsys.readouterr().out
    assert "replaced (changed): 1 file: notes.txt" in out and "added: nothing new" in out
    with MultimodalQdrantStore("mmst", path=str(store)) as opened:
        assert sorted(points(opened)) == sorted(reference)
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
    assert _cli_index(corpus, store, tiny_colqwen2_dir, "--ray") == 0
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
