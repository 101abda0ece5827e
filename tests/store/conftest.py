"""Store fixtures: one factory per backend, so the contract tests run on both."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from qdrant_client import QdrantClient

from llama_index_mm_st.store import MultimodalQdrantStore

BACKENDS = ("edge", "client")
DIM = 16


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_store(backend: str, tmp_path: Path) -> Iterator[Callable[..., MultimodalQdrantStore]]:
    """Build stores on the parametrised backend; Edge at a per-test path, client on ``:memory:``."""
    made: list[MultimodalQdrantStore] = []
    client = QdrantClient(":memory:")

    def make(**kwargs: Any) -> MultimodalQdrantStore:
        if backend == "edge":
            store = MultimodalQdrantStore(path=str(tmp_path / "edge"), **kwargs)
        else:
            store = MultimodalQdrantStore(client=client, **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    client.close()


def unit(v: np.ndarray) -> list[float]:
    return (v / np.linalg.norm(v)).astype(float).tolist()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
