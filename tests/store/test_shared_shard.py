"""Two store objects on one Edge folder in one process share the open shard; another process is still
refused. LlamaIndex's own ``test_simple_pickle`` (an index pickled and unpickled beside the original,
in the same process) is the case that needs it."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from llama_index.core import MockEmbedding, StorageContext, VectorStoreIndex
from llama_index.core.schema import ImageNode, QueryBundle, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_mm_st.store import MultimodalQdrantStore
from tests.store.conftest import DIM, unit
from tests.store.test_llamaindex_contract import document_nodes

REPO = Path(__file__).resolve().parents[2]

OPENER = textwrap.dedent(
    """
    import sys
    from llama_index_mm_st.errors import StoreLockedError
    from llama_index_mm_st.store import MultimodalQdrantStore
    try:
        MultimodalQdrantStore(path=sys.argv[1]).close()
    except StoreLockedError as exc:
        print("refused:", exc)
    else:
        print("opened")
    """
)


def other_process_opens(path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", OPENER, str(path)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_index_unpickled_beside_its_original_works_and_another_process_is_refused(tmp_path: Path) -> None:
    """LlamaIndex's ``test_simple_pickle`` on an Edge store: the copy opens the folder the original
    holds, both answer alike, and the folder's lock goes only when the last of them closes."""
    store = MultimodalQdrantStore(path=str(tmp_path / "store"))
    index = VectorStoreIndex(document_nodes(), storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=MockEmbedding(embed_dim=2))
    bundle = QueryBundle(query_str="x", embedding=[1.0, 1.0])
    copy = pickle.loads(pickle.dumps(index))
    found = copy.as_retriever(similarity_top_k=2).retrieve(bundle)
    expected = index.as_retriever(similarity_top_k=2).retrieve(bundle)
    assert [n.node.node_id for n in found] == [n.node.node_id for n in expected] and len(found) == 2
    assert copy.vector_store is not store and copy.vector_store.count() == store.count() == 4
    assert other_process_opens(tmp_path / "store").startswith("refused: the store at")
    store.close()
    assert copy.vector_store.count() == 4  # the original's close leaves the copy's shard open
    assert other_process_opens(tmp_path / "store").startswith("refused:")
    copy.vector_store.close()
    assert other_process_opens(tmp_path / "store") == "opened"


def test_what_one_object_writes_the_other_finds(tmp_path: Path, rng: np.random.Generator) -> None:
    """The second object's image point is searched by the first one's query: which dense vectors hold
    points is known per open folder, not per store object (a stale answer would skip the image list)."""
    first = MultimodalQdrantStore(path=str(tmp_path))
    first.add([TextNode(id_="t", text="words", embedding=unit(rng.normal(size=DIM)))])
    first.query(VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM))))  # learns what is held: text only
    second = pickle.loads(pickle.dumps(first))
    image = unit(rng.normal(size=DIM))
    second.add([ImageNode(id_="i", image_path="/data/cat.jpg", embedding=image)])
    found = first.query(VectorStoreQuery(query_embedding=image, similarity_top_k=1), query_modality="image")
    assert found.ids == ["i"]
    second.delete_nodes(["t"])
    assert first.count() == 1 and first.get_nodes(["i"])[0].node_id == "i"
    first.close()
    second.close()


def test_a_collection_made_by_the_other_object_is_taken_up(tmp_path: Path, rng: np.random.Generator) -> None:
    """Both objects open the folder before it has a collection; the second makes it, the first adds
    to it instead of trying to make it again, and both see every point."""
    first = MultimodalQdrantStore(path=str(tmp_path))
    second = MultimodalQdrantStore(path=str(tmp_path))
    assert first.schema is None and second.schema is None
    second.add([TextNode(id_="a", text="alpha", embedding=unit(rng.normal(size=DIM)))])
    first.add([TextNode(id_="b", text="beta", embedding=unit(rng.normal(size=DIM)))])
    assert first.schema == second.schema and first.schema.dim == DIM
    assert sorted(n.node_id for n in second.get_nodes()) == ["a", "b"]
    second.close()
    first.close()
    with MultimodalQdrantStore(path=str(tmp_path)) as reopened:
        assert reopened.count() == 2


def test_a_closed_object_answers_no_more_while_the_other_goes_on(tmp_path: Path, rng: np.random.Generator) -> None:
    first = MultimodalQdrantStore(path=str(tmp_path), dim=DIM)
    second = MultimodalQdrantStore(path=str(tmp_path))
    first.add([TextNode(id_="a", text="alpha", embedding=unit(rng.normal(size=DIM)))])
    first.close()
    assert first.client is None and first.count() == 0  # as any closed store: no engine behind it
    assert second.count() == 1 and second.client is not None
    second.close()
