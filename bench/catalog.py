"""The index follows the files: how long listing an index by file (``mmst ls``) and pruning the files gone from
a folder (``mmst index``'s prune) take, against LlamaIndex's own way to drop vanished documents
(``IngestionPipeline(docstore=..., docstore_strategy=UPSERTS_AND_DELETE)`` over the same store), same run.

Documents of ``--points`` points each (random vectors, no model) name files in a folder; ``--gone`` of
them are deleted from disk. Ours: ``ingest.prune(store, [folder])`` (one scan of three payload keys, one
engine delete per 512 documents). Peer: the pipeline rerun with the remaining documents, which finds the
missing ones in its docstore and calls ``store.delete(ref_doc_id)`` once per document (its embedding is
LlamaIndex's ``MockEmbedding``, and it skips the unchanged documents by hash).

    python bench/catalog.py --documents 10000 --points 2 --gone 0.1
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_device_args, header  # noqa: E402

DIM = 64


def _nodes(documents: int, points: int, folder: Path):  # type: ignore[no-untyped-def]
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(documents * points, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    nodes = []
    for n in range(documents):
        path = folder / f"f{n:06d}.txt"
        for i in range(points):
            node = TextNode(id_=f"d{n:06d}#{i}", text=f"words {n} {i}", embedding=vectors[n * points + i].tolist(),
                            metadata={"file_path": str(path), "file_name": path.name})
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"d{n:06d}")
            nodes.append(node)
    return nodes


def ours(work: Path, documents: int, points: int, gone: int) -> dict[str, float]:
    from llama_index_mm_st.ingest import indexed_files, prune
    from llama_index_mm_st.store import MultimodalQdrantStore

    folder = work / "files"
    folder.mkdir()
    for n in range(documents):
        (folder / f"f{n:06d}.txt").write_text("x")
    with MultimodalQdrantStore("mmst", path=str(work / "ours")) as store:
        store.add(_nodes(documents, points, folder))
        store.optimize()
        started = time.perf_counter()
        listed = indexed_files(store)
        ls_s = time.perf_counter() - started
        assert len(listed) == documents
        for n in range(gone):
            (folder / f"f{n:06d}.txt").unlink()
        started = time.perf_counter()
        removed = prune(store, [str(folder)])
        prune_s = time.perf_counter() - started
        assert len(removed) == gone and store.count() == (documents - gone) * points
    return {"ls": ls_s, "prune": prune_s}


def peer(work: Path, documents: int, points: int, gone: int) -> float:
    from llama_index.core import Document
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.storage.docstore import SimpleDocumentStore

    from llama_index_mm_st.store import MultimodalQdrantStore

    texts = [" ".join(f"sentence {i} of document {n}." for i in range(points)) for n in range(documents)]
    docs = [Document(id_=f"d{n:06d}", text=text) for n, text in enumerate(texts)]
    splitter = SentenceSplitter(chunk_size=16, chunk_overlap=0)  # about `points` nodes per document
    with MultimodalQdrantStore("peer", path=str(work / "peer")) as store:
        pipeline = IngestionPipeline(transformations=[splitter, MockEmbedding(embed_dim=DIM)], vector_store=store,
                                     docstore=SimpleDocumentStore(), docstore_strategy=DocstoreStrategy.UPSERTS_AND_DELETE)
        pipeline.run(documents=docs)
        store.optimize()
        before = store.count()
        started = time.perf_counter()
        pipeline.run(documents=docs[gone:])
        elapsed = time.perf_counter() - started
        assert store.count() < before
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=2)
    parser.add_argument("--gone", type=float, default=0.1, help="share of the files deleted from disk")
    add_device_args(parser, precision=False)
    args = parser.parse_args()
    print(header("catalog", args.device, None, note="store-only work; no model"))
    gone = int(args.documents * args.gone)
    work = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    try:
        found = ours(work, args.documents, args.points, gone)
        theirs = peer(work, args.documents, args.points, gone)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    points = args.documents * args.points
    print(f"{args.documents} documents, {points} points, {gone} files gone")
    print(f"mmst ls (indexed_files): {found['ls'] * 1000:.0f} ms ({points / found['ls']:,.0f} points/s)")
    print(f"prune, ours: {found['prune'] * 1000:.0f} ms; LlamaIndex UPSERTS_AND_DELETE rerun: {theirs * 1000:.0f} ms; "
          f"ours at {theirs / found['prune']:.2f}x the peer's speed (ours reads the catalogue from the store itself; "
          "the peer keeps it in an in-memory docstore it must persist and keep in step)")


if __name__ == "__main__":
    main()
