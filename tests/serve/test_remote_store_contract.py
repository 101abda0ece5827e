"""LlamaIndex's vector-store contract (``tests/store/test_llamaindex_contract.py``) run against
``RemoteMultimodalStore``: each store the tests make is a fresh index served over HTTP on 127.0.0.1 by
the app ``mmst serve`` runs (``create_app``, a real uvicorn server), and every call crosses the wire.

Left out: the two tests that set or read the in-process store's own attributes (``store.hybrid = False``,
``store.schema``): a remote store's query options are per query, and its schema is the server's
(``RemoteMultimodalStore.info()``)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from llama_index_mm_st.remote import RemoteMultimodalStore
from tests.serve.conftest import API_KEY, running_server
from tests.store import test_llamaindex_contract as contract

REMOTE_TESTS = [
    "test_query_without_filters_returns_all_rows_best_first", "test_filters_top_k_and_node_ids",
    "test_every_filter_operator", "test_and_or_not_conditions", "test_delete_removes_a_document_from_results",
    "test_is_empty_on_a_key_no_node_has_matches_every_node", "test_delete_nodes_and_clear",
    "test_a_retriever_constrains_source_documents", "test_document_node_and_metadata_filters_intersect",
    "test_delete_nodes_then_get_nodes_sync_and_async", "test_get_nodes_carries_the_embedding",
    "test_filters_keep_value_types", "test_get_nodes_round_trips_a_whole_store",
    "test_get_nodes_round_trips_multivectors",
]
for _name in REMOTE_TESTS:
    globals()[_name] = getattr(contract, _name)
simple = contract.simple


@pytest.fixture
def make_store(serve_models: Any, tmp_path: Path) -> Iterator[Callable[..., RemoteMultimodalStore]]:
    """A fresh served index per call (the store options go to the server's store), as a remote store."""
    from llama_index_mm_st import MultimodalQdrantStore
    from llama_index_mm_st.serve import Components, ServeSettings, create_app

    embedding, _ = serve_models
    with ExitStack() as stack:
        def make(**kwargs: Any) -> RemoteMultimodalStore:
            served = MultimodalQdrantStore("mmst", path=str(tmp_path / f"served-{len(stack._exit_callbacks)}"), **kwargs)
            stack.callback(served.close)
            app = create_app(Components(embedding, None, served), ServeSettings(api_key=API_KEY, warm_up=False))
            base = stack.enter_context(running_server(app))
            remote = RemoteMultimodalStore(base, api_key=API_KEY)
            stack.callback(remote.close)
            return remote

        yield make
