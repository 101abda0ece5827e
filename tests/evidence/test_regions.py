"""Regions of images for single-vector models: a query image pasted into one part of a larger one is
found (IoU >= 0.5), by CLIP and by SigLIP, through the crop search and through ``find_evidence``."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle

from llama_index_mm_st.evidence import CropSettings, EvidenceQuery, Region, find_evidence
from llama_index_mm_st.evidence.boxes import iou
from llama_index_mm_st.evidence.crops import cosine, search_regions
from llama_index_mm_st.inputs import read_query
from tests.fixtures.evidence import pasted

PLACEMENTS = [  # (canvas, query size, where): corners, middle, off-grid, small and large targets
    ((240, 180), (80, 60), (150, 100)),
    ((300, 200), (120, 90), (17, 93)),
    ((200, 260), (60, 90), (121, 30)),
    ((320, 240), (48, 40), (200, 150)),
    ((256, 256), (150, 140), (53, 61)),
]


def _run(search, embedding):
    crops = next(search)
    try:
        while True:
            crops = search.send(np.asarray(embedding.embed(crops, "image").embeddings))
    except StopIteration as done:
        return done.value


@pytest.mark.parametrize("model", ["clip", "siglip"])
@pytest.mark.parametrize("seed, placement", list(enumerate(PLACEMENTS)))
def test_a_pasted_query_image_is_found(request, model, seed, placement):
    embedding = request.getfixturevalue(model)
    image, query, target = pasted(seed, *placement)
    vector = np.asarray(embedding.embed([query], "image", role="query").embeddings[0])
    regions = _run(search_regions(image, vector, query), embedding)
    assert iou(regions[0][0], target) >= 0.5
    whole = cosine(np.asarray(embedding.embed([image], "image").embeddings), vector)[0]
    assert regions[0][1] > whole  # the model scores the query's own pixels above the whole picture


def test_without_the_example_the_model_alone_finds_a_window_aligned_target(clip):
    """The path a text query takes (no pixels to match): coarse windows and refinement, model scores only."""
    image, query, target = pasted(7, (200, 200), (100, 100), (100, 0))
    vector = np.asarray(clip.embed([query], "image", role="query").embeddings[0])
    regions = _run(search_regions(image, vector, None, CropSettings(refine_rounds=1)), clip)
    assert iou(regions[0][0], target) >= 0.5
    assert all(score <= regions[0][1] for _, score in regions)


def test_find_evidence_on_image_hits(clip, tmp_path):
    image, query, target = pasted(3, (240, 180), (80, 60), (30, 100))
    image.save(tmp_path / "scene.png")
    query.save(tmp_path / "query.png")
    other, _, _ = pasted(4, (160, 160), (40, 40), (0, 0))
    other.save(tmp_path / "other.png")
    hits = [NodeWithScore(node=ImageNode(image_path=str(tmp_path / name)), score=1.0) for name in ("scene.png", "other.png")]
    found = find_evidence(hits, clip, EvidenceQuery(read_query(QueryBundle(query_str="", image_path=str(tmp_path / "query.png")))))
    assert len(found) == 2
    regions = [item for item in found[0] if isinstance(item, Region)]
    assert regions and iou(regions[0].box, target) >= 0.5 and regions[0].page is None
    assert all(isinstance(item, Region) for item in found[1])  # the other image: regions, never nothing else


def test_the_stores_vector_stands_for_the_whole_image(clip, tmp_path):
    """With the store the hits came from, each image's whole-image vector is read, not embedded again: one
    crop fewer per hit, the same regions."""
    from llama_index_mm_st import MultimodalQdrantStore, build_pipeline
    from llama_index_mm_st.evidence import embed_rows, evidence_steps, run_steps

    for seed in (1, 2):
        pasted(seed, (200, 160), (60, 60), (20, 90))[0].save(tmp_path / f"scene{seed}.png")
    store = MultimodalQdrantStore("whole_from_store")
    store.add(clip([ImageNode(image_path=str(tmp_path / f"scene{seed}.png")) for seed in (1, 2)]))
    hits = build_pipeline(store, clip, top_k=2, mode="dense").retrieve("a small square")
    query = EvidenceQuery(read_query(QueryBundle(query_str="a small square")))
    counted = []

    def run(call):
        counted.append(len(call.inputs) if call.role == "document" else 0)
        return embed_rows(clip, call)

    alone = run_steps(evidence_steps(hits, clip, query), run)
    without = sum(counted)
    counted.clear()
    with_store = run_steps(evidence_steps(hits, clip, query, store=store), run)
    store.close()
    assert sum(counted) == without - len(hits)
    for a, b in zip(alone, with_store):
        assert [p.box for p in a] == [p.box for p in b]
        assert [p.score for p in a] == pytest.approx([p.score for p in b], abs=1e-4)
