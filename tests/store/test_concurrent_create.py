"""A store's collection made by the first of several concurrent writes (a server started with
``--create`` answering its first requests at once): no thread opens an engine another thread is still
making (Edge refuses a second open of its WAL: 'Can't init WAL: WouldBlock')."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from llama_index.core.schema import TextNode

from llama_index_mm_st.store import MultimodalQdrantStore


def test_concurrent_first_writes_and_reads_make_one_collection(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    for attempt in range(5):  # the race needs a thread to read the schema while another makes it
        with MultimodalQdrantStore(path=str(tmp_path / f"idx{attempt}"), show_progress=False) as store:
            other = MultimodalQdrantStore(path=str(tmp_path / f"idx{attempt}"), show_progress=False)  # same folder
            barrier = threading.Barrier(6)
            errors: list[BaseException] = []

            def write(number: int, target: MultimodalQdrantStore) -> None:
                try:
                    barrier.wait()
                    target.add([TextNode(id_=f"n{number}", text=f"note {number}",
                                         embedding=rng.normal(size=16).tolist())])
                except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                    errors.append(exc)

            def read(target: MultimodalQdrantStore) -> None:
                try:
                    barrier.wait()
                    for _ in range(200):
                        if target.schema is not None:
                            return
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

            threads = [threading.Thread(target=write, args=(n, store if n % 2 else other)) for n in range(4)]
            threads += [threading.Thread(target=read, args=(s,)) for s in (store, other)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert errors == []
            assert store.count() == 4 and other.count() == 4
            other.close()
