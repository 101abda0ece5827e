"""Late interaction: MaxSim taken apart per patch and laid on the model's patch grid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from llama_index_mm_st.evidence.boxes import grid_cell_box
from llama_index_mm_st.evidence.late import PatchLayout, credit_map, late_regions, layout_for, row_credit
from llama_index_mm_st.multivector import maxsim

DIM = 32


def _unit(rng, rows):
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _page(rng, rows, cols, text_tokens=3):
    """A page's multivector: text tokens first (as a prompt's), then one row per patch in raster order."""
    layout = PatchLayout(rows, cols, tuple([()] * text_tokens + [(cell,) for cell in range(rows * cols)]))
    return _unit(rng, text_tokens + rows * cols), layout


def _covers(box, cells, rows, cols):
    for cell in cells:
        x0, y0, x1, y1 = grid_cell_box(cell // cols, cell % cols, rows, cols)
        if not (box[0] <= x0 + 1e-9 and box[1] <= y0 + 1e-9 and box[2] >= x1 - 1e-9 and box[3] >= y1 - 1e-9):
            return False
    return True


def test_credit_sums_to_maxsim():
    rng = np.random.default_rng(0)
    document, query = _unit(rng, 40), _unit(rng, 7)
    assert row_credit(query, document).sum() == pytest.approx(maxsim(query, document), rel=1e-5)


@pytest.mark.parametrize("rows, cols, planted", [(4, 4, [5, 6, 9, 10]), (6, 8, [0, 1, 8]), (3, 5, [14])])
def test_the_region_covers_the_planted_patches(rows, cols, planted):
    rng = np.random.default_rng(rows * cols)
    document, layout = _page(rng, rows, cols)
    # query tokens: the planted patches' own vectors, slightly perturbed
    query = document[[3 + cell for cell in planted]] + 0.01 * rng.standard_normal((len(planted), DIM)).astype(np.float32)
    regions = late_regions(query, document, layout, page=2)
    box, credit = regions[0]
    assert _covers(box, planted, rows, cols)
    area = (box[2] - box[0]) * (box[3] - box[1])
    assert area <= (max(planted) // cols - min(planted) // cols + 1) * cols / (rows * cols) + 1e-9  # no wider than their rows
    assert credit == pytest.approx(sum(row_credit(query, document)[3 + cell] for cell in planted), rel=1e-5)


def test_two_separate_matches_are_two_regions_best_first():
    rng = np.random.default_rng(3)
    document, layout = _page(rng, 5, 5)
    strong = [0, 1]  # top left: two patches, each matched by two query tokens
    weak = [24]      # bottom right: one patch, matched by two tokens
    query = np.concatenate([document[[3 + c for c in strong]]] * 2 + [document[[3 + c for c in weak]]] * 2)
    regions = late_regions(query, document, layout, keep=3)
    assert len(regions) == 2
    assert _covers(regions[0][0], strong, 5, 5) and _covers(regions[1][0], weak, 5, 5)
    assert regions[0][1] > regions[1][1]


def test_a_pooled_row_credits_every_patch_it_holds():
    rng = np.random.default_rng(4)
    # 4x4 grid pooled into 4 rows of 2x2 patches each, after one protected token
    quads = [(0, 1, 4, 5), (2, 3, 6, 7), (8, 9, 12, 13), (10, 11, 14, 15)]
    layout = PatchLayout(4, 4, ((),) + tuple(quads))
    document = _unit(rng, 5)
    query = document[[4]]  # matches the pooled row of the bottom-right quad
    grid = credit_map(row_credit(query, document), layout)
    assert set(np.flatnonzero(grid > 0)) == set(quads[3])
    box, _ = late_regions(query, document, layout)[0]
    assert box == pytest.approx((0.5, 0.5, 1.0, 1.0))


def test_a_layout_that_does_not_fit_the_stored_rows_gives_no_region():
    rng = np.random.default_rng(5)
    document, layout = _page(rng, 4, 4)
    assert late_regions(document[:2], document[:-1], layout) == []


@pytest.mark.parametrize("family, size", [("colpali", (120, 80)), ("colqwen2", (120, 80)), ("colqwen2", (60, 110))])
def test_layout_from_the_models_processor_matches_its_stored_rows(request, family, size):
    embedding = request.getfixturevalue(f"{family}_embedding")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size[::-1], 3), dtype=np.uint8))
    layout = layout_for(embedding.model, image)
    stored = embedding.embed([image], "image").embeddings[0].multivector
    assert layout is not None and layout.tokens == len(stored)
    patches = [cells for cells in layout.cells if cells]
    assert sorted(cell for cells in patches for cell in cells) == list(range(layout.rows * layout.cols))
    if family == "colqwen2":  # a dynamic grid follows the page's shape
        assert (layout.cols > layout.rows) == (size[0] > size[1])


def test_pooled_rows_are_mapped_back_to_their_patches(tiny_colqwen2_dir):
    """A pooled index (token_pool_factor=2): every patch is held by one stored row, and a query token equal
    to a stored row finds a region covering exactly that row's patches."""
    from llama_index_mm_st.embedding import MultimodalEmbedding
    from llama_index_mm_st.evidence.late import pooled_layout, unpooled_tokens

    pooled = MultimodalEmbedding(str(tiny_colqwen2_dir), device="cpu", precision="fp32", token_pool_factor=2)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (84, 112, 3), dtype=np.uint8))
    stored = pooled.embed([image], "image").embeddings[0].multivector
    layout = layout_for(pooled.model, image)
    assert layout.tokens > len(stored)
    mapped = pooled_layout(layout, unpooled_tokens(pooled.model, image), stored)
    assert mapped.tokens == len(stored)
    held = sorted(cell for cells in mapped.cells for cell in cells)
    assert held == list(range(layout.rows * layout.cols))  # each patch held by exactly one row
    row = max(range(len(stored)), key=lambda r: len(mapped.cells[r]))
    box, _ = late_regions(stored[[row]], stored, mapped)[0]
    assert _covers(box, mapped.cells[row], layout.rows, layout.cols)


def test_a_late_interaction_search_returns_regions_from_the_stored_multivectors(colqwen2_embedding, tmp_path):
    """Through the search step: page hits of a late-interaction index get regions laid on their patch grid,
    each scored by the MaxSim credit it holds."""
    from llama_index.core.schema import ImageNode

    from llama_index_mm_st import MultimodalQdrantStore
    from llama_index_mm_st.evidence import Region
    from llama_index_mm_st.search import search

    paths = []
    for i in range(3):
        path = tmp_path / f"page{i}.png"
        Image.fromarray(np.random.default_rng(10 + i).integers(0, 255, (112, 84, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    store = MultimodalQdrantStore("late_evidence", path=str(tmp_path / "index"))
    store.add(colqwen2_embedding([ImageNode(image_path=str(p)) for p in paths]))
    result = search(store, colqwen2_embedding, None, text="revenue by region", mode="dense", top_k=2, evidence=True)
    store.close()
    for hit in result.hits:
        regions = [piece for piece in hit.evidence if isinstance(piece, Region)]
        assert regions and all(piece.score > 0 and piece.page is None for piece in regions)
        assert result.score_kind == "maxsim"
