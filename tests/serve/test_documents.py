"""``/v1/documents``: a served index takes documents (JSON and multipart), replaces and deletes them, lists
them, names each bad one while the rest are written, and keeps answering searches while it writes.
The server is the real app on 127.0.0.1 around the tiny CLIP (``running_server``)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import pytest

from tests.serve.conftest import API_KEY, data_uri, running_server

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@contextmanager
def served_index(serve_models: Any, root: Path, **settings: Any) -> Iterator[tuple[str, Any]]:
    """A fresh, empty index served on 127.0.0.1 (the store is the server's to write)."""
    from llama_index_mm_st import MultimodalQdrantStore
    from llama_index_mm_st.serve import Components, ServeSettings, create_app

    embedding, _ = serve_models
    store = MultimodalQdrantStore("mmst", path=str(root / "index"))
    app = create_app(Components(embedding, None, store), ServeSettings(api_key=API_KEY, warm_up=False, **settings))
    try:
        with running_server(app) as base:
            yield base, store
    finally:
        store.close()


@pytest.fixture(scope="module")
def live(serve_models: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Path]]:
    root = tmp_path_factory.mktemp("live")
    (root / "shared").mkdir()
    with served_index(serve_models, root, index_root=root / "shared") as (base, store):
        yield base, store, root


def post(base: str, documents: list, **kwargs: Any) -> httpx.Response:
    return httpx.post(base + "/v1/documents", headers=HEADERS, timeout=120, json={"documents": documents}, **kwargs)


def listed(base: str) -> dict[str, dict]:
    return {entry["id"]: entry for entry in httpx.get(base + "/v1/documents?limit=1000", headers=HEADERS, timeout=120).json()["data"]}


def search(base: str, query: str, **body: Any) -> list[dict]:
    answer = httpx.post(base + "/v1/search", headers=HEADERS, timeout=120, json={"query": query, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def test_add_then_unchanged_then_replace_then_delete(live: Any, image_files: dict[str, Path]) -> None:
    base, store, root = live
    first = post(base, [{"id": "note-1", "text": "The kiwi orchard ships on Tuesdays."},
                        {"id": "photo-1", "image": data_uri(image_files["png"]), "text": "a red square", "name": "sq.png"}])
    assert first.status_code == 200, first.text
    assert [(d["id"], d["status"], d["points"]) for d in first.json()["documents"]] == [
        ("note-1", "added", 1), ("photo-1", "added", 1)]
    assert search(base, "kiwi orchard Tuesdays", mode="sparse")[0]["text"] == "The kiwi orchard ships on Tuesdays."
    entries = listed(base)
    assert entries["note-1"]["kind"] == "text" and entries["photo-1"] == {
        "id": "photo-1", "name": "sq.png", "kind": "image", "points": 1, "sha256": entries["photo-1"]["sha256"]}

    again = post(base, [{"id": "photo-1", "image": data_uri(image_files["png"]), "text": "a red square", "name": "sq.png"}])
    assert again.json()["documents"][0]["status"] == "unchanged"

    changed = post(base, [{"id": "photo-1", "image": data_uri(image_files["jpeg"]), "name": "sq.jpg"}])
    assert changed.json()["documents"][0] == {"index": 0, "id": "photo-1", "name": "sq.jpg", "status": "replaced", "points": 1}
    photo = store.get_nodes(filters=_by_id("photo-1"))
    assert len(photo) == 1 and photo[0].image_path.endswith("sq.jpg") and os.path.exists(photo[0].image_path)
    versions = list((Path(photo[0].image_path).parent.parent).iterdir())
    assert versions == [Path(photo[0].image_path).parent]  # the earlier version's file went with its points

    gone = httpx.delete(base + "/v1/documents/photo-1", headers=HEADERS, timeout=120)
    assert gone.status_code == 200 and gone.json() == {"id": "photo-1", "deleted": True, "points": 1}
    assert "photo-1" not in listed(base) and not store.get_nodes(filters=_by_id("photo-1"))
    assert not Path(photo[0].image_path).parent.parent.exists()
    missing = httpx.delete(base + "/v1/documents/photo-1", headers=HEADERS, timeout=120)
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "id"


def _by_id(document_id: str) -> Any:
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

    return MetadataFilters(filters=[MetadataFilter(key="mmst_doc_id", value=document_id)])


def test_bad_documents_are_each_named_and_the_rest_are_written(live: Any, image_files: dict[str, Path],
                                                                broken_images: dict[str, Path]) -> None:
    base, _, root = live
    documents = [
        {"id": "good-text", "text": "Lantern festival on the river."},
        {"id": "corrupt", "image": data_uri(broken_images["truncated"])},
        {"id": "typo", "imag": data_uri(image_files["png"])},
        {"id": "two", "image": data_uri(image_files["png"]), "audio": "data:audio/wav;base64,AAAA"},
        {"id": "reserved", "text": "x", "metadata": {"file_path": "/etc/passwd"}},
        {"id": "nameless", "file": "data:application/pdf;base64,JVBERi0="},
        {"id": "outside", "path": "/etc/hostname"},
        {"id": "nothing"},
        {"id": "not-an-image", "image": "data:image/png;base64,aGVsbG8gd29ybGQ="},
        {"id": "a-path-as-media", "image": str(image_files["png"])},
        {"id": "good-image", "image": data_uri(image_files["webp"])},
    ]
    answer = post(base, documents)
    assert answer.status_code == 200 and answer.json()["errors"] is True
    outcome = {d["id"]: d for d in answer.json()["documents"]}
    assert outcome["good-text"]["status"] == outcome["good-image"]["status"] == "added"
    reasons = {
        "corrupt": "truncated", "typo": "imag: unknown field", "two": "one of image, audio, video",
        "reserved": "file_path", "nameless": "a file needs a name", "outside": "outside the index root",
        "nothing": "nothing to index", "not-an-image": "not a recognised image", "a-path-as-media": "never reads its own files",
    }
    for position, document in enumerate(documents):
        if document["id"] in reasons:
            entry = outcome[document["id"]]
            assert entry["status"] == "refused" and entry["param"] == f"documents[{position}]", (entry["reason"], entry["code"])
            assert reasons[document["id"]] in entry["reason"] and entry["http_status"] == 400, (entry["reason"], entry["code"])
    assert {"good-text", "good-image"} <= set(listed(base)) and not set(reasons) & set(listed(base))


def test_a_multipart_upload_reads_captions_as_mmst_index_does(live: Any, image_files: dict[str, Path]) -> None:
    base, store, _ = live
    files = {"a": ("walrus.png", image_files["png"].read_bytes(), "image/png"),
             "b": ("walrus.png.txt", b"a walrus on the ice floe", "text/plain"),
             "c": ("tides.md", b"# Tides\n\nThe spring tide peaks at noon.", "text/markdown")}
    answer = httpx.post(base + "/v1/documents", headers=HEADERS, timeout=120, files=files,
                        data={"metadata": '{"album": "arctic"}'})
    assert answer.status_code == 200, answer.text
    assert [(d["id"], d["status"]) for d in answer.json()["documents"]] == [("walrus.png", "added"), ("tides.md", "added")]
    (walrus,) = store.get_nodes(filters=_by_id("walrus.png"))
    assert walrus.text == "a walrus on the ice floe" and walrus.metadata["album"] == "arctic"
    assert walrus.text_embedding is not None  # a captioned image keeps its words' vector too
    hit = search(base, "walrus ice floe", mode="sparse")[0]
    assert hit["metadata"]["mmst_doc_id"] == "walrus.png"


def test_server_paths_are_read_only_under_the_index_root(live: Any, serve_models: Any,
                                                         image_files: dict[str, Path]) -> None:
    from llama_index_mm_st import MultimodalQdrantStore
    from llama_index_mm_st.ingest import Indexer

    base, store, root = live
    folder = root / "shared" / "album"
    folder.mkdir()
    shutil.copy(image_files["png"], folder / "one.png")
    shutil.copy(image_files["bmp"], folder / "two.bmp")
    (folder / "one.png.txt").write_text("a postcard from the harbour")
    (root / "secret.txt").write_text("not for clients")
    (root / "shared" / "escape.txt").symlink_to(root / "secret.txt")
    answer = post(base, [{"path": "album"}, {"path": str(root / "secret.txt")}, {"path": "escape.txt"}])
    outcome = answer.json()["documents"]
    assert sorted((d["id"], d["status"]) for d in outcome if d["status"] != "refused") == [
        (str(folder / "one.png"), "added"), (str(folder / "two.bmp"), "added")]
    assert [d["code"] for d in outcome if d["status"] == "refused"] == ["outside_index_root"] * 2
    # The same points as mmst index of that folder: ids from the path, vectors from the same embedding.
    local = MultimodalQdrantStore("mmst", path=str(root / "local"))
    try:
        Indexer(local, serve_models[0]).index([str(folder)])
        mine = {n.node_id: n for n in local.get_nodes()}
        theirs = {n.node_id: n for n in store.get_nodes(filters=_by_file_under(folder))}
        assert set(mine) == set(theirs) and len(mine) == 2
        for node_id, node in mine.items():
            assert np.allclose(node.embedding, theirs[node_id].embedding, atol=1e-5)
            assert node.get_content() == theirs[node_id].get_content()
    finally:
        local.close()


def _by_file_under(folder: Path) -> Any:
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    return MetadataFilters(filters=[MetadataFilter(key="file_path", operator=FilterOperator.IN,
                                                   value=[str(folder / "one.png"), str(folder / "two.bmp")])])


def test_metadata_changes_replace_and_delete_by_filter(live: Any) -> None:
    base, store, _ = live
    docs = [{"id": f"memo-{i}", "text": f"Memo {i} about the harbour crane.", "metadata": {"team": team}}
            for i, team in enumerate(["red", "red", "blue"])]
    assert [d["status"] for d in post(base, docs).json()["documents"]] == ["added"] * 3
    docs[2]["metadata"] = {"team": "red"}
    assert [d["status"] for d in post(base, docs).json()["documents"]] == ["unchanged", "unchanged", "replaced"]
    (memo,) = store.get_nodes(filters=_by_id("memo-2"))
    assert memo.metadata["team"] == "red"
    body = {"filters": {"filters": [{"key": "team", "value": "red"}, {"key": "mmst_doc_id", "value": "memo-1",
                                                                      "operator": "!="}]}}
    answer = httpx.post(base + "/v1/documents/delete", headers=HEADERS, timeout=120, json=body)
    assert answer.status_code == 200, answer.text
    assert {d["id"] for d in answer.json()["deleted"]} == {"memo-0", "memo-2"}
    assert "memo-1" in listed(base) and not {"memo-0", "memo-2"} & set(listed(base))
    both = httpx.post(base + "/v1/documents/delete", headers=HEADERS, timeout=120, json={"ids": ["memo-1"], "filters": {
        "filters": [{"key": "team", "value": "blue"}]}})
    assert both.json()["deleted"] == [] and "memo-1" in listed(base)  # ids AND filters: nothing matches both
    assert httpx.post(base + "/v1/documents/delete", headers=HEADERS, timeout=120, json={}).status_code == 400
    typo = httpx.post(base + "/v1/documents/delete", headers=HEADERS, timeout=120, json={"id": ["memo-1"]})
    assert typo.status_code == 422 and typo.json()["error"]["param"] == "id"


def test_paging_walks_every_document_once(live: Any) -> None:
    base, _, _ = live
    post(base, [{"id": f"page-{i:02d}", "text": f"Paged document number {i}."} for i in range(7)])
    seen, after = [], None
    while True:
        page = httpx.get(base + "/v1/documents", headers=HEADERS, timeout=120,
                         params={"limit": 3, **({"after": after} if after else {})}).json()
        seen += [entry["id"] for entry in page["data"]]
        if not page["has_more"]:
            break
        after = page["next"]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == page["total"]
    assert {f"page-{i:02d}" for i in range(7)} <= set(seen)
    assert httpx.get(base + "/v1/documents?limit=0", headers=HEADERS, timeout=120).status_code == 400


async def test_searches_run_while_documents_are_written_and_see_each_once_written(live: Any) -> None:
    base, _, _ = live
    words = ["amber", "basalt", "cobalt", "dahlia", "ember", "fennel", "garnet", "hazel"]
    statuses: list[int] = []
    done = asyncio.Event()
    async with httpx.AsyncClient(headers=HEADERS, timeout=120) as client:
        async def searching() -> None:
            while not done.is_set():
                answer = await client.post(base + "/v1/search", json={"query": "volcanic stone", "top_k": 3})
                statuses.append(answer.status_code)

        async def writing() -> None:
            for word in words:
                written = await client.post(base + "/v1/documents", json={"documents": [
                    {"id": f"live-{word}", "text": f"The {word} sample {word} was logged."}]})
                assert written.json()["documents"][0]["status"] == "added"
                # Once its write has returned, a search finds it.
                found = await client.post(base + "/v1/search", json={"query": word, "mode": "sparse", "top_k": 1})
                assert found.json()["results"][0]["metadata"]["mmst_doc_id"] == f"live-{word}"
            done.set()

        await asyncio.gather(searching(), writing())
    assert len(statuses) >= len(words) and set(statuses) == {200}


ROUTES = [("POST", "/v1/documents"), ("GET", "/v1/documents"), ("GET", "/v1/documents/x"),
          ("DELETE", "/v1/documents/x"), ("POST", "/v1/documents/delete"), ("POST", "/v1/nodes"),
          ("POST", "/v1/nodes/query"), ("POST", "/v1/nodes/get"), ("POST", "/v1/nodes/delete"), ("GET", "/v1/index"),
          ("POST", "/documents"), ("GET", "/index")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_documents_and_nodes_route_needs_the_key(live: Any, method: str, path: str) -> None:
    base, _, _ = live
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = httpx.request(method, base + path, headers=headers, json={}, timeout=120)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
    assert httpx.request(method, base + path, headers=HEADERS, timeout=120, json={}).status_code != 401


def test_a_read_only_index_lists_and_refuses_writes(serve_models: Any, tmp_path: Path) -> None:
    with served_index(serve_models, tmp_path, read_only=True) as (base, _):
        assert httpx.get(base + "/v1/documents", headers=HEADERS, timeout=120).json()["total"] == 0
        refused = post(base, [{"text": "x"}])
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "read_only"
        assert httpx.post(base + "/v1/nodes/delete", headers=HEADERS, timeout=120, json={"all": True}).status_code == 403


def test_a_request_the_full_queue_turns_away_is_a_429_with_retry_after(serve_models: Any, tmp_path: Path) -> None:
    """Every document turned away by the embedding queue (here: any wait is over its bound) is a 429 with
    Retry-After, which SDKs and ``mmst index --server`` retry; nothing is written."""
    from llama_index_mm_st.serve.settings import Limits

    with served_index(serve_models, tmp_path, limits=Limits(max_queue_wait_s=1e-9)) as (base, _):
        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(headers=HEADERS, timeout=120) as client:
                return await asyncio.gather(*(client.post(base + "/v1/documents", json={"documents": [
                    {"text": f"burst {i} " + "word " * 50}, {"text": f"more {i}"}]}) for i in range(4)))

        answers = asyncio.run(burst())
        assert {answer.status_code for answer in answers} == {429}
        assert all(int(answer.headers["retry-after"]) >= 1 for answer in answers)
        assert {answer.json()["error"]["code"] for answer in answers} <= {"queue_timeout", "queue_wait", "queue_full"}
        assert httpx.get(base + "/v1/documents", headers=HEADERS, timeout=120).json()["total"] == 0


def test_an_empty_file_and_a_text_in_base64_are_named(live: Any) -> None:
    base, _, _ = live
    text = base64.b64encode(b"Plain words sent as a file.").decode()
    answer = post(base, [{"file": f"data:text/plain;base64,{text}", "name": "plain.txt"},
                         {"file": "data:text/plain;base64,", "name": "empty.txt"}]).json()["documents"]
    assert answer[0]["status"] == "added" and answer[1]["status"] == "refused" and "empty" in answer[1]["reason"]


def test_a_multipart_documents_field_names_its_parts(live: Any, image_files: dict[str, Path]) -> None:
    base, store, _ = live
    files = {"p0": ("x.png", image_files["png"].read_bytes(), "image/png"),
             "stray": ("y.png", image_files["png"].read_bytes(), "image/png")}
    body = '[{"id": "named-part", "file": "p0", "name": "heron.png", "text": "a heron", "metadata": {"k": 1}}, ' \
           '{"id": "no-part", "file": "p9", "name": "z.png"}]'
    answer = httpx.post(base + "/v1/documents", headers=HEADERS, timeout=120, files=files, data={"documents": body})
    outcome = {d["param"] if d["status"] == "refused" else d["id"]: d for d in answer.json()["documents"]}
    assert outcome["named-part"]["status"] == "added" and outcome["named-part"]["name"] == "heron.png"
    assert "names no part" in outcome["documents[1]"]["reason"]
    assert "named by no documents" in outcome["stray"]["reason"]
    (heron,) = store.get_nodes(filters=_by_id("named-part"))
    assert heron.text == "a heron" and heron.metadata["k"] == 1 and heron.metadata["mmst_doc_name"] == "heron.png"
    typo = httpx.post(base + "/v1/documents", headers=HEADERS, timeout=120, files=files, data={"document": body})
    assert typo.status_code == 422 and typo.json()["error"]["param"] == "document"


def test_the_node_routes_name_a_bad_node_and_read_no_server_path(live: Any, image_files: dict[str, Path]) -> None:
    from llama_index.core.schema import ImageNode, TextNode

    from llama_index_mm_st.node_wire import node_to_wire

    base, store, root = live
    dim = store.schema.dim
    good = TextNode(id_="n-good", text="ok", embedding=[1.0] + [0.0] * (dim - 1))
    short = TextNode(id_="n-short", text="short", embedding=[1.0, 0.0])
    answer = httpx.post(base + "/v1/nodes", headers=HEADERS, timeout=120,
                        json={"nodes": [node_to_wire(good), node_to_wire(short)]})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "nodes[1]"
    assert "2 dimensions" in answer.json()["error"]["message"] and not store.get_nodes(["n-good"])  # all or nothing
    broken = httpx.post(base + "/v1/nodes", headers=HEADERS, timeout=120, json={"nodes": [{"type": "TextNode"}]})
    assert broken.status_code == 400 and broken.json()["error"]["param"] == "nodes[0]"
    outside = ImageNode(id_="n-outside", image_path=str(image_files["png"]))  # no vector: the server would read it
    refused = httpx.post(base + "/v1/nodes", headers=HEADERS, timeout=120, json={"nodes": [node_to_wire(outside)]})
    assert refused.status_code == 400 and "--index-root" in refused.json()["error"]["message"]
    inline = ImageNode(id_="n-inline", image=base64.b64encode(image_files["png"].read_bytes()).decode())
    embedded = httpx.post(base + "/v1/nodes", headers=HEADERS, timeout=120,
                          json={"nodes": [node_to_wire(inline), node_to_wire(TextNode(id_="n-text", text="words"))]})
    assert embedded.status_code == 200 and embedded.json()["ids"] == ["n-inline", "n-text"]
    stored = {node.node_id: node for node in store.get_nodes(["n-inline", "n-text"])}
    assert len(stored["n-inline"].embedding) == dim and len(stored["n-text"].embedding) == dim
