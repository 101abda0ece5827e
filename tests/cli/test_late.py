"""``mmst`` with a late-interaction model (the tiny ColQwen2 checkpoint directory): index a mixed
folder with PDF pages, then search it; a dense search reports each result's exact MaxSim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llama_index_mm_st.multivector import maxsim
from tests.cli.conftest import RARE_TEXT


def _search(run_cli, store: Path, *args: str) -> list[dict]:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("search", *args, "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture()
def late_index(run_cli, corpus: Path, tmp_path: Path, tiny_colqwen2_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    store = tmp_path / "index"
    code, out, err = run_cli("index", str(corpus), "--store", str(store), "--model", str(tiny_colqwen2_dir),
                             "--no-progress")
    assert code == 0, err
    assert "broken.jpg" in err
    # PDF pages go straight in: the text page is text+image (its words feed BM25, its render the model).
    assert "in the index: 2 text, 4 image, 1 text+image" in out
    return store


def test_dense_search_reports_exact_maxsim(run_cli, late_index: Path, tiny_colqwen2_dir: Path) -> None:
    from llama_index_mm_st.cli.models import load_embedding, resolve_model
    from llama_index_mm_st.store import MultimodalQdrantStore

    query = "quarterly revenue by region"
    results = _search(run_cli, late_index, query, "--mode", "dense", "--top-k", "7")
    assert len(results) == 7 and {r["score_kind"] for r in results} == {"maxsim"}
    # The same numbers from outside: the query's token vectors (the model loaded as the CLI loads it)
    # against the multivectors the store holds, scored with numpy.
    embedding = load_embedding(resolve_model(str(tiny_colqwen2_dir)))
    tokens = embedding.get_query_embedding(query).multivector
    with MultimodalQdrantStore("mmst", path=str(late_index)) as store:
        assert store.schema is not None and store.schema.late_interaction
        stored = {p.payload and json.loads(p.payload["_node_content"])["id_"]: np.asarray(p.multivector)
                  for batch in store.export_points(100) for p in batch}
    expected = sorted((maxsim(tokens, matrix) for matrix in stored.values()), reverse=True)
    np.testing.assert_allclose([r["score"] for r in results], expected, rtol=1e-4, atol=1e-4)
    for row in results:
        assert row["score"] == pytest.approx(maxsim(tokens, stored[row["node_id"]]), rel=1e-4, abs=1e-4)

    code, out, _ = run_cli("search", query, "--mode", "dense", "--store", str(late_index), "--top-k", "2")
    assert code == 0 and "MaxSim" in out and "exact MaxSim" in out


def test_hybrid_and_sparse_find_page_text_and_rare_words(run_cli, late_index: Path) -> None:
    hybrid = _search(run_cli, late_index, RARE_TEXT)
    assert {r["score_kind"] for r in hybrid} == {"rrf"}
    assert hybrid[0]["source"].endswith("notes.txt")  # BM25 and MaxSim agree on exact words here
    sparse = _search(run_cli, late_index, "quarterly revenue", "--mode", "sparse")
    assert sparse[0]["source"].endswith("report.pdf") and sparse[0]["page"] == 1
    code, out, _ = run_cli("info", "--store", str(late_index))
    assert code == 0 and "late interaction" in out


def test_a_clip_model_cannot_write_into_a_late_index(run_cli, late_index: Path, corpus: Path,
                                                     tiny_clip_dir: Path) -> None:
    code, _, err = run_cli("index", str(corpus), "--store", str(late_index), "--model", str(tiny_clip_dir),
                           "--no-progress")
    assert code == 1 and err.count("\n") == 1 and "model" in err


def test_known_colpali_engine_ids_resolve_to_their_transformers_checkpoints() -> None:
    from llama_index_mm_st.cli.models import model_name

    assert model_name("vidore/colqwen2-v1.0") == "vidore/colqwen2-v1.0-hf"
    assert model_name("vidore/colpali-v1.3") == "vidore/colpali-v1.3-hf"
    assert model_name("openai/clip-vit-base-patch32") == "openai/clip-vit-base-patch32"
