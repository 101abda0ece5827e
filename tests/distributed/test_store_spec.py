"""The Ray actors open the server store the way the caller's store opens it (its own reopen: url, api
key, client_kwargs), not from ``$QDRANT_API_KEY``. A stand-in Qdrant server on 127.0.0.1 answers the
two calls that opening makes and records the headers each connection sends."""

from __future__ import annotations

import json
import pickle
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from llama_index_mm_st import MultimodalQdrantStore
from llama_index_mm_st.distributed.embed import StoreSpec
from llama_index_mm_st.distributed.resume import ServerCounts


class QdrantStandIn(ThreadingHTTPServer):
    """Answers ``GET /collections/<name>/exists`` (no collection yet), the one call opening a store
    without ``dim`` makes; records (path, api-key header, x-tenant header) of every request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str | None]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: QdrantStandIn

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook
        self.server.seen.append((self.path, self.headers.get("api-key"), self.headers.get("x-tenant")))
        if self.path.startswith("/collections/") and self.path.endswith("/exists"):
            body = {"result": {"exists": False}, "status": "ok", "time": 0.0}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[QdrantStandIn]:
    stand_in = QdrantStandIn()
    thread = threading.Thread(target=stand_in.serve_forever, daemon=True)
    thread.start()
    yield stand_in
    stand_in.shutdown()
    stand_in.server_close()
    thread.join()


def _open(url: str, client_kwargs: dict | None = None, **kwargs: object) -> MultimodalQdrantStore:
    # no version check: qdrant-client runs it in a thread of its own, which would outlive the stand-in
    client_kwargs = {"check_compatibility": False, **(client_kwargs or {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # qdrant-client warns of an api key over plain http: this is a loopback test
        return MultimodalQdrantStore("docs", url=url, client_kwargs=client_kwargs, **kwargs)  # type: ignore[arg-type]


def _collection_calls(server: QdrantStandIn) -> list[tuple[str, str | None, str | None]]:
    return [seen for seen in server.seen if seen[0].startswith("/collections/docs")]


def test_actors_open_the_store_with_its_key_and_client_kwargs(server, monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", "the-environment's-key")  # must not be what actors send
    store = _open(server.url, api_key="KEY", client_kwargs={"headers": {"x-tenant": "t1"}})
    assert _collection_calls(server) == [("/collections/docs/exists", "KEY", "t1")]
    spec = pickle.loads(pickle.dumps(StoreSpec.of(store)))  # as Ray ships it to an actor
    assert "KEY" not in repr(spec) and spec.url == server.url
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actor_store = spec.open()
        assert actor_store.count() == 0  # first use connects
    assert _collection_calls(server)[1:] == [("/collections/docs/exists", "KEY", "t1")]
    assert all(seen[0].startswith("/collections/docs") for seen in server.seen)  # no version check: that kwarg came too
    actor_store.close()
    store.close()


def test_a_store_opened_without_a_key_sends_actors_the_drivers_environment_key(server, monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", "driver-key")
    store = _open(server.url)
    spec = pickle.loads(pickle.dumps(StoreSpec.of(store)))
    monkeypatch.setenv("QDRANT_API_KEY", "a worker's other key")  # an actor on another machine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actor_store = spec.open()
        actor_store.count()
    assert [key for _, key, _ in _collection_calls(server)] == ["driver-key", "driver-key"]
    actor_store.close()
    store.close()


def test_read_tasks_keep_one_connection_per_store_and_an_embedded_store_is_refused(server, tmp_path):
    first = StoreSpec.of(_open(server.url, api_key="A"))
    again = pickle.loads(pickle.dumps(StoreSpec.of(_open(server.url, api_key="A"))))
    other = StoreSpec.of(_open(server.url, api_key="B"))
    assert first == again and hash(first) == hash(again) and first != other
    from llama_index_mm_st.distributed import resume

    try:
        assert ServerCounts(first)._store() is ServerCounts(again)._store()
    finally:
        resume._OPEN.pop(first).close()
    edge = MultimodalQdrantStore("docs", path=str(tmp_path / "edge"))
    with pytest.raises(ValueError, match="Qdrant server"):
        StoreSpec.of(edge)
    edge.close()
