"""A real ``mmst serve`` process holding its index: killed while it writes (the index after a restart is
exact, or exact once the documents are sent again), fed by ``mmst index --server``, and used as a
LlamaIndex vector store by a client process that cannot import torch, transformers or Qdrant."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.serve.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "live-key-5d2e"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


@contextmanager
def mmst_serve(store: Path, model: Path, *flags: str, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``mmst serve --store STORE --create`` on a free port of 127.0.0.1, ready; stopped with SIGTERM after."""
    port = free_port()
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "llama_index_mm_st.cli", "serve", "--store", str(store),
                                    "--create", "--model", str(model), "--port", str(port), "--api-key", KEY,
                                    "--log-level", "warning", *flags], stdout=out, stderr=out, env=env())
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"mmst serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(base + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"mmst serve did not get ready: {log.read_text()[-2000:]}")
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)


def essay(topic: str, sentences: int) -> str:
    """A text long enough to be split into several chunks (512-token nodes)."""
    return " ".join(f"The {topic} report, part {i}, notes that the {topic} crates were counted and sealed again."
                    for i in range(sentences))


def documents(version: int) -> list[dict]:
    # Version 2 of every document is shorter: fewer chunks, so a replacement must also delete.
    return [{"id": f"doc-{n}", "text": essay(f"topic{n} v{version}", 90 if version == 1 else 30)} for n in range(6)]


def listed(base: str) -> dict[str, dict]:
    return {entry["id"]: entry for entry in
            httpx.get(base + "/v1/documents?limit=1000", headers=HEADERS, timeout=60).json()["data"]}


def test_a_server_killed_while_writing_restarts_exact_or_resumable(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from llama_index_mm_st.ingest.resume import resume_action
    from llama_index.core.schema import Document

    store, log = tmp_path / "index", tmp_path / "serve.log"
    with mmst_serve(store, tiny_clip_dir, log=log) as (base, _):
        first = httpx.post(base + "/v1/documents", headers=HEADERS, json={"documents": documents(1)}, timeout=300)
        assert [d["status"] for d in first.json()["documents"]] == ["added"] * 6
        long_points = {d["id"]: d["points"] for d in first.json()["documents"]}
    assert min(long_points.values()) >= 2  # several chunks each

    acknowledged: list[str] = []
    with mmst_serve(store, tiny_clip_dir, log=log) as (base, process):
        def send() -> None:  # version 2, one document per request, until the server dies
            for document in documents(2):
                try:
                    answer = httpx.post(base + "/v1/documents", headers=HEADERS, json={"documents": [document]},
                                        timeout=120)
                except httpx.HTTPError:
                    return
                if answer.status_code == 200 and answer.json()["documents"][0]["status"] == "replaced":
                    acknowledged.append(document["id"])

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 120
        while len(acknowledged) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # mid-stream: the third document's write may be under way
        process.wait(30)
        sender.join(60)
    assert len(acknowledged) >= 2

    with mmst_serve(store, tiny_clip_dir, log=log) as (base, _):
        after_kill = listed(base)
        assert set(after_kill) == {f"doc-{n}" for n in range(6)}  # nothing lost, nothing doubled
        fresh = chunk_counts_of_fresh(base)
        for document_id in acknowledged:  # what the server acknowledged is there, whole, as sent
            assert after_kill[document_id]["points"] == fresh[document_id]
        resent = httpx.post(base + "/v1/documents", headers=HEADERS, json={"documents": documents(2)}, timeout=300)
        statuses = {d["id"]: d["status"] for d in resent.json()["documents"]}
        assert all(statuses[d] == "unchanged" for d in acknowledged), statuses
        final = {d: e for d, e in listed(base).items() if d.startswith("doc-")}
        assert {d: e["points"] for d, e in final.items()} == fresh  # exact: as a fresh write of version 2
        hits = httpx.post(base + "/v1/search", headers=HEADERS, timeout=60,
                          json={"query": "topic3 v1", "mode": "sparse", "top_k": 50}).json()["results"]
        assert not any("v1 report" in hit["text"] for hit in hits)  # no chunk of version 1 is left

    # The rule that makes it exact: a current version beside leftovers is not "unchanged".
    document = Document(text="x", id_="d", metadata={"sha256": "new"})
    assert resume_action(document, 2, lambda doc, sha: {"new": 2, None: 3}[sha]) == "replace"
    assert resume_action(document, 2, lambda doc, sha: {"new": 2, None: 2}[sha]) == "unchanged"


def chunk_counts_of_fresh(base: str) -> dict[str, int]:
    """Points per document of version 2 as a fresh write makes them: the same texts sent to the same server
    under other ids (``fresh-N`` for ``doc-N``), so nothing of an earlier version can be among them."""
    body = {"documents": [dict(d, id=d["id"].replace("doc-", "fresh-")) for d in documents(2)]}
    written = httpx.post(base + "/v1/documents", headers=HEADERS, json=body, timeout=300).json()["documents"]
    assert all(d["status"] == "added" for d in written), written
    return {d["id"].replace("fresh-", "doc-"): d["points"] for d in written}


# ---------------------------------------------------------------- one server for the client checks


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("live_server")
    (root / "shared").mkdir()
    with mmst_serve(root / "index", tiny_clip_dir, "--index-root", str(root / "shared"), log=root / "serve.log") as (base, _):
        yield base, root


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llama_index_mm_st.cli", *argv], capture_output=True, text=True,
                          env=env(), timeout=600)


def test_mmst_index_server_sends_a_folder_as_mmst_index_reads_it(server: Any, tmp_path: Path, tiny_clip_dir: Path,
                                                                 image_files: dict[str, Path],
                                                                 broken_images: dict[str, Path]) -> None:
    from tests.cli.conftest import make_corpus

    base, root = server
    corpus = make_corpus(tmp_path / "corpus", image_files, broken_images)
    (corpus / "photos" / "sample_png.txt").write_text("a pelican on the pier")  # a caption sidecar
    sent = run_cli("index", str(corpus), "--server", base, "--api-key", KEY, "--no-progress")
    assert sent.returncode == 0, sent.stderr
    assert "added: " in sent.stdout and "broken.jpg" in sent.stderr and "ignored (type not indexed): 2 .docx, 1 .json" in sent.stdout
    again = run_cli("index", str(corpus), "--server", base, "--api-key", KEY, "--no-progress", "--strict")
    assert again.returncode == 3 and "unchanged (already indexed): 6 files" in again.stdout  # --strict: broken.jpg

    local = run_cli("index", str(corpus), "--store", str(tmp_path / "local"), "--model", str(tiny_clip_dir),
                    "--no-progress")
    assert local.returncode == 0, local.stderr
    entries = {e["id"]: e for e in httpx.get(base + "/v1/documents?limit=1000", headers=HEADERS, timeout=60).json()["data"]}
    mine = {str(corpus / name) for name in ("notes.txt", "guide.md", "report.pdf", "photos/sample_png.png",
                                             "photos/sample_jpeg.jpg", "photos/sample_bmp.bmp")}
    assert mine <= set(entries) and entries[str(corpus / "report.pdf")]["points"] == 2
    from llama_index_mm_st import MultimodalQdrantStore

    with MultimodalQdrantStore("mmst", path=str(tmp_path / "local")) as store:
        assert sum(entries[i]["points"] for i in mine) == store.count()  # as many points as mmst index makes
    hit = httpx.post(base + "/v1/search", headers=HEADERS, timeout=60,
                     json={"query": "pelican pier", "mode": "sparse", "top_k": 1}).json()["results"][0]
    assert hit["metadata"]["mmst_doc_id"] == str(corpus / "photos" / "sample_png.png")

    (corpus / "guide.md").unlink()  # the index follows the files, as mmst index does
    pruned = run_cli("index", str(corpus), "--server", base, "--api-key", KEY, "--no-progress")
    assert pruned.returncode == 0 and "removed: 1 file no longer there" in pruned.stdout, pruned.stdout
    left = {e["id"] for e in httpx.get(base + "/v1/documents?limit=1000", headers=HEADERS, timeout=60).json()["data"]}
    assert str(corpus / "guide.md") not in left and str(corpus / "notes.txt") in left

    held = run_cli("index", str(corpus), "--store", str(root / "index"), "--model", str(tiny_clip_dir))
    assert held.returncode == 1 and f"--server {base}" in held.stderr and "(mmst serve --store" in held.stderr
    assert "--api-key ***" in held.stderr and KEY not in held.stderr


BLOCKED_CLIENT = textwrap.dedent("""
    import importlib.abc, json, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("torch", "transformers", "sentence_transformers", "qdrant_client", "qdrant_edge"):
                raise ImportError(f"{name} is not installed on this app server")

    sys.meta_path.insert(0, Refuse())
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
    from llama_index_mm_st import RemoteMultimodalEmbedding, RemoteMultimodalStore

    base, key = sys.argv[1], sys.argv[2]
    store = RemoteMultimodalStore(base, api_key=key)
    index = VectorStoreIndex.from_vector_store(store, embed_model=RemoteMultimodalEmbedding(base, api_key=key))
    index.insert(Document(text="The lighthouse keeper logs the fog horn at dawn.", id_="keeper-log",
                          metadata={"shelf": "b"}))
    fillers = ["Crates of pears arrived late at the harbour.", "The ferry timetable changes in October.",
               "Quarterly revenue rose on bicycle sales.", "A heron nests by the old mill pond.",
               "Winter tyres are stored in bay seven."]
    for n, text in enumerate(fillers):  # enough points for a top 5 whatever else the served index holds
        index.insert(Document(text=text, id_=f"filler-{n}", metadata={"shelf": "c"}))
    found = index.as_retriever(similarity_top_k=3, vector_store_query_mode="sparse").retrieve("lighthouse fog horn")
    dense = index.as_retriever(similarity_top_k=5).retrieve("lighthouse fog horn")
    filtered = index.as_retriever(similarity_top_k=3, filters=MetadataFilters(
        filters=[MetadataFilter(key="shelf", value="b")])).retrieve("anything")
    # The server embeds the query itself when the store says queries are not embedded here.
    lean = RemoteMultimodalStore(base, api_key=key, is_embedding_query=False)
    server_side = VectorStoreIndex.from_vector_store(lean, embed_model=RemoteMultimodalEmbedding(base, api_key=key))
    by_server = server_side.as_retriever(similarity_top_k=5).retrieve("lighthouse fog horn")
    index.delete_ref_doc("keeper-log")
    after = [n.node.ref_doc_id for n in index.as_retriever(similarity_top_k=50).retrieve("lighthouse fog horn")]
    print(json.dumps({"found": [n.node.ref_doc_id for n in found], "filtered": [n.node.ref_doc_id for n in filtered],
                      "dense": [[n.node.node_id, n.score] for n in dense],
                      "by_server": [[n.node.node_id, n.score] for n in by_server], "after": after,
                      "points": store.info()["points"] > 0,
                      "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "qdrant_client"))}))
""")


def test_a_llamaindex_app_without_torch_or_qdrant_uses_the_served_index(server: Any) -> None:
    import json

    base, _ = server
    done = subprocess.run([sys.executable, "-c", BLOCKED_CLIENT, base, KEY], capture_output=True, text=True,
                          env=env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["found"][0] == "keeper-log" and result["filtered"] == ["keeper-log"]
    assert result["by_server"] == result["dense"] and len(result["dense"]) == 5  # the same query vector either way
    assert "keeper-log" not in result["after"] and result["heavy"] == []
